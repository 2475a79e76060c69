import Synchronization

/// What makes a shmem object a hugetlbfs file (`fs/hugetlbfs/inode.c`, the anonymous
/// `/anon_hugepage` file `MAP_HUGETLB` creates): its huge page size, the huge pages reserved
/// for it and not yet faulted (its `resv_map`), and the huge pages it holds, all counted in the
/// machine's `HugeTLBPool`.
///
/// A `MAP_PRIVATE` mapping's pages are its own (Linux: anonymous folios); after `fork` the
/// child's mapping gets its own `HugeTLBFile` (`forkCopy`) holding the same `HugeFolio`s, and a
/// write to a folio both hold copies it (`hugetlb_wp`). Only the mapping `mmap` made owns
/// reservations (`HPAGE_RESV_OWNER`); a fork copy has none.
///
/// Faultline deliberately differs from Linux in the memory behind a huge page: a fault takes a
/// whole huge page from the pool (the count Linux keeps) but maps one 4 KiB PTE of the object's
/// arena frames, as a shared anonymous fault does; the next access to another base page of the
/// same huge page faults again without touching the pool. Linux maps the whole huge page with
/// one PMD (or PUD) entry. Counts, `SIGBUS`, alignment and split rules, `mincore` and smaps'
/// `KernelPageSize` follow Linux; the frames are neither contiguous nor aligned.
///
/// Guards: `lock` guards `reserved` and `present`; `faultMutex` (`hugetlb_fault_mutex`)
/// serialises a private mapping's faults with its discards and copies, and is taken before
/// `ShmemFile.lock`, `ShmemFile.mappingLock` and any PTL (`LockOrder`).
final class HugeTLBFile: @unchecked Sendable {
  let pool: HugeTLBPool
  /// The huge page size (`hstate_file`).
  let size: HugePageSize
  private let lock = PThreadMutex()
  /// `hugetlb_fault_mutex_hash` for this file: held over a private mapping's fault, copy on
  /// write and discard. An owner takes a fork copy's after its own (`unmapRefPrivate`).
  let faultMutex = PThreadMutex()
  /// Huge page indexes reserved and not yet faulted. Guarded by `lock`.
  private var reserved: Set<UInt64>
  /// The huge pages the file holds, by huge page index. Guarded by `lock`.
  private var present: [UInt64: HugeFolio] = [:]
  /// `HPAGE_RESV_UNMAPPED`: the owner took a page back from this fork copy because the pool
  /// had none to copy it into; a later fault of a page it does not hold is `SIGBUS`.
  private var unmappedByOwner = false

  /// A file whose huge pages `reserved` are already reserved in `pool` (an empty range for
  /// `MAP_NORESERVE`).
  init(pool: HugeTLBPool, size: HugePageSize, reserved: Range<UInt64>) {
    self.pool = pool
    self.size = size
    self.reserved = Set(reserved)
  }

  deinit {
    // hugetlbfs_evict_inode: every page back to the pool, every reservation dropped.
    for folio in present.values { folio.put(pool, size) }
    pool.unreserve(reserved.count, size)
  }

  /// The huge page index of base page `index`.
  func hugeIndex(ofPage index: UInt64) -> UInt64 { index / size.basePages }

  /// The base pages of the huge page holding base page `index`.
  func basePages(around index: UInt64) -> Range<UInt64> {
    let first = hugeIndex(ofPage: index) * size.basePages
    return first..<first + size.basePages
  }

  /// Makes sure the huge page holding base page `index` is the file's (`hugetlb_no_page` →
  /// `alloc_hugetlb_folio`): false when the pool has no page for it, or when the owner took
  /// this fork copy's pages (`HPAGE_RESV_UNMAPPED`), which is the fault's `SIGBUS`.
  func fault(page index: UInt64) -> Bool {
    let huge = hugeIndex(ofPage: index)
    return lock.withLock {
      if present[huge] != nil { return true }
      if unmappedByOwner { return false }
      let wasReserved = reserved.contains(huge)
      guard pool.allocate(size, reserved: wasReserved) else { return false }
      reserved.remove(huge)
      present[huge] = HugeFolio()
      return true
    }
  }

  /// The folio holding base page `index`, if the file holds one.
  func folio(page index: UInt64) -> HugeFolio? { lock.withLock { present[hugeIndex(ofPage: index)] } }

  /// Whether another file (a fork's other side) holds the folio of base page `index` too.
  func isShared(page index: UInt64) -> Bool { folio(page: index)?.isShared ?? false }

  /// The child's side of `copy_hugetlb_page_range`: a file holding every folio this one holds,
  /// with no reservations (`reset_vma_resv_huge_pages`: the child owns none).
  func forkCopy() -> HugeTLBFile {
    let copy = HugeTLBFile(pool: pool, size: size, reserved: 0..<0)
    lock.withLock {
      for folio in present.values { folio.get() }
      copy.present = present
    }
    return copy
  }

  /// `hugetlb_wp`'s copy: a new folio for the huge page holding `index`, from the pool's
  /// unreserved pages (the owner's copy avoids its reservations, `cow_from_owner`; a fork copy
  /// has none). False, and nothing changed, when the pool has none.
  func allocateCopy() -> Bool { pool.allocate(size, reserved: false) }

  /// Puts the copy `allocateCopy` took in place of the shared folio of base page `index`, and
  /// drops this file's hold on the old one.
  func installCopy(page index: UInt64) {
    let old = lock.withLock { present.updateValue(HugeFolio(), forKey: hugeIndex(ofPage: index)) }
    old?.put(pool, size)
  }

  /// `unmap_ref_private`'s hold on the folio of base page `index`: dropped if this file still
  /// holds `folio`, and the file marked `HPAGE_RESV_UNMAPPED`. True when it did hold it.
  func dropTakenByOwner(_ folio: HugeFolio, page index: UInt64) -> Bool {
    let huge = hugeIndex(ofPage: index)
    let dropped = lock.withLock { () -> Bool in
      guard present[huge] === folio else { return false }
      present[huge] = nil
      unmappedByOwner = true
      return true
    }
    if dropped { folio.put(pool, size) }
    return dropped
  }

  /// Frees the huge pages wholly inside base pages `[first, last)` and drops their reservations
  /// (`remove_inode_hugepages` and `hugetlb_unreserve_pages` for a hole; the unmap of a private
  /// mapping's range, `hugetlb_vm_op_close`). A folio a fork's other side still holds stays
  /// with it.
  func release(fromPage first: UInt64, toPage last: UInt64) {
    let from = (first + size.basePages - 1) / size.basePages
    let to = last / size.basePages
    if from >= to { return }
    let (dropped, unreserved) = lock.withLock { () -> ([HugeFolio], Int) in
      let gone = present.filter { $0.key >= from && $0.key < to }
      for key in gone.keys { present[key] = nil }
      let before = reserved.count
      reserved = reserved.filter { $0 < from || $0 >= to }
      return (Array(gone.values), before - reserved.count)
    }
    for folio in dropped { folio.put(pool, size) }
    pool.unreserve(unreserved, size)
  }
}

/// One huge page taken from the pool (a hugetlb folio), held by the files that map it: one
/// for a shared mapping, the two sides of a `fork` for a private one until either copies it
/// on write. It goes back to the pool when its last holder drops it (`free_huge_folio`).
final class HugeFolio: @unchecked Sendable {
  private let holders = Atomic<Int>(1)

  /// Whether more than one file holds it (`folio_mapcount > 1` for the copy-on-write test).
  var isShared: Bool { holders.load(ordering: .acquiring) > 1 }

  /// One more holder (`copy_hugetlb_page_range`'s `folio_get`).
  func get() { holders.add(1, ordering: .relaxed) }

  /// One holder fewer; the last gives the page back to `pool`.
  func put(_ pool: HugeTLBPool, _ size: HugePageSize) {
    if holders.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { pool.free(size) }
  }
}
