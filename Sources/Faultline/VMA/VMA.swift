import Synchronization

/// A virtual memory area (`struct vm_area_struct`).
///
/// Fields that writers change in place (bounds, flags, pgoff, anon) are atomics: speculative
/// readers load them without `mmap_lock` and validate against `vmSequence`. Writers hold
/// `mmap_lock` for write, bump `vmSequence` around every change (`vm_write_begin/end`), and must
/// remove a VMA from the tree before changing its bounds and insert it again after.
///
/// Lifetime: the tree holds one reference (`refcount` starts at 1). A VMA leaving the tree is
/// retired: its tree reference is dropped after an RCU grace period, and the object is released
/// with the last reference (`vm_area_free` after `put_vma` in SPF v12).
package final class VMA: @unchecked Sendable, CustomStringConvertible {
  unowned(unsafe) let mm: AddressSpace
  private let startWord: Atomic<UInt64>
  private let endWord: Atomic<UInt64>
  private let flagsWord: Atomic<UInt64>
  private let pgoffWord: Atomic<UInt64>
  /// Identity of the `anon_vma` (0 until the first anonymous fault prepares one).
  private let anonWord = Atomic<UInt64>(0)
  /// The shmem object behind a shared anonymous mapping (Linux's `vm_file` for it).
  package let shmem: ShmemFile?
  /// The mapped file (`vm_file`), holding one file reference (`get_file` at mmap and split),
  /// released when the VMA leaves the tree (`FputMode.synchronous`) or with its last reference
  /// (`.deferred`).
  package let file: OpenFile?
  /// The attach a System V segment's VMA came from (`shmat`'s own `struct file`, the
  /// `shm_file_data` around the segment): VMAs of two attaches of one segment never merge.
  let sysvAttach: SysVAttach?
  let fileRef: Unmanaged<OpenFile>?
  /// Whether a write fault that makes a page of the file writable calls the file system's
  /// `->page_mkwrite` (`vma->vm_ops->page_mkwrite != NULL`), fixed when the VMA is made, as
  /// Linux fixes `vm_ops` at mmap (`FileSystem.hasPageMkwrite`).
  let hasPageMkwrite: Bool
  /// Whether the mapped file's file system lets speculative faults run its fault path
  /// (`FileSystem.speculativeSafe`), fixed when the VMA is made. `false` without a file.
  let fileSpeculativeSafe: Bool
  /// The file reference was put already.
  private let filePut = Atomic<Bool>(false)
  /// A deferred file reference counted as an in-flight mount user until it is put.
  private let fileInFlight = Atomic<Bool>(false)
  /// `vm_sequence` (SPF v12): odd while a writer changes this VMA.
  package let vmSequence = SeqCount()
  /// References: the tree's, plus one per speculative user.
  let refcount = Atomic<Int>(1)
  /// Per-VMA lock (Linux 6.4): readers try-lock it for a fault; `vmaStartWrite` takes it for
  /// write to wait them out. `vmLockSeq == mm.mmLockSeq` means write-locked until
  /// `mmap_write_unlock`.
  let vmLock: RWSemaphoreView
  let vmLockSeq = Atomic<UInt64>(UInt64.max)
  /// Whether this is private anonymous memory (`vma_is_anonymous`): no file and no shmem object.
  /// Shared anonymous memory has its `ShmemFile`, so it is not.
  let isAnonymous: Bool
  /// Set once the VMA has left the tree for good (`vma->detached`).
  private let detachedWord = Atomic<Bool>(false)
  /// The VMA's anon_vma chain holds more than its own anon_vma: it was copied by `fork` from a
  /// VMA that had one (`vma_had_uncowed_parents`). Such a VMA never merges with one that has no
  /// anon_vma, and its anon_vma is not reused by a neighbour. Writer-only (`mmap_lock`).
  var anonChainShared = false
  /// The write transaction that last made `vmSequence` odd (writer-only).
  var writeGeneration: UInt64 = 0

  init(
    mm: AddressSpace, start: UInt64, end: UInt64, flags: VMFlags, pgoff: UInt64, shmem: ShmemFile?,
    file: OpenFile? = nil, sysvAttach: SysVAttach? = nil
  ) {
    self.mm = mm
    startWord = Atomic(start)
    endWord = Atomic(end)
    flagsWord = Atomic(flags.rawValue)
    pgoffWord = Atomic(pgoff)
    self.shmem = shmem
    self.file = file
    self.sysvAttach = sysvAttach
    fileRef = file.map { Unmanaged.passUnretained($0) }
    hasPageMkwrite = file?.inode.fs.hasPageMkwrite ?? false
    fileSpeculativeSafe = file?.inode.fs.speculativeSafe ?? false
    isAnonymous = shmem == nil && file == nil
    vmLock = RWSemaphoreView.allocate()
  }

  deinit {
    releaseFile()
    vmLock.words.deallocate()
  }

  /// What merge rules compare (`vm_file`): the file object, or the shmem object (for a System
  /// V segment, its attach).
  var backing: AnyObject? { sysvAttach ?? file ?? shmem }

  /// Puts the VMA's file reference, once (`fput`).
  func releaseFile() {
    guard let file else { return }
    if filePut.exchange(true, ordering: .acquiringAndReleasing) { return }
    if fileInFlight.load(ordering: .acquiring) { file.mount.noteTransient(-1) }
    file.fput()
  }

  /// Marks the still-held file reference of a detached VMA as in flight (deferred fput).
  func markFileInFlight() {
    guard let file, !filePut.load(ordering: .acquiring) else { return }
    if !fileInFlight.exchange(true, ordering: .acquiringAndReleasing) { file.mount.noteTransient(1) }
  }

  /// The fields a fault reads, in one copy (relaxed loads; validate with a sequence count).
  @inline(__always)
  func snapshot() -> VMASnapshot {
    VMASnapshot(
      start: start, end: end, pgoff: pgoff, flags: flags, anonVMA: anonVMA, isAnonymous: isAnonymous,
      hasPageMkwrite: hasPageMkwrite, file: fileRef, object: Unmanaged.passUnretained(self))
  }

  /// First address (`vm_start`).
  @inline(__always) package var start: UInt64 { startWord.load(ordering: .relaxed) }
  /// One past the last address (`vm_end`).
  @inline(__always) package var end: UInt64 { endWord.load(ordering: .relaxed) }
  /// The VMA's flags (`vm_flags`).
  @inline(__always) package var flags: VMFlags { VMFlags(rawValue: flagsWord.load(ordering: .relaxed)) }
  /// Offset in pages into the backing object (`vm_pgoff`). Private anonymous memory starts with
  /// `start >> 12` and keeps its offset when mremap moves it (unless it has no anon_vma yet).
  @inline(__always) package var pgoff: UInt64 { pgoffWord.load(ordering: .relaxed) }
  /// The VMA's anon_vma as an id: 0 until the first fault that needs one (`anon_vma_prepare`).
  @inline(__always) var anonVMA: UInt64 { anonWord.load(ordering: .acquiring) }
  /// Length in pages (`vma_pages`).
  @inline(__always) package var pages: UInt64 { (end - start) >> Page.shift }
  /// Whether `addr` lies in `start..<end`.
  @inline(__always) package func contains(_ addr: UInt64) -> Bool { addr >= start && addr < end }

  /// The page offset of `addr` in the backing object (`linear_page_index`).
  @inline(__always) func pageIndex(_ addr: UInt64) -> UInt64 { ((addr - start) >> Page.shift) + pgoff }

  // MARK: Writer side (mmap_lock held for write; the VMA is out of the tree for bound changes)

  /// - Requires: `mmap_lock` held for write, `vmaWriteBegin` done, the VMA out of the tree, and its
  ///   backing object's mapping lock held.
  func setBounds(start: UInt64, end: UInt64, pgoff: UInt64) {
    startWord.store(start, ordering: .relaxed)
    endWord.store(end, ordering: .relaxed)
    pgoffWord.store(pgoff, ordering: .relaxed)
  }

  /// Runs `body` with the backing object's mapping lock held (`i_mmap_lock_write` on
  /// `vm_file`'s mapping), or just runs it for private anonymous memory.
  /// - Requires: `mmap_lock` held for write.
  func withBackingMappingsLocked<T>(_ body: () -> T) -> T {
    lockBackingMappings()
    defer { unlockBackingMappings() }
    return body()
  }

  /// Takes or drops the backing object's mapping lock (`vma_prepare`/`vma_complete`).
  /// - Requires: `mmap_lock` held for write.
  func lockBackingMappings() {
    if let file { file.inode.lockMappings() } else { shmem?.lockMappings() }
  }
  func unlockBackingMappings() {
    if let file { file.inode.unlockMappings() } else { shmem?.unlockMappings() }
  }

  /// `true` once removed from the tree.
  /// - Requires: `mmap_lock` held for write.
  @inline(__always) var isDetached: Bool { detachedWord.load(ordering: .acquiring) }
  func markDetached() { detachedWord.store(true, ordering: .releasing) }

  /// Ends the write that `AddressSpace.vmaWriteBegin` started.
  /// - Requires: `mmap_lock` held for write.
  func endWrite() { vmSequence.writeEnd() }

  /// - Requires: `mmap_lock` held for write, after `vmaWriteBegin` (`AddressSpace.setVMAFlags`).
  func setFlags(_ f: VMFlags) { flagsWord.store(f.rawValue, ordering: .relaxed) }
  /// - Requires: `mmap_lock` held for write.
  func setAnonVMA(_ id: UInt64) { anonWord.store(id, ordering: .releasing) }

  /// Takes `id` (with its chain state) as this VMA's anon_vma when it has none yet: what a
  /// merge does with the anon_vma the other side brings (`dup_anon_vma`).
  /// - Requires: `mmap_lock` held for write.
  func adoptAnonVMA(_ id: UInt64, chainShared: Bool) {
    guard anonVMA == 0, id != 0 else { return }
    setAnonVMA(id)
    anonChainShared = chainShared
  }

  /// Sets the anon_vma if none is set yet; returns the one in place (`anon_vma_prepare` under
  /// `page_table_lock`).
  /// - Requires: `mmap_lock` held, for read at least (racing faults settle by the
  ///   compare-and-swap).
  func installAnonVMA(_ id: UInt64) -> UInt64 {
    let (won, current) = anonWord.compareExchange(expected: 0, desired: id, ordering: .acquiringAndReleasing)
    return won ? id : current
  }

  // MARK: References

  /// Takes a reference (`get_vma`).
  @inline(__always) func get() { refcount.wrappingAdd(1, ordering: .relaxed) }

  /// Drops a reference (`put_vma`); the last one releases the object.
  @inline(__always) func put() {
    if refcount.wrappingSubtract(1, ordering: .acquiringAndReleasing).oldValue == 1 { free() }
  }

  /// Releases the object once its last reference is gone (`vm_area_free`).
  @inline(never)
  func free() { Unmanaged.passUnretained(self).release() }

  package var description: String {
    "VMA(\(hex(start))-\(hex(end)) \(flags.permissionString) pgoff \(pgoff))"
  }
}

@inline(__always) func hex(_ v: UInt64) -> String { String(v, radix: 16) }

extension VMA: InodeMapping {
  /// Zaps this VMA's PTEs for file pages at `index` and beyond (`unmap_mapping_range` for one
  /// VMA, private COW copies included, as truncate requires). Runs under the inode's mapping
  /// lock, taking only PTLs; frames are released after a grace period.
  /// - Requires: the inode's mapping lock held.
  package func unmapMappingRange(of inode: Inode, fromPage index: UInt64) {
    zapPages(fromPage: index, toPage: .max, evenCows: true)
  }

  /// Zaps this VMA's PTEs for file pages in `[first, last)` (a punched hole): private copies
  /// stay, as `unmap_mapping_range(..., even_cows = 0)` leaves them.
  /// - Requires: the inode's mapping lock held.
  package func unmapMappingRange(of inode: Inode, fromPage first: UInt64, toPage last: UInt64) {
    zapPages(fromPage: first, toPage: last, evenCows: false)
  }

  /// Zaps this VMA's PTEs for pages of its backing object with index in `[first, last)`, and
  /// its private (anonymous) copies of them with `evenCows` (truncate). Takes only PTLs; frames
  /// go after a grace period, waited for here.
  /// - Requires: the backing object's mapping lock held (its registry pins this VMA's bounds and
  ///   page tables).
  func zapPages(fromPage first: UInt64, toPage last: UInt64, evenCows: Bool) {
    let (start, end, pgoff) = (self.start, self.end, self.pgoff)
    let pages = (end - start) >> Page.shift
    guard first < pgoff + pages, last > pgoff else { return }
    let from = first > pgoff ? start + ((first - pgoff) << Page.shift) : start
    let to = last < pgoff + pages ? start + ((last - pgoff) << Page.shift) : end
    var gather = MMUGather()
    mm.pageTable.zapRange(from, to, gather: &gather, keepAnon: !evenCows)
    gather.finish(machine: mm.machine, synchronous: true)
  }
}
