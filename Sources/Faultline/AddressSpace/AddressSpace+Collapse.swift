import Synchronization

/// `MADV_COLLAPSE` (Linux 6.1, `madvise_collapse` in `mm/khugepaged.c`) for private anonymous
/// memory: each whole 2 MiB-aligned range of the advised range that a PTE table maps becomes one
/// huge page, synchronously, whatever the THP `enabled` setting says (the call is independent
/// of it, as on Linux).
///
/// What Linux 6.18 answers, as the host gave it:
/// - a VMA that may never hold a transparent huge page (shared, file, hugetlb, `VM_NOHUGEPAGE`,
///   PFN maps, or too small or misplaced to hold a whole aligned 2 MiB) is `EINVAL`, and so is
///   a private anonymous one without an anon_vma (nothing was ever written there);
/// - a range holding no whole aligned 2 MiB is `EINVAL` when it lies inside one such range
///   (`hstart > hend`), and succeeds with nothing done when it ends on the boundary;
/// - a 2 MiB range already mapped by a huge PMD counts as collapsed; one with no page table
///   (`SCAN_PMD_NULL`) ends the call with `EINVAL`, one with a guard marker (a non-present
///   entry) is `EINVAL` after the rest was tried; no free 2 MiB block is `ENOMEM` and ends it;
/// - empty entries and the zero page are filled with zeros (`max_ptes_none` does not apply to
///   `MADV_COLLAPSE`), pages shared with a forked child are copied, PROT_NONE and locked
///   ranges collapse too.
///
/// khugepaged, the background collapse, is not modelled, and neither is the collapse of file or
/// shmem ranges (`EINVAL` here, where Linux may collapse their page cache).
extension AddressSpace {
  /// `madvise_collapse` over `[start, end)` inside `vma`. Old pages lose their mapping now and
  /// their reference through `gather`.
  /// - Requires: `mmap_lock` held for write.
  func madviseCollapse(_ vma: VMA, _ start: UInt64, _ end: UInt64, gather: inout MMUGather) throws(Errno) {
    let flags = vma.flags
    if let shmem = vma.shmem, shmem.hugetlb == nil, flags.contains(.shared) {
      return try collapseShmem(vma, shmem, start, end)
    }
    // The fault's VMA rules with the sysfs setting left out (TVA_FORCED_COLLAPSE), and never a
    // PFN map.
    if !TransparentHugePage.vmaAllowable(flags: flags, isAnonymous: vma.isAnonymous, unadvised: true, advised: true)
      || !flags.intersection(.special).isEmpty
    {
      throw Errno.invalidArgument
    }
    let size = TransparentHugePage.size
    // __thp_vma_allowable_orders outside a fault: the VMA must hold a whole aligned 2 MiB.
    if vma.end - vma.start < size
      || !TransparentHugePage.vmaSuitable(start: vma.start, end: vma.end, address: vma.end - size)
    {
      throw Errno.invalidArgument
    }
    let hstart = (start &+ size &- 1) & TransparentHugePage.mask
    let hend = end & TransparentHugePage.mask
    // No anon_vma (nothing was ever written): EINVAL, before the range is even looked at.
    if vma.anonVMA == 0 || hstart > hend { throw Errno.invalidArgument }
    if hstart == hend { return }
    // collapse_huge_page takes mmap_lock for write and write-locks the VMA: faults on it wait.
    vmaWriteBegin(vma)
    var collapsed: UInt64 = 0
    var lastFailure = Errno.invalidArgument
    var addr = hstart
    while addr < hend {
      if let (failure, stop) = collapseHugePage(vma, addr, gather: &gather) {
        lastFailure = failure
        if stop { break }
      } else {
        collapsed += 1
      }
      addr += size
    }
    if collapsed != (hend - hstart) / size { throw lastFailure }
  }

  /// Collapses the 2 MiB at `haddr` into one huge page, or says why not and whether the call
  /// stops there (`nil`: done, or already huge). No page table (`SCAN_PMD_NULL`) and no free
  /// block stop it; a guard marker (`SCAN_PTE_NON_PRESENT`) only fails this range. The PMD is cleared and a grace period waited for first (Linux's
  /// `pmdp_collapse_flush`), so that no store through the old entries lands after its page was
  /// copied; an access meanwhile faults and waits for `mmap_lock`.
  private func collapseHugePage(_ vma: VMA, _ haddr: UInt64, gather: inout MMUGather) -> (Errno, stop: Bool)? {
    guard let pmd = pageTable.lookupPMD(haddr) else { return (.invalidArgument, true) }
    let e = pmd.pointee.load(ordering: .acquiring)
    if e & PTE.huge != 0 && e & (PTE.present | PTE.protNone) != 0 { return nil }
    if e & PTE.present == 0 { return (.invalidArgument, true) }
    let tablePFN = PFN(physical: e & PTE.addressMask)
    let table = pageTable.entries(tablePFN)
    for i in 0..<TransparentHugePage.pages where table[i].load(ordering: .relaxed) == PTE.guardMarker {
      return (.invalidArgument, false)
    }
    guard let page = memory.allocateHuge(flags: .anon, zeroed: false) else { return (.noMemory, true) }
    let lock = pageTable.pmdLock(for: pmd)
    lock.lock()
    pmd.pointee.store(0, ordering: .releasing)
    lock.unlock()
    rcu.synchronize()
    machine.vmstat.add(.tlbFlush)
    let frames = memory.frames
    for i in 0..<TransparentHugePage.pages {
      let dst = memory.address(of: PFN(page.raw + UInt32(i)))
      let old = PTE(raw: table[i].exchange(0, ordering: .relaxed))
      if old.mapsFrame && !old.isSpecial {
        dst.copyMemory(from: memory.address(of: old.pfn), byteCount: Page.byteCount)
        if old.isDirty { frames.meta(old.pfn).setFlags(.dirty) }
        frames.meta(old.pfn).removeMap()
        gather.removePage(old.pfn)
      } else {
        dst.initializeMemory(as: UInt8.self, repeating: 0, count: Page.byteCount)
      }
    }
    frames.meta(page).index = vma.pageIndex(haddr)
    frames.addEntireMap(page, 1)
    let base = page.physicalAddress | PTE.present | PTE.user | PTE.accessed | PTE.dirty | PTE.huge | PTE.write
    let entry = PageTable.changedEntry(base, vmFlags: vma.flags)
    lock.lock()
    pageTable.depositTable(pmd, tablePFN)
    // A speculative fault that allocates tables (`speculativeAllocatesTables`) may have filled
    // the cleared PMD with an empty table meanwhile (it aborts before using it: the VMA is
    // write-marked); it goes after a grace period.
    let stray = pmd.pointee.exchange(entry, ordering: .acquiringAndReleasing)
    lock.unlock()
    if stray != 0 { gather.removeTable(PFN(physical: stray & PTE.addressMask)) }
    machine.vmstat.add(.thpCollapseAlloc)
    return nil
  }

  /// `MADV_COLLAPSE` of shared anonymous memory (`collapse_file` over shmem): each whole aligned
  /// 2 MiB of the object behind the range that holds a page is filled in, holes with zeroed
  /// pages, so that it is all resident as a huge folio would be (one with no page is `EINVAL`). Faultline has no shmem huge pages: the pages stay
  /// 4 KiB ones and are mapped one PTE at a time; what mincore and loads see is the host's.
  /// `EINVAL` where the object's offsets are not aligned with the addresses
  /// (`thp_vma_suitable_order` for a file), as for private memory otherwise; `ENOMEM` when out
  /// of memory.
  private func collapseShmem(_ vma: VMA, _ shmem: ShmemFile, _ start: UInt64, _ end: UInt64) throws(Errno) {
    let size = TransparentHugePage.size
    let pagesPerHuge = UInt64(TransparentHugePage.pages)
    if vma.flags.contains(.noHugePage) || vma.end - vma.start < size
      || ((vma.start >> Page.shift) &- vma.pgoff) % pagesPerHuge != 0
      || !TransparentHugePage.vmaSuitable(start: vma.start, end: vma.end, address: vma.end - size)
    {
      throw Errno.invalidArgument
    }
    let hstart = (start &+ size &- 1) & TransparentHugePage.mask
    let hend = end & TransparentHugePage.mask
    if hstart > hend { throw Errno.invalidArgument }
    var failure: Errno?
    var addr = hstart
    while addr < hend {
      let first = vma.pageIndex(addr)
      // A range of the object with no page at all is not collapsed (EINVAL, as the host says).
      if !(first..<first + pagesPerHuge).contains(where: { shmem.hasPage($0) }) {
        failure = .invalidArgument
        addr += size
        continue
      }
      for index in first..<first + pagesPerHuge {
        guard let page = shmem.getPage(index, cache: nil) else { throw Errno.noMemory }
        memory.put(page)
      }
      addr += size
    }
    if let failure { throw failure }
  }
}
