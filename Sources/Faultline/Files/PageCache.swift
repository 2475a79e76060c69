/// One inode's page cache (`struct address_space` and `mm/filemap.c`): frames of the machine's
/// `PhysicalMemory` keyed by page index, with a dirty set for writeback.
///
/// References: the cache holds one reference on every page it holds; `find` and `findOrRead`
/// take one more for the caller, who puts it (`folio_put`). A page-table entry holds its own, so
/// a page dropped by truncate stays alive while mapped and is freed when its PTE goes.
///
/// Membership: a cached frame's `FrameMeta.index` is its page index and its private word names
/// this cache (`page->mapping`); dropping the page clears the private word. `owns(_:at:)` reads
/// both without the lock, so a fault can re-check under the PTL that truncate did not take the
/// page away meanwhile.
///
/// Guards: `lock`, the page-cache lock of `LockOrder` (a leaf, never held with a PTL), guards
/// `pages`, `dirty`, `truncateSequence`,
/// `fillCount` and `raceLosses`. Reading from and writing to the backing store happen without it.
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

  private let lock = PThreadMutex()
  private var pages: [UInt64: PFN] = [:]
  private var dirty: Set<UInt64> = []
  /// Bumped by every truncate, so that a read that raced one does not insert stale data.
  private var truncateSequence: UInt64 = 0
  private var fillCount = 0
  private var raceLosses = 0

  /// The largest page index: byte offsets must fit `Inode.maxFileSize`.
  package static let maxIndex = Inode.maxFileSize >> Page.shift

  /// - Parameters:
  ///   - inode: the owner; `Inode` wires itself in after creating its cache.
  ///   - memory: the arena its pages are allocated from.
  ///   - backedByCache: `true` when the cache is the storage itself (tmpfs).
  package init(inode: Inode?, memory: PhysicalMemory, backedByCache: Bool = false) {
    self.inode = inode
    self.memory = memory
    frames = memory.frames
    self.backedByCache = backedByCache
  }

  deinit {
    for (_, pfn) in pages {
      let m = frames.meta(pfn)
      m.clearFlags(.dirty)
      m.privateWord.pointee.store(0, ordering: .relaxed)
      frames.put(pfn)
    }
  }

  /// The value a cached frame's private word holds: this cache's address.
  @inline(__always) private var tag: UInt64 {
    UInt64(UInt(bitPattern: Unmanaged.passUnretained(self).toOpaque()))
  }

  // MARK: Lookup and fill

  /// The page at `index` with a reference taken for the caller, or `nil`; never does I/O
  /// (`filemap_get_folio`).
  package func find(_ index: UInt64) -> PFN? {
    lock.lock()
    defer { lock.unlock() }
    guard let p = pages[index] else { return nil }
    frames.meta(p).get()
    return p
  }

  /// Whether a page is cached at `index` (`mincore`'s `filemap_get_incore_folio`).
  package func contains(_ index: UInt64) -> Bool {
    lock.lock()
    defer { lock.unlock() }
    return pages[index] != nil
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
  /// truncate ran meanwhile, ours is dropped and the lookup starts again.
  /// - Throws: `ENOMEM` when out of frames, `EFBIG` for an index past `maxIndex`, or the backing
  ///   store's error (`EIO`).
  ///
  /// With `withinEOF` (the fault path), a page at or beyond the inode's EOF is never read in:
  /// `ENXIO`. The size is checked before the read and again under the cache lock before the
  /// insert, so a page cannot slip in behind a truncate that already dropped it (what Linux's
  /// `invalidate_lock` ensures).
  package func findOrRead(_ index: UInt64, cache: FrameCache?, withinEOF: Bool = false) throws(Errno) -> (page: PFN, filled: Bool) {
    guard index <= Self.maxIndex else { throw .fileTooLarge }
    func beyondEOF() -> Bool {
      guard withinEOF, let inode else { return false }
      return index >= Page.covering(inode.size)
    }
    while true {
      lock.lock()
      if let p = pages[index] {
        frames.meta(p).get()
        lock.unlock()
        return (p, false)
      }
      let sequence = truncateSequence
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
      if let p = pages[index] {
        frames.meta(p).get()
        raceLosses += 1
        lock.unlock()
        frames.put(new, cache: cache)
        return (p, false)
      }
      if truncateSequence != sequence {
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
      pages[index] = new
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

  /// Marks the cached page at `index` dirty (`folio_mark_dirty`): sets `PageFlags.dirty` and
  /// records the index for writeback. Does nothing when the page is not cached.
  package func markDirty(_ index: UInt64) {
    lock.lock()
    defer { lock.unlock() }
    guard let p = pages[index] else { return }
    frames.meta(p).setFlags(.dirty)
    dirty.insert(index)
  }

  /// Marks `page` dirty if it is still the cached page at `index`.
  /// - Returns: `false` when the cache no longer holds `page` there (truncated or invalidated).
  @discardableResult
  package func markDirty(_ index: UInt64, page: PFN) -> Bool {
    lock.lock()
    defer { lock.unlock() }
    guard pages[index] == page else { return false }
    frames.meta(page).setFlags(.dirty)
    dirty.insert(index)
    return true
  }

  /// Whether the page at `index` is cached and dirty.
  package func isDirty(_ index: UInt64) -> Bool { lock.withLock { dirty.contains(index) } }

  /// Dirty pages awaiting writeback.
  package var dirtyCount: Int { lock.withLock { dirty.count } }

  /// Writes every dirty page with index in `[from, to)` to the backing store
  /// (`filemap_write_and_wait_range` → `do_writepages`) and clears its dirty state. Only the bytes
  /// below `size` are written for the EOF page; a page wholly beyond EOF (truncate raced) is
  /// cleaned and skipped.
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
    for index in dirty where index >= from && index < to {
      guard let p = pages[index] else { continue }
      batch.append((index, p))
    }
    for (index, p) in batch {
      let m = frames.meta(p)
      m.get()
      m.clearFlags(.dirty)
      dirty.remove(index)
    }
    lock.unlock()
    if batch.isEmpty { return 0 }
    batch.sort { $0.index < $1.index }
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
    lock.unlock()
    for p in dropped { frames.put(p) }
  }

  /// Drops the pages with index in `[from, to)`, dirty ones included (`truncate_inode_pages_range`
  /// for a punched hole). Mappings must have been zapped first.
  /// - Requires: the inode's `truncateLock` and `sizeLock` held (`Inode.punchHole`).
  func drop(from: UInt64, to: UInt64) {
    lock.lock()
    let dropped = removeLocked(from: from, to: to)
    lock.unlock()
    for p in dropped { frames.put(p) }
  }

  /// Takes the pages with index in `[from, to)` out of the cache, dirty state and all, and bumps
  /// `truncateSequence`; returns them for the caller to put after unlocking.
  /// - Requires: `lock` held.
  private func removeLocked(from: UInt64, to: UInt64) -> [PFN] {
    truncateSequence &+= 1
    var dropped: [PFN] = []
    for (index, p) in pages where index >= from && index < to { dropped.append(p) }
    for p in dropped {
      let m = frames.meta(p)
      pages[m.index] = nil
      dirty.remove(m.index)
      m.clearFlags(.dirty)
      m.privateWord.pointee.store(0, ordering: .releasing)
    }
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
    guard inPage != 0, let p = pages[offset >> Page.shift] else { return }
    (frames.address(of: p) + inPage).initializeMemory(
      as: UInt8.self, repeating: 0, count: Page.byteCount - inPage)
  }

  /// Drops the clean pages with index in `[from, to)` that nobody maps or holds
  /// (`invalidate_mapping_pages`, what `MS_INVALIDATE` and `POSIX_FADV_DONTNEED` reach): the next
  /// access reads them from the backing store again. Dirty, mapped and referenced pages stay, and
  /// a cache that is its own storage (tmpfs) drops nothing.
  /// - Returns: the pages dropped.
  @discardableResult
  package func invalidate(from: UInt64, to: UInt64) -> Int {
    if backedByCache { return 0 }
    var dropped: [PFN] = []
    lock.lock()
    for (index, p) in pages where index >= from && index < to {
      let m = frames.meta(p)
      if dirty.contains(index) || m.mapcount != 0 || m.refcount != 1 { continue }
      dropped.append(p)
    }
    for p in dropped {
      let m = frames.meta(p)
      pages[m.index] = nil
      m.privateWord.pointee.store(0, ordering: .releasing)
    }
    lock.unlock()
    for p in dropped { frames.put(p) }
    return dropped.count
  }

  // MARK: Accounting

  /// Pages held in the cache (`nr_pages`).
  package var residentPages: Int { lock.withLock { pages.count } }

  /// Pages read in and inserted so far (each one a major fault's worth of I/O).
  package var fills: Int { lock.withLock { fillCount } }

  /// Reads whose page another thread inserted first: the read was wasted and its frame dropped.
  var duplicateReads: Int { lock.withLock { raceLosses } }
}
