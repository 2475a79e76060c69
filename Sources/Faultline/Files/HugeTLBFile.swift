/// What makes a shmem object a hugetlbfs file (`fs/hugetlbfs/inode.c`, the anonymous
/// `/anon_hugepage` file `MAP_HUGETLB` creates): its huge page size, the huge pages reserved
/// for it and not yet faulted (its `resv_map`), and the huge pages it holds, all counted in the
/// machine's `HugeTLBPool`.
///
/// Faultline deliberately differs from Linux in the memory behind a huge page: a fault takes a
/// whole huge page from the pool (the count Linux keeps) but maps one 4 KiB PTE of the object's
/// arena frames, as a shared anonymous fault does; the next access to another base page of the
/// same huge page faults again without touching the pool. Linux maps the whole huge page with
/// one PMD (or PUD) entry. Counts, `SIGBUS`, alignment and split rules, `mincore` and smaps'
/// `KernelPageSize` follow Linux; the frames are neither contiguous nor aligned.
final class HugeTLBFile: @unchecked Sendable {
  let pool: HugeTLBPool
  /// The huge page size (`hstate_file`).
  let size: HugePageSize
  private let lock = PThreadMutex()
  /// Huge page indexes reserved and not yet faulted. Guarded by `lock`.
  private var reserved: Set<UInt64>
  /// Huge page indexes the file holds a page for. Guarded by `lock`.
  private var present: Set<UInt64> = []

  /// A file whose huge pages `reserved` are already reserved in `pool` (an empty range for
  /// `MAP_NORESERVE`).
  init(pool: HugeTLBPool, size: HugePageSize, reserved: Range<UInt64>) {
    self.pool = pool
    self.size = size
    self.reserved = Set(reserved)
  }

  deinit {
    // hugetlbfs_evict_inode: every page back to the pool, every reservation dropped.
    for _ in present { pool.free(size) }
    pool.unreserve(reserved.count, size)
  }

  /// The huge page index of base page `index`.
  func hugeIndex(ofPage index: UInt64) -> UInt64 { index / size.basePages }

  /// Makes sure the huge page holding base page `index` is the file's (`hugetlb_no_page` →
  /// `alloc_hugetlb_folio`): false when the pool has no page for it, which is the fault's
  /// `SIGBUS`.
  func fault(page index: UInt64) -> Bool {
    let huge = hugeIndex(ofPage: index)
    return lock.withLock {
      if present.contains(huge) { return true }
      let wasReserved = reserved.contains(huge)
      guard pool.allocate(size, reserved: wasReserved) else { return false }
      reserved.remove(huge)
      present.insert(huge)
      return true
    }
  }

  /// Whether the huge page holding base page `index` is present (`mincore_hugetlb`).
  func isPresent(page index: UInt64) -> Bool { lock.withLock { present.contains(hugeIndex(ofPage: index)) } }

  /// Frees the huge pages wholly inside base pages `[first, last)` and drops their reservations
  /// (`remove_inode_hugepages` and `hugetlb_unreserve_pages` for a hole; the unmap of a private
  /// mapping's range, `hugetlb_vm_op_close`).
  func release(fromPage first: UInt64, toPage last: UInt64) {
    let from = (first + size.basePages - 1) / size.basePages
    let to = last / size.basePages
    if from >= to { return }
    let (freed, unreserved) = lock.withLock { () -> (Int, Int) in
      let before = (present.count, reserved.count)
      present = present.filter { $0 < from || $0 >= to }
      reserved = reserved.filter { $0 < from || $0 >= to }
      return (before.0 - present.count, before.1 - reserved.count)
    }
    for _ in 0..<freed { pool.free(size) }
    pool.unreserve(unreserved, size)
  }
}
