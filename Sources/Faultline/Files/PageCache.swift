import Synchronization

/// One inode's page cache (`struct address_space` and `mm/filemap.c`): frames of the machine's
/// `PhysicalMemory` keyed by page index in an RCU radix tree (`PageCacheTree`, the xarray's
/// role), with dirty pages tagged for writeback.
///
/// References: the cache holds one reference on every page it holds; `find`, `findRCU` and
/// `findOrRead` take one more for the caller, who puts it (`folio_put`). A page-table entry holds
/// its own, so a page dropped by truncate stays alive while mapped and is freed when its PTE goes.
///
/// Membership: a cached frame's `FrameMeta.index` is its page index and its private word names
/// this cache (`page->mapping`); dropping the page clears the private word. `owns(_:at:)` reads
/// both without the lock, so a fault can re-check under the PTL that truncate did not take the
/// page away meanwhile.
///
/// Lookups take no lock (`findRCU`, `filemap_get_entry`): inside an RCU read section they walk
/// the tree, take a reference only if the page's count is not zero, and re-read the slot. A page
/// is inserted only once its bytes are read (up to date), so a lookup never sees a page being
/// filled. Room is left for `PG_locked`/`PG_uptodate` states (`PageFlags.locked`): a later
/// storage model may insert a locked, not yet up-to-date page first, as `filemap_add_folio` does.
///
/// Dirty state: `PageFlags.dirty` on the frame and the `.dirty` tag in the tree, set together by
/// `markDirty` (`filemap_dirty_folio`): the flag first, atomically, and the tag under the lock
/// only when the flag was clear, so writing to an already dirty page takes no lock. Writeback
/// finds dirty pages through the tag without scanning the others.
///
/// Guards: `lock`, the page-cache lock of `LockOrder` (a leaf, never held with a PTL; Linux's
/// `i_pages` lock), serialises every change to the tree (insert, remove, tags),
/// `removalSequence`, `dirtyPages`, `fillCount` and `raceLosses`. Reading from and writing to
/// the backing store happen without it.
package final class PageCache: @unchecked Sendable {
  /// The arena the cached pages are allocated from.
  package let memory: PhysicalMemory
  let frames: FrameAllocator
  /// The owner, through which pages are read and written (`mapping->host`). `nil` for a cache
  /// with no backing store: absent pages read as zeros, writeback writes nothing.
  package internal(set) unowned var inode: Inode?
  /// Whether the cache is the only copy of the data (tmpfs): then `invalidate` never drops a page
  /// and only truncate does.
  package let backedByCache: Bool
  /// The pages (`i_pages`). Changed under `lock`; read under RCU or `lock`.
  let tree: PageCacheTree

  private let lock = PThreadMutex()
  /// Bumped by every removal (truncate, hole punch, invalidate), so that a read that raced one
  /// does not insert data older than the backing store's.
  private var removalSequence: UInt64 = 0
  private var pageCount = 0
  private var dirtyPages = 0
  private var fillCount = 0
  private var raceLosses = 0

  /// The largest page index: byte offsets must fit `Inode.maxFileSize`.
  package static let maxIndex = Inode.maxFileSize >> Page.shift

  /// - Parameters:
  ///   - inode: the owner; `Inode` wires itself in after creating its cache.
  ///   - memory: the arena its pages are allocated from; its RCU domain frees the tree's nodes.
  ///   - backedByCache: `true` when the cache is the storage itself (tmpfs).
  package init(inode: Inode?, memory: PhysicalMemory, backedByCache: Bool = false) {
    self.inode = inode
    self.memory = memory
    frames = memory.frames
    self.backedByCache = backedByCache
    tree = PageCacheTree(rcu: memory.rcu)
  }

  deinit {
    var pages: [PFN] = []
    tree.forEach(from: 0, to: .max) { _, p in pages.append(p) }
    for p in pages {
      let m = frames.meta(p)
      m.clearFlags(.dirty)
      m.privateWord.pointee.store(0, ordering: .relaxed)
      frames.put(p)
    }
    // No reader can reach a dying cache; nodes already unlinked wait for their grace period.
    tree.flushRetired()
    tree.destroy()
  }

  /// The value a cached frame's private word holds: this cache's address.
  @inline(__always) private var tag: UInt64 {
    UInt64(UInt(bitPattern: Unmanaged.passUnretained(self).toOpaque()))
  }

  // MARK: Lookup and fill

  /// The page at `index` with a reference taken for the caller, or `nil`; takes no lock and
  /// never does I/O (`filemap_get_entry` under `rcu_read_lock`).
  /// - Requires: `rcu` is the calling thread's read side of `memory.rcu`, outside or inside a read
  ///   section (the call nests one).
  @inline(__always)
  func findRCU(_ index: UInt64, rcu: RCUReadSide) -> PFN? {
    rcu.lock()
    let page = tree.getPage(index, frames: frames)
    rcu.unlock()
    return page
  }

  /// The page at `index` with a reference taken for the caller, or `nil`; never does I/O
  /// (`filemap_get_folio`). For callers with no RCU reader: looks up under the lock.
  package func find(_ index: UInt64) -> PFN? {
    lock.lock()
    defer { lock.unlock() }
    let v = tree.lookup(index)
    if v == 0 { return nil }
    let p = PFN(UInt32(truncatingIfNeeded: v - 1))
    frames.meta(p).get()
    return p
  }

  /// Whether a page is cached at `index` (`mincore`'s `filemap_get_incore_folio`).
  package func contains(_ index: UInt64) -> Bool {
    lock.lock()
    defer { lock.unlock() }
    return tree.lookup(index) != 0
  }

  /// Whether `page` is still this cache's page at `index` (`folio->mapping == mapping` and
  /// `folio->index == index`), read without the lock. A fault that found the page, then took the
  /// PTL, calls this to learn whether truncate removed it in between.
  @inline(__always)
  package func owns(_ page: PFN, at index: UInt64) -> Bool {
    let m = frames.meta(page)
    return m.privateWord.pointee.load(ordering: .acquiring) == tag && m.index == index
  }

  /// The page at `index` with a reference taken for the caller (`filemap_fault` →
  /// `filemap_get_folio`, else `page_cache_ra_order` + `filemap_read_folio`). When absent, a
  /// frame is allocated (`.uptodate`), filled from the backing store through the inode's file
  /// system (bytes past EOF read as zeros), inserted, and `filled` is `true`.
  ///
  /// The read runs without the cache lock, so a slow read blocks no other page. If another thread
  /// inserted the page meanwhile, ours is dropped and theirs returned (`filled: false`); if a
  /// removal ran meanwhile (truncate, hole punch, or an invalidate that dropped pages: another
  /// thread's page may have been filled, written back and dropped while we read), ours is
  /// dropped and the lookup starts again.
  /// - Throws: `ENOMEM` when out of frames, `EFBIG` for an index past `maxIndex`, or the backing
  ///   store's error (`EIO`).
  ///
  /// With `withinEOF` (the fault path), a page at or beyond the inode's EOF is never read in:
  /// `ENXIO`. The size is checked before the read and again under the cache lock before the
  /// insert, so a page cannot slip in behind a truncate that already dropped it (what Linux's
  /// `invalidate_lock` ensures).
  package func findOrRead(_ index: UInt64, cache: FrameCache?, withinEOF: Bool = false) throws(Errno) -> (page: PFN, filled: Bool) {
    guard index <= Self.maxIndex else { throw .fileTooLarge }
    if let p = find(index) { return (p, false) }
    return try read(index, cache: cache, withinEOF: withinEOF)
  }

  /// `findOrRead` after a lookup missed: the read from the backing store and the insert, under
  /// the lock only for the insert (`filemap_add_folio`). The fault path's cold half.
  @inline(never)
  func read(_ index: UInt64, cache: FrameCache?, withinEOF: Bool) throws(Errno) -> (page: PFN, filled: Bool) {
    guard index <= Self.maxIndex else { throw .fileTooLarge }
    func beyondEOF() -> Bool {
      guard withinEOF, let inode else { return false }
      return index >= Page.covering(inode.size)
    }
    while true {
      lock.lock()
      let cached = tree.lookup(index)
      if cached != 0 {
        let p = PFN(UInt32(truncatingIfNeeded: cached - 1))
        frames.meta(p).get()
        lock.unlock()
        return (p, false)
      }
      let sequence = removalSequence
      lock.unlock()
      if beyondEOF() { throw .noSuchAddressOrDevice }

      guard let new = frames.allocate(cache: cache, flags: [.uptodate]) else { throw .noMemory }
      do {
        try readPage(index, into: new)
      } catch {
        frames.put(new, cache: cache)
        throw error
      }
      let m = frames.meta(new)
      m.index = index

      lock.lock()
      let raced = tree.lookup(index)
      if raced != 0 {
        let p = PFN(UInt32(truncatingIfNeeded: raced - 1))
        frames.meta(p).get()
        raceLosses += 1
        lock.unlock()
        frames.put(new, cache: cache)
        return (p, false)
      }
      if removalSequence != sequence {
        lock.unlock()
        frames.put(new, cache: cache)
        continue
      }
      // Truncate stores the size before it takes this lock to drop pages.
      if beyondEOF() {
        lock.unlock()
        frames.put(new, cache: cache)
        throw .noSuchAddressOrDevice
      }
      m.privateWord.pointee.store(tag, ordering: .releasing)
      m.get()  // refcount 2: one for the cache, one for the caller
      // Publishes the filled page: a reader that finds the slot sees its bytes and private word.
      tree.insert(index, new)
      pageCount += 1
      fillCount += 1
      lock.unlock()
      return (new, true)
    }
  }

  private func readPage(_ index: UInt64, into page: PFN) throws(Errno) {
    let buffer = UnsafeMutableRawBufferPointer(start: frames.address(of: page), count: Page.byteCount)
    if let inode {
      try inode.fs.readPage(inode, index: index, into: buffer)
    } else {
      buffer.initializeMemory(as: UInt8.self, repeating: 0)
    }
  }

  // MARK: Dirty pages and writeback

  /// Marks the cached page at `index` dirty (`folio_mark_dirty`). Does nothing when the page is
  /// not cached. All under the lock, so the page cannot be freed meanwhile.
  package func markDirty(_ index: UInt64) {
    lock.lock()
    defer { lock.unlock() }
    let v = tree.lookup(index)
    if v == 0 { return }
    frames.meta(PFN(UInt32(truncatingIfNeeded: v - 1))).setFlags(.dirty)
    if !tree.hasTag(index, .dirty) {
      tree.setTag(index, .dirty)
      dirtyPages += 1
    }
  }

  /// Marks `page` dirty if it is still the cached page at `index` (`filemap_dirty_folio`): sets
  /// `PageFlags.dirty` and tags the slot, under the lock.
  /// - Requires: a reference on `page` (or its PTL held with a PTE mapping it), so that the frame
  ///   is not freed and reused meanwhile.
  /// - Returns: `false` when the cache no longer holds `page` there (truncated or invalidated).
  @discardableResult
  package func markDirty(_ index: UInt64, page: PFN) -> Bool {
    frames.meta(page).setFlags(.dirty)
    return tagDirty(index, page: page)
  }

  /// The lock-free half of `markDirty(_:page:)` for the fault path (`folio_test_set_dirty`):
  /// sets `PageFlags.dirty` and returns `true` when the page is also tagged already, as it is on
  /// every write fault after the first; `false` when the caller must still call `tagDirty`. The
  /// tag is read under RCU, because the flag alone does not say the page is tagged: a zap sets
  /// the flag of a page whose dirty PTE it clears, without the tag (the page-cache lock is never
  /// taken under a PTL), and writeback clears both before it write-protects. A page found tagged
  /// here is written back by a later writeback, or by one already running whose `mkclean` makes
  /// the next store fault again: no store is lost. Takes no lock, so it may run under a PTL.
  /// - Requires: `rcu` is the calling thread's read side of `memory.rcu`.
  @inline(__always)
  func markDirtyLockless(_ index: UInt64, page: PFN, rcu: RCUReadSide) -> Bool {
    let m = frames.meta(page)
    let was = m.p.pointee.flags.bitwiseOr(PageFlags.dirty.rawValue, ordering: .acquiringAndReleasing).oldValue
    if was & PageFlags.dirty.rawValue == 0 { return false }
    rcu.lock()
    let tagged = tree.hasTag(index, .dirty) && owns(page, at: index)
    rcu.unlock()
    return tagged
  }

  /// `__folio_mark_dirty`: tags a page whose dirty flag the caller set, unless it is tagged
  /// already. If the page left the cache meanwhile, its flag is cleared again (a page out of the
  /// cache is never dirty).
  @inline(never)
  func tagDirty(_ index: UInt64, page: PFN) -> Bool {
    lock.lock()
    defer { lock.unlock() }
    guard tree.lookup(index) == UInt64(page.raw) + 1 else {
      frames.meta(page).clearFlags(.dirty)
      return false
    }
    if !tree.hasTag(index, .dirty) {
      tree.setTag(index, .dirty)
      dirtyPages += 1
    }
    return true
  }

  /// Whether the page at `index` is cached and dirty.
  package func isDirty(_ index: UInt64) -> Bool { lock.withLock { tree.hasTag(index, .dirty) } }

  /// Dirty pages awaiting writeback.
  package var dirtyCount: Int { lock.withLock { dirtyPages } }

  /// Writes every dirty page with index in `[from, to)` to the backing store
  /// (`filemap_write_and_wait_range` → `do_writepages`) and clears its dirty state. Only the bytes
  /// below `size` are written for the EOF page; a page wholly beyond EOF (truncate raced) is
  /// cleaned and skipped. Dirty pages are found through the tree's dirty tag.
  ///
  /// Per page, the dirty state is cleared first, then `mkclean` runs (the address-space layer
  /// write-protects the page's PTEs there, `folio_mkclean`, so that a later store faults and
  /// dirties the page again), then the bytes are written: no store is lost between the three.
  /// Runs `mkclean` with no Files lock held, and the writes with the inode's `sizeLock` held (not
  /// the cache lock).
  /// - Returns: the pages written.
  /// - Throws: the backing store's error; pages not yet written are marked dirty again.
  @discardableResult
  package func writeback(
    from: UInt64, to: UInt64, mkclean: ((UInt64, PFN) -> Void)? = nil, flush: (() -> Void)? = nil
  ) throws(Errno) -> Int {
    try writeback(from: from, to: to, mkclean: mkclean, flush: flush, writer: nil)
  }

  /// `writeback`, writing through `writer` (page index, page bytes, byte count) instead of the
  /// inode's file system when one is given: a dying file system passes its own.
  func writeback(
    from: UInt64, to: UInt64, mkclean: ((UInt64, PFN) -> Void)?, flush: (() -> Void)? = nil,
    writer: ((UInt64, UnsafeRawBufferPointer, Int) throws(Errno) -> Void)?
  ) throws(Errno) -> Int {
    var batch: [(index: UInt64, page: PFN)] = []
    lock.lock()
    var next = from
    while next < to, let index = tree.nextTagged(from: next, .dirty), index < to {
      let v = tree.lookup(index)
      batch.append((index, PFN(UInt32(truncatingIfNeeded: v - 1))))
      if index == .max { break }
      next = index + 1
    }
    for (index, p) in batch {
      let m = frames.meta(p)
      m.get()
      m.clearFlags(.dirty)
      tree.clearTag(index, .dirty)
    }
    dirtyPages -= batch.count
    lock.unlock()
    if batch.isEmpty { return 0 }
    defer { for (_, p) in batch { frames.put(p) } }
    if let mkclean {
      for (index, p) in batch { mkclean(index, p) }
    }
    // After write-protecting, wait until no store through an old writable entry is in flight
    // (the TLB flush of folio_mkclean), so the bytes written below include every store that
    // will not fault again.
    flush?()
    guard let inode else { return batch.count }
    if backedByCache { return batch.count }

    inode.sizeLock.lock()
    defer { inode.sizeLock.unlock() }
    var written = 0
    for (i, (index, p)) in batch.enumerated() {
      let size = inode.size
      let offset = index << Page.shift
      // Truncated or punched out since the batch was taken: its bytes are gone on purpose.
      guard offset < size, owns(p, at: index) else { continue }
      let count = Int(min(Page.size, size - offset))
      let bytes = UnsafeRawBufferPointer(start: frames.address(of: p), count: Page.byteCount)
      do {
        if let writer {
          try writer(index, bytes, count)
        } else {
          try inode.fs.writePage(inode, index: index, from: bytes, count: count)
        }
      } catch {
        for (index, p) in batch[i...] { _ = markDirty(index, page: p) }
        throw error
      }
      written += 1
    }
    return written
  }

  /// `writeback(from: 0, to: .max)`: every dirty page (`filemap_write_and_wait`).
  @discardableResult
  package func writebackAll(mkclean: ((UInt64, PFN) -> Void)? = nil, flush: (() -> Void)? = nil) throws(Errno) -> Int {
    try writeback(from: 0, to: .max, mkclean: mkclean, flush: flush)
  }

  // MARK: Dropping pages

  /// Drops every page wholly beyond a new EOF of `size` bytes and zeroes the tail of the partial
  /// EOF page (`truncate_inode_pages_range`). Dropped pages lose their dirty state and the cache's
  /// reference; a page still mapped keeps its frame until its PTE goes. Applies to tmpfs too:
  /// data beyond EOF is gone. Only the inode's `truncate(to:)` should call this, after storing
  /// the new size and zapping mappings.
  /// - Requires: the inode's `truncateLock` held (`Inode.truncate(to:)`).
  package func truncate(to size: UInt64) {
    let first = Page.covering(size)
    lock.lock()
    let dropped = removeLocked(from: first, to: .max)
    zeroTailLocked(from: size)
    let nodes = tree.takeRetired()
    lock.unlock()
    finishRemoval(dropped, nodes)
  }

  /// Drops the pages with index in `[from, to)`, dirty ones included (`truncate_inode_pages_range`
  /// for a punched hole). Mappings must have been zapped first.
  /// - Requires: the inode's `truncateLock` and `sizeLock` held (`Inode.punchHole`).
  func drop(from: UInt64, to: UInt64) {
    lock.lock()
    let dropped = removeLocked(from: from, to: to)
    let nodes = tree.takeRetired()
    lock.unlock()
    finishRemoval(dropped, nodes)
  }

  /// Puts the cache's references on pages taken out, and frees the tree nodes emptied, after a
  /// grace period. Runs with no lock held.
  private func finishRemoval(_ dropped: [PFN], _ nodes: [UInt]) {
    for p in dropped { frames.put(p) }
    tree.freeAfterGracePeriod(nodes)
  }

  /// Takes the pages with index in `[from, to)` out of the cache, dirty state and all, and bumps
  /// `removalSequence`; returns them for the caller to put after unlocking. A reader that found
  /// one just before holds its own reference and sees `owns` fail.
  /// - Requires: `lock` held.
  private func removeLocked(from: UInt64, to: UInt64) -> [PFN] {
    removalSequence &+= 1
    var found: [UInt64] = []
    tree.forEach(from: from, to: to) { index, _ in found.append(index) }
    var dropped: [PFN] = []
    dropped.reserveCapacity(found.count)
    for index in found {
      if tree.hasTag(index, .dirty) { dirtyPages -= 1 }
      guard let p = tree.remove(index) else { continue }
      let m = frames.meta(p)
      m.clearFlags(.dirty)
      m.privateWord.pointee.store(0, ordering: .releasing)
      dropped.append(p)
    }
    pageCount -= dropped.count
    return dropped
  }

  /// Zeroes the cached bytes from `offset` to the end of its page (`truncate_partial_folio` /
  /// `pagecache_isize_extended`). Nothing to do when `offset` is page-aligned or not cached.
  /// - Requires: the inode's `truncateLock` and `sizeLock` held (`Inode.truncate(to:)`).
  func zeroTail(from offset: UInt64) {
    lock.withLock { zeroTailLocked(from: offset) }
  }

  private func zeroTailLocked(from offset: UInt64) {
    let inPage = Int(Page.offset(offset))
    let v = tree.lookup(offset >> Page.shift)
    guard inPage != 0, v != 0 else { return }
    let p = PFN(UInt32(truncatingIfNeeded: v - 1))
    (frames.address(of: p) + inPage).initializeMemory(
      as: UInt8.self, repeating: 0, count: Page.byteCount - inPage)
  }

  /// Drops the clean pages with index in `[from, to)` that nobody maps or holds
  /// (`invalidate_mapping_pages`, what `MS_INVALIDATE` and `POSIX_FADV_DONTNEED` reach): the next
  /// access reads them from the backing store again. Dirty, mapped and referenced pages stay, and
  /// a cache that is its own storage (tmpfs) drops nothing.
  ///
  /// A page goes only if its count can be frozen from the cache's one reference to zero
  /// (`folio_ref_freeze` in `remove_mapping`): a lockless lookup racing the drop then fails to
  /// take a reference and looks again, so it never holds a page the cache no longer has.
  /// - Returns: the pages dropped.
  @discardableResult
  package func invalidate(from: UInt64, to: UInt64) -> Int {
    if backedByCache { return 0 }
    var candidates: [(UInt64, PFN)] = []
    lock.lock()
    tree.forEach(from: from, to: to) { index, p in candidates.append((index, p)) }
    var dropped: [PFN] = []
    for (index, p) in candidates {
      let m = frames.meta(p)
      if tree.hasTag(index, .dirty) || m.flags.contains(.dirty) || m.mapcount != 0 { continue }
      guard m.freeze(expected: 1) else { continue }
      tree.remove(index)
      m.privateWord.pointee.store(0, ordering: .releasing)
      dropped.append(p)
    }
    pageCount -= dropped.count
    // A fill that read the store before this page was written back must not insert now.
    if !dropped.isEmpty { removalSequence &+= 1 }
    let nodes = tree.takeRetired()
    lock.unlock()
    for p in dropped { frames.free(p) }
    tree.freeAfterGracePeriod(nodes)
    return dropped.count
  }

  // MARK: Accounting

  /// Pages held in the cache (`nr_pages`).
  package var residentPages: Int { lock.withLock { pageCount } }

  /// Pages read in and inserted so far (each one a major fault's worth of I/O).
  package var fills: Int { lock.withLock { fillCount } }

  /// Reads whose page another thread inserted first: the read was wasted and its frame dropped.
  var duplicateReads: Int { lock.withLock { raceLosses } }

  /// Nodes in the page-cache tree (accounting and tests).
  package var treeNodes: Int { lock.withLock { tree.nodeCount } }
}
