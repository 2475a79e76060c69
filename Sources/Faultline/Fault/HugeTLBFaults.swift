/// The faults of a `MAP_PRIVATE` hugetlb mapping (`hugetlb_fault` → `hugetlb_no_page` and
/// `hugetlb_wp` in `mm/hugetlb.c`): its pages are its own, shared with a fork's other side
/// only until either writes (`ShmemFile+HugeTLB.swift`). Each fault holds the object's
/// `faultMutex` (`hugetlb_fault_mutex`) throughout, so a discard or copy of the same object
/// cannot slip between finding the page and mapping it. Cold paths: only the locked designs
/// get here (a speculative fault aborts).
extension CPU {
  /// `hugetlb_no_page` for a private mapping: the huge page from the pool (`SIGBUS` when it has
  /// none), mapped writable in a writable mapping unless a fork's other side still holds it; a
  /// write to a held-by-both page copies it first (`hugetlb_wp`).
  @inline(never)
  func hugetlbPrivateFault<M: FaultMode>(_ vma: VMASnapshot, _ vmf: FaultContext<M>) -> VMFaultResult {
    guard let shmem = vma.object.takeUnretainedValue().shmem, let huge = shmem.hugetlb else { return .sigbus }
    let index = vma.pageIndex(vmf.address)
    if shmem.beyondSize(index) { return .sigbus }
    huge.faultMutex.lock()
    defer { huge.faultMutex.unlock() }
    if !huge.fault(page: index) { return .sigbus }
    let write = vmf.flags.contains(.write)
    let shared = huge.isShared(page: index)
    if write && shared { return shmem.hugetlbCopyOnWrite(page: index, cache: cache) }
    guard let page = shmem.getPage(index, cache: cache) else { return .oom }
    var entry = page.physicalAddress | PTE.present | PTE.user | PTE.accessed | vma.flags.ptePageProt
    if vma.flags.contains(.write) && !shared { entry |= PTE.write }
    if write { entry |= PTE.dirty }
    return finishFault(vmf, entry, page: page) ?? .done
  }

  /// `hugetlb_wp`: a write to a present, read-only entry of a writable private hugetlb mapping.
  /// A page a fork's other side still holds is copied; one this mapping holds alone is made
  /// writable in place (after the other side copied, unmapped or exited).
  @inline(never)
  func hugetlbWP<M: FaultMode>(_ vma: VMASnapshot, _ vmf: FaultContext<M>) -> VMFaultResult {
    if vmf.flags.contains(.speculative) { return .abort(.vmaNotSup) }
    guard let shmem = vma.object.takeUnretainedValue().shmem, let huge = shmem.hugetlb else { return .sigbus }
    let index = vma.pageIndex(vmf.address)
    huge.faultMutex.lock()
    defer { huge.faultMutex.unlock() }
    if huge.isShared(page: index) { return shmem.hugetlbCopyOnWrite(page: index, cache: cache) }
    if let reason = pteMapLock(vmf) { return .abort(reason) }
    let old = vmf.origPTE.raw
    if vmf.pte.pointee.load(ordering: .relaxed) == old {
      vmf.pte.pointee.store(old | PTE.write | PTE.dirty | PTE.accessed, ordering: .releasing)
    }
    pteUnmapUnlock(vmf)
    return .done
  }
}
