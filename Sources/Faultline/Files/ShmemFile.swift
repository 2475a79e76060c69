/// The shmem object behind a `MAP_SHARED | MAP_ANONYMOUS` mapping (`shmem_zero_setup`): a page
/// cache keyed by page index, so that pages survive `MADV_DONTNEED` and every VMA split from the
/// mapping sees the same pages.
///
/// Faultline keeps it minimal on purpose: a fixed size (the mmap's length), no swap, no
/// writeback. Its inode number shows in `/proc/self/maps` as Linux shows `/dev/zero (deleted)`.
/// Guards: `lock` guards `pages`. Lock order: `LockOrder` (never held with a PTL).
package final class ShmemFile: @unchecked Sendable {
  /// The inode number `/proc/self/maps` shows for mappings of the object.
  package let inode: UInt64
  /// The path `/proc/self/maps` shows, before ` (deleted)`: `/dev/zero` for shared anonymous
  /// memory, `/SYSV<key>` for a System V segment.
  package let name: String
  /// The object's size in bytes (`i_size`): the length of the mmap that created it. Growing a
  /// mapping with mremap does not grow the object; a fault beyond it is SIGBUS.
  package let size: UInt64
  let memory: PhysicalMemory
  /// The hugetlbfs side of a `MAP_HUGETLB` mapping's object (`nil` for ordinary shmem).
  let hugetlb: HugeTLBFile?
  let lock = PThreadMutex()
  /// Guarded by `lock`.
  var pages: [UInt64: PFN] = [:]
  /// A private hugetlb mapping's fork copies (`ShmemFile+HugeTLB.swift`), in the object `mmap`
  /// made, which owns the reservations. Guarded by `lock`.
  var forkCopies: [WeakShmemFile] = []
  /// The object a fork copy was copied from, first or through other copies (`nil` in the
  /// owner itself).
  weak var owner: ShmemFile?
  /// The VMAs mapping this object (its `i_mmap`), guarded by `mappingLock`.
  private let mappingLock = PThreadMutex()
  private var mappings: [ObjectIdentifier: VMA] = [:]

  /// Whether this is a System V segment's object (Linux: a VMA with `shm_vm_ops`).
  var isSysVSegment: Bool { name.hasPrefix("/SYSV") }

  /// The VMAs mapping the object now, in every address space (System V's `shm_nattch`).
  var mappingCount: Int { mappingLock.withLock { mappings.count } }

  func addMapping(_ v: VMA) { mappingLock.withLock { mappings[ObjectIdentifier(v)] = v } }
  func removeMapping(_ v: VMA) { _ = mappingLock.withLock { mappings.removeValue(forKey: ObjectIdentifier(v)) } }
  /// As `Inode.addMappingLocked`, `removeMappingLocked`, `lockMappings` and `unlockMappings`.
  /// - Requires: the mapping lock held (`lockMappings`).
  func addMappingLocked(_ v: VMA) { mappings[ObjectIdentifier(v)] = v }
  /// - Requires: the mapping lock held (`lockMappings`).
  func removeMappingLocked(_ v: VMA) { mappings.removeValue(forKey: ObjectIdentifier(v)) }
  /// - Requires: `mmap_lock` held for write (the writer's `vma_prepare`).
  func lockMappings() { mappingLock.lock() }
  func unlockMappings() { mappingLock.unlock() }

  /// Whether a VMA other than `vma` maps one of page indexes `[first, last)` (the other end of
  /// a move, or a fork child's copy of a private hugetlb mapping, whose pages must stay).
  func isMapped(outside vma: VMA, fromPage first: UInt64, toPage last: UInt64) -> Bool {
    mappingLock.withLock {
      mappings.values.contains { $0 !== vma && $0.pgoff < last && $0.pgoff + $0.pages > first }
    }
  }

  /// Whether any VMA maps the object.
  var isMapped: Bool { mappingLock.withLock { !mappings.isEmpty } }

  /// Zaps page indexes `[first, last)` in every mapping (`unmap_mapping_range`).
  func unmapMappingRange(fromPage first: UInt64, toPage last: UInt64) {
    mappingLock.withLock { for v in mappings.values { v.zapPages(fromPage: first, toPage: last, evenCows: false) } }
  }

  /// `shmem_fallocate(PUNCH_HOLE)`: zap the range everywhere, drop its pages, zap again for
  /// faults that raced the first pass.
  func punchHoleEverywhere(_ first: UInt64, _ last: UInt64) {
    unmapMappingRange(fromPage: first, toPage: last)
    punchHole(first, last)
    unmapMappingRange(fromPage: first, toPage: last)
  }

  init(inode: UInt64, size: UInt64, memory: PhysicalMemory, hugetlb: HugeTLBFile? = nil, name: String = "/dev/zero") {
    self.inode = inode
    self.name = name
    self.size = size
    self.memory = memory
    self.hugetlb = hugetlb
  }

  deinit {
    for (_, pfn) in pages {
      memory.meta(pfn).privateWord.pointee.store(0, ordering: .relaxed)
      memory.put(pfn)
    }
  }

  /// What a cached frame's private word holds: this object's address (`folio->mapping`).
  var tag: UInt64 { UInt64(UInt(bitPattern: Unmanaged.passUnretained(self).toOpaque())) }

  /// Whether `page` is still this object's page at `index`, read without the lock: a fault
  /// checks it under the PTL, so that a page punched out meanwhile is not mapped.
  func owns(_ page: PFN, at index: UInt64) -> Bool {
    let m = memory.meta(page)
    return m.privateWord.pointee.load(ordering: .acquiring) == tag && m.index == index
  }

  /// The page at `index`, created zero-filled if absent, with a reference taken for the caller
  /// (`shmem_get_folio`). `nil` when out of memory.
  func getPage(_ index: UInt64, cache: FrameCache?) -> PFN? {
    precondition(!beyondSize(index), "shmem page beyond its size")
    return lock.withLock { () -> PFN? in
      if let p = pages[index] {
        memory.meta(p).get()
        return p
      }
      guard let p = memory.allocateZeroed(cache: cache, flags: [.shmem, .uptodate]) else { return nil }
      memory.meta(p).index = index
      memory.meta(p).privateWord.pointee.store(tag, ordering: .releasing)
      memory.meta(p).get()  // one for the cache, one for the caller
      pages[index] = p
      return p
    }
  }

  /// Drops the pages with index in `[from, to)` (`shmem_fallocate(PUNCH_HOLE)`). Mappings must
  /// have been zapped first; a page still mapped keeps its frame until its PTE goes.
  func punchHole(_ from: UInt64, _ to: UInt64) {
    hugetlb?.release(fromPage: from, toPage: to)
    dropPages(from, to)
  }

  /// Drops the cache's pages with index in `[from, to)`, leaving a hugetlb file's folios alone.
  func dropPages(_ from: UInt64, _ to: UInt64) {
    let dropped: [PFN] = lock.withLock {
      var out: [PFN] = []
      for (index, pfn) in pages where index >= from && index < to {
        out.append(pfn)
        pages[index] = nil
        memory.meta(pfn).privateWord.pointee.store(0, ordering: .releasing)
      }
      return out
    }
    for p in dropped { memory.put(p) }
  }

  /// Drops page `index` if it was never dirtied and nothing maps it (reclaim of a clean shmem
  /// folio: the next access finds a hole and reads zeros, which is what the page held).
  func dropIfClean(_ index: UInt64) {
    let dropped: PFN? = lock.withLock {
      guard let p = pages[index] else { return nil }
      let m = memory.meta(p)
      // Only the cache's own reference: a fault that got the page keeps it (__remove_mapping
      // freezes the refcount).
      if m.flags.contains(.dirty) || m.mapcount != 0 || m.refcount != 1 { return nil }
      pages[index] = nil
      m.privateWord.pointee.store(0, ordering: .releasing)
      return p
    }
    if let dropped { memory.put(dropped) }
  }

  /// Whether page `index` lies beyond the object's size (`shmem_get_folio`: SIGBUS).
  func beyondSize(_ index: UInt64) -> Bool { index >= Page.covering(size) }

  /// Whether the page at `index` exists (`mincore` on shmem; a hugetlb mapping's answer comes
  /// from its page table instead).
  func hasPage(_ index: UInt64) -> Bool { lock.withLock { pages[index] != nil } }

  /// Pages held in the cache.
  package var residentPages: Int { lock.withLock { pages.count } }
}
