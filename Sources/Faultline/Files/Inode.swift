import Glibc
import Synchronization

/// An inode (`struct inode`): one file of a `FileSystem`, with its size, timestamps, page cache
/// (`i_mapping`) and the registry of mappings that map it (`i_mapping->i_mmap`).
///
/// Guards:
/// - `size`, `atimeNanoseconds`, `mtimeNanoseconds`, `ctimeNanoseconds`: atomics, read without
///   locks on the fault path (`i_size_read`). `size` changes only with `sizeLock` held.
/// - `truncateLock` (`i_rwsem`): serialises size changes (`truncate(to:)`, `punchHole`) and
///   `write(_:at:)`; held across their zaps (`unmapMappingRange`).
/// - `sizeLock`: makes "read `size`, then write the page to the backing store" (writeback) atomic
///   with "resize the backing store, then store `size`" (truncate), so that writeback never writes
///   beyond a new EOF. Writeback takes it after `mmap_lock` is dropped (msync, munmap).
/// - `mappingLock` (`i_mmap_rwsem`): guards `mappingTable`; held while `InodeMapping` tokens zap,
///   and by the address-space writer over a whole VMA split or merge (`vma_prepare` to
///   `vma_complete`), so a zap sees every mapping's entries covered by registered bounds.
///
/// Lock order: `LockOrder`.
///
/// Lifetime: the inode points at its file system `unowned` (the file system owns its inodes:
/// a strong pointer back would be a cycle). Whoever uses an inode keeps its file system alive,
/// normally through an `OpenFile` → `Mount` → file system chain.
public final class Inode: @unchecked Sendable {
  /// The file type (`S_IFMT`), reduced to the kinds the engine models.
  public enum Kind: Sendable {
    /// A regular file (`S_IFREG`), a directory (`S_IFDIR`), a FIFO (`S_IFIFO`).
    case regular, directory, fifo
  }

  /// The inode number (`i_ino`), shown in `/proc/self/maps`.
  public let ino: UInt64
  /// The file type (`i_mode & S_IFMT`).
  public let kind: Kind
  /// The file system this inode belongs to (`i_sb`).
  public unowned let fs: any FileSystem
  /// The file's pages (`i_mapping`).
  package let pageCache: PageCache
  /// A test hook called at `truncate(to:)`'s `WriterHookPoint`s with the new size (`nil`: none).
  package nonisolated(unsafe) var truncateHook: (@Sendable (WriterHookPoint, UInt64) -> Void)?
  /// The host descriptor of a `HostFS` inode; `nil` elsewhere.
  let hostFile: HostFile?

  private let sizeWord: Atomic<UInt64>
  private let atimeWord: Atomic<UInt64>
  private let mtimeWord: Atomic<UInt64>
  private let ctimeWord: Atomic<UInt64>

  let truncateLock = PThreadMutex()
  let sizeLock = PThreadMutex()
  private let mappingLock = PThreadMutex()
  private var mappingTable: [ObjectIdentifier: AnyObject] = [:]

  /// The largest file size (`s_maxbytes`): offsets must fit `loff_t`.
  public static let maxFileSize = UInt64(Int64.max)
  /// Relatime's staleness bound: an atime older than this is refreshed anyway.
  package static let relatimeInterval: UInt64 = 24 * 3600 * 1_000_000_000

  init(
    ino: UInt64, kind: Kind, fs: any FileSystem, memory: PhysicalMemory, size: UInt64 = 0,
    atime: UInt64? = nil, mtime: UInt64? = nil, hostFile: HostFile? = nil
  ) {
    self.ino = ino
    self.kind = kind
    self.fs = fs
    self.hostFile = hostFile
    let now = Self.wallClockNanoseconds()
    sizeWord = Atomic(size)
    atimeWord = Atomic(atime ?? now)
    mtimeWord = Atomic(mtime ?? now)
    ctimeWord = Atomic(mtime ?? now)
    pageCache = PageCache(inode: nil, memory: memory, backedByCache: fs.backedByCache)
    pageCache.inode = self
  }

  // MARK: Size and timestamps

  /// The file size in bytes (`i_size`). Lock-free to read; change it through `truncate(to:)` or
  /// `write(_:at:cache:)`, which keep the backing store and page cache in step. Setting it
  /// directly changes only the number.
  public var size: UInt64 {
    get { sizeWord.load(ordering: .acquiring) }
    set { sizeWord.store(newValue, ordering: .releasing) }
  }

  /// Last access, wall-clock nanoseconds since the epoch (`i_atime`).
  public var atimeNanoseconds: UInt64 {
    get { atimeWord.load(ordering: .relaxed) }
    set { atimeWord.store(newValue, ordering: .relaxed) }
  }

  /// Last modification, wall-clock nanoseconds since the epoch (`i_mtime`).
  public var mtimeNanoseconds: UInt64 {
    get { mtimeWord.load(ordering: .relaxed) }
    set { mtimeWord.store(newValue, ordering: .relaxed) }
  }

  /// Last status change, wall-clock nanoseconds since the epoch (`i_ctime`); moves with mtime.
  public var ctimeNanoseconds: UInt64 {
    get { ctimeWord.load(ordering: .relaxed) }
    set { ctimeWord.store(newValue, ordering: .relaxed) }
  }

  /// Records an access under Linux's default `relatime` rule (`touch_atime` →
  /// `atime_needs_update` → `relatime_need_update`): atime moves to now only when
  /// - atime <= mtime or atime <= ctime (the file changed since it was last read), or
  /// - atime is older than 24 hours (`relatimeInterval`),
  /// and never when atime already equals now. So a file read over and over costs one atime write
  /// per modification, not one per read.
  ///
  /// Racing callers update at most once per rule firing (a compare-and-exchange).
  /// - Returns: whether atime changed. The fault path counts these: an atime update by a fault
  ///   that raced `munmap` is a side effect the docs list.
  @discardableResult
  package func touchAtime() -> Bool {
    let atime = atimeWord.load(ordering: .relaxed)
    let now = Self.wallClockNanoseconds()
    guard atime != now else { return false }
    let changed = atime <= mtimeWord.load(ordering: .relaxed) || atime <= ctimeWord.load(ordering: .relaxed)
    let stale = now > atime && now - atime >= Self.relatimeInterval
    guard changed || stale else { return false }
    return atimeWord.compareExchange(expected: atime, desired: now, ordering: .relaxed).exchanged
  }

  /// Records a modification (`file_update_time`): mtime and ctime move to now.
  package func touchMtime() {
    let now = Self.wallClockNanoseconds()
    mtimeWord.store(now, ordering: .relaxed)
    ctimeWord.store(now, ordering: .relaxed)
  }

  /// The wall clock (`CLOCK_REALTIME`) in nanoseconds since the epoch: what timestamps hold.
  public static func wallClockNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
  }

  // MARK: Mappings (i_mmap)

  /// Registers a mapping of this inode (`vma_interval_tree_insert`). The registry holds `token`
  /// strongly until `removeMapping`; tokens conforming to `InodeMapping` are zapped by truncate.
  package func addMapping(_ token: AnyObject) {
    mappingLock.withLock { mappingTable[ObjectIdentifier(token)] = token }
  }

  /// Unregisters a mapping (`vma_interval_tree_remove`). Waits for a truncate that is zapping it.
  package func removeMapping(_ token: AnyObject) {
    _ = mappingLock.withLock { mappingTable.removeValue(forKey: ObjectIdentifier(token)) }
  }

  /// `addMapping`/`removeMapping` by a caller that holds the mapping lock (`lockMappings`).
  /// - Requires: the mapping lock held (`lockMappings`).
  func addMappingLocked(_ token: AnyObject) { mappingTable[ObjectIdentifier(token)] = token }
  /// - Requires: the mapping lock held (`lockMappings`).
  func removeMappingLocked(_ token: AnyObject) { mappingTable.removeValue(forKey: ObjectIdentifier(token)) }

  /// Takes and drops the mapping lock (`i_mmap_lock_write`/`i_mmap_unlock_write`) around a
  /// change that a zap must see whole: a VMA split or merge, a change of bounds, an mremap
  /// moving a mapping's entries (each is then found at its old place or its new one).
  /// - Requires: `mmap_lock` held for write (the writer's `vma_prepare`).
  func lockMappings() { mappingLock.lock() }
  func unlockMappings() { mappingLock.unlock() }

  /// Runs `body` on every registered mapping with the mapping lock held (`i_mmap_lock_read`), so
  /// that none can be torn down meanwhile. `body` may take PTLs only.
  func forEachMapping(_ body: (AnyObject) -> Void) {
    mappingLock.withLock { for t in mappingTable.values { body(t) } }
  }

  /// The registered mappings, as a snapshot in no particular order.
  package var mappings: [AnyObject] { mappingLock.withLock { Array(mappingTable.values) } }

  /// How many mappings are registered (`mapping_mapped`).
  package var mappingCount: Int { mappingLock.withLock { mappingTable.count } }

  /// Asks every registered `InodeMapping` to drop its PTEs for page `index` and beyond
  /// (`unmap_mapping_range`), with the mapping lock held so that no mapping leaves meanwhile.
  package func unmapMappingRange(fromPage index: UInt64) {
    mappingLock.lock()
    defer { mappingLock.unlock() }
    for token in mappingTable.values {
      (token as? InodeMapping)?.unmapMappingRange(of: self, fromPage: index)
    }
  }

  /// Punches a hole of whole pages `[first, last)` (`fallocate(FALLOC_FL_PUNCH_HOLE |
  /// FALLOC_FL_KEEP_SIZE)`, what `MADV_REMOVE` reaches): every mapping's PTEs for it are zapped
  /// (private copies stay), the cached pages (dirty ones included) are dropped, the backing
  /// store deallocates the range, and the mappings are zapped again for faults that raced the
  /// first pass. The range
  /// then reads as zeros; the size does not change.
  /// - Throws: `EOPNOTSUPP` when the file system cannot punch holes, or its error.
  package func punchHole(fromPage first: UInt64, toPage last: UInt64) throws(Errno) {
    guard kind == .regular else { throw kind == .directory ? .isDirectory : .operationNotSupportedByDevice }
    guard first < last else { return }
    truncateLock.lock()
    defer { truncateLock.unlock() }
    unmapMappingRange(fromPage: first, toPage: last)
    do {
      // Under sizeLock, which writeback holds while it writes: a page writeback already took
      // is either written before the backing store punches its hole, or found gone from the
      // cache and skipped (truncate_pagecache_range waits for writeback the same way).
      sizeLock.lock()
      defer { sizeLock.unlock() }
      pageCache.drop(from: first, to: last)
      try fs.punchHole(self, fromPage: first, toPage: last)
    }
    unmapMappingRange(fromPage: first, toPage: last)
    touchMtime()
  }

  /// `unmap_mapping_range` for file pages `[first, last)` in every mapping.
  /// - Requires: `truncateLock` held (`punchHole`).
  func unmapMappingRange(fromPage first: UInt64, toPage last: UInt64) {
    mappingLock.lock()
    defer { mappingLock.unlock() }
    for token in mappingTable.values {
      (token as? InodeMapping)?.unmapMappingRange(of: self, fromPage: first, toPage: last)
    }
  }

  // MARK: Size changes and data

  /// Sets the file size (`do_truncate` → `notify_change` → `truncate_setsize` and the file
  /// system's `setattr`): resizes the backing store, stores `size`, and when shrinking zaps the
  /// mappings beyond the new EOF, drops those pages from the cache and zeroes the tail of the
  /// EOF page, then zaps again (`truncate_pagecache`: the second pass catches faults that raced
  /// the first). Growing zeroes the tail of the old EOF page, so the new bytes read as zeros.
  /// Updates mtime and ctime.
  /// - Throws: `EINVAL` for a non-regular inode, `EFBIG` beyond `maxFileSize`, or the backing
  ///   store's error (the size is then unchanged).
  package func truncate(to newSize: UInt64) throws(Errno) {
    guard kind == .regular else { throw .invalidArgument }
    guard newSize <= Self.maxFileSize else { throw .fileTooLarge }
    truncateLock.lock()
    defer { truncateLock.unlock() }
    let old = size
    do {
      sizeLock.lock()
      defer { sizeLock.unlock() }
      try fs.setSize(self, newSize)
      if newSize > old { pageCache.zeroTail(from: old) }
      size = newSize
    }
    truncateHook?(.afterSizeChange, newSize)
    if newSize < old {
      let holeBegin = Page.covering(newSize)
      unmapMappingRange(fromPage: holeBegin)
      truncateHook?(.afterZap, newSize)
      pageCache.truncate(to: newSize)
      unmapMappingRange(fromPage: holeBegin)
    }
    touchMtime()
  }

  /// Reads up to `buffer.count` bytes at `offset` through the page cache (`filemap_read`),
  /// stopping at EOF, and records the access (relatime).
  /// - Returns: the bytes read (0 at or beyond EOF).
  /// - Throws: `EISDIR` for a directory, `EINVAL` for another non-regular inode, `ENOMEM`, or
  ///   the backing store's error.
  package func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64, cache: FrameCache? = nil)
    throws(Errno) -> Int
  {
    try checkRegular()
    let size = self.size
    guard offset < size, buffer.count > 0 else { return 0 }
    let total = Int(min(UInt64(buffer.count), size - offset))
    try copyPages(offset: offset, count: total, cache: cache) { page, pageOffset, done, n in
      (buffer.baseAddress! + done).copyMemory(from: page + pageOffset, byteCount: n)
    }
    touchAtime()
    return total
  }

  /// Writes `bytes` at `offset` through the page cache (`generic_perform_write`): each page is
  /// read in if absent, copied into and marked dirty; `size` grows to cover the write. The data
  /// reaches the backing store at writeback. Updates mtime and ctime.
  /// - Returns: `bytes.count`.
  /// - Throws: `EISDIR`/`EINVAL` for a non-regular inode, `EFBIG` past `maxFileSize`, `ENOMEM`,
  ///   or the backing store's error.
  @discardableResult
  package func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64, cache: FrameCache? = nil) throws(Errno)
    -> Int
  {
    try checkRegular()
    guard bytes.count > 0 else { return 0 }
    let (end, overflow) = offset.addingReportingOverflow(UInt64(bytes.count))
    guard !overflow, end <= Self.maxFileSize else { throw .fileTooLarge }
    truncateLock.lock()
    defer { truncateLock.unlock() }
    try copyPages(offset: offset, count: bytes.count, cache: cache) { page, pageOffset, done, n in
      (page + pageOffset).copyMemory(from: bytes.baseAddress! + done, byteCount: n)
    } dirty: { index, page in
      self.pageCache.markDirty(index, page: page)
    }
    if end > size {
      sizeLock.lock()
      if end > size { size = end }
      sizeLock.unlock()
    }
    touchMtime()
    return bytes.count
  }

  private func checkRegular() throws(Errno) {
    switch kind {
    case .regular: return
    case .directory: throw .isDirectory
    case .fifo: throw .invalidArgument
    }
  }

  /// Walks the pages covering `[offset, offset + count)`, handing `body` each page's address, the
  /// offset in the page, the bytes done so far and the bytes in this page; then `dirty`, which
  /// answers whether the page is still cached.
  private func copyPages(
    offset: UInt64, count: Int, cache: FrameCache?,
    _ body: (UnsafeMutableRawPointer, Int, Int, Int) -> Void,
    dirty: ((UInt64, PFN) -> Bool)? = nil
  ) throws(Errno) {
    let pageSize = Page.byteCount
    let memory = pageCache.memory
    var done = 0
    while done < count {
      let position = offset + UInt64(done)
      let index = position >> Page.shift
      let inPage = Int(position & UInt64(pageSize - 1))
      let n = min(pageSize - inPage, count - done)
      let (page, _) = try pageCache.findOrRead(index, cache: cache)
      body(memory.address(of: page), inPage, done, n)
      // Dirty after the copy, so that a writeback in between cannot clean the page before the
      // bytes are in; if the page left the cache meanwhile, copy into its successor again.
      let kept = dirty?(index, page) ?? true
      memory.put(page, cache: cache)
      if kept { done += n }
    }
  }
}
