import Synchronization

/// The fault body every design shares (`handle_mm_fault` → `handle_pte_fault` and below, in
/// `mm/memory.c`). A design finds and pins the VMA; this code fills the PTE.
///
/// Pages are prepared (allocated, zeroed, copied) before the PTL is taken; the install re-checks
/// under the PTL that the PTE still holds what the fault first read (`pte_same`), and backs out
/// if another thread got there first.
extension CPU {
  /// `handle_mm_fault` for a page-aligned `address` inside `vma`, whose access was checked.
  @inline(__always)
  func handleMMFault(_ vma: VMA, _ address: UInt64, _ flags: FaultFlags) -> VMFaultResult {
    guard let slot = pageTable.allocPTE(address, cache: cache) else { return .oom }
    let vmf = FaultContext(
      vma: vma, address: address, flags: flags, pte: slot,
      origPTE: PTE(raw: slot.pointee.load(ordering: .acquiring)))
    return handlePTEFault(vmf)
  }

  /// `handle_pte_fault`.
  @inline(__always)
  func handlePTEFault(_ vmf: FaultContext) -> VMFaultResult {
    let e = vmf.origPTE
    if e.isNone {
      return vmf.vma.isAnonymous ? doAnonymousPage(vmf) : doSharedFault(vmf)
    }
    if e.isProtNone { return fixProtNone(vmf) }
    if vmf.flags.contains(.write) && !e.isWritable { return doWPPage(vmf) }
    // Spurious: another thread installed it. Mark it young (and dirty) as the walker would.
    let lock = pageTable.ptl(for: vmf.pte)
    lock.lock()
    let now = vmf.pte.pointee.load(ordering: .relaxed)
    if now == e.raw {
      let bits = PTE.accessed | (vmf.flags.contains(.write) ? PTE.dirty : 0)
      vmf.pte.pointee.store(now | bits, ordering: .releasing)
    }
    lock.unlock()
    count(counters, .faultRaced)
    return .done
  }

  /// `do_anonymous_page`: the zero frame for a read, a fresh zeroed frame for a write.
  func doAnonymousPage(_ vmf: FaultContext) -> VMFaultResult {
    let vma = vmf.vma
    if vma.anonVMA == 0 { _ = mm.anonVMAPrepare(vma) }
    let nx = vma.flags.contains(.exec) ? 0 : PTE.noExecute
    if !vmf.flags.contains(.write) {
      let entry = PFN.zero.physicalAddress | PTE.present | PTE.user | PTE.accessed | PTE.special | nx
      if installPTE(vmf, entry, page: nil) { count(counters, .zeroPageMap) }
      return .done
    }
    guard let page = allocateUserPage(flags: .anon) else { return .oom }
    memory.meta(page).index = vma.pageIndex(vmf.address)
    let entry = page.physicalAddress | PTE.present | PTE.user | PTE.accessed | PTE.dirty | PTE.write | nx
    if installPTE(vmf, entry, page: page) { count(counters, .pgallocNormal) }
    return .done
  }

  /// A fault on a shared anonymous mapping (`do_read_fault`/`do_shared_fault` over shmem): the
  /// page comes from the shmem page cache. A writable shared mapping needs no write-notify, so a
  /// read fault maps the page writable too, as Linux does for tmpfs.
  func doSharedFault(_ vmf: FaultContext) -> VMFaultResult {
    let vma = vmf.vma
    guard let shmem = vma.shmem else { return .sigbus }
    guard let page = shmem.getPage(vma.pageIndex(vmf.address), cache: cache) else { return .oom }
    let flags = vma.flags
    var entry = page.physicalAddress | PTE.present | PTE.user | PTE.accessed
    if flags.contains(.write) { entry |= PTE.write }
    if vmf.flags.contains(.write) { entry |= PTE.dirty }
    if !flags.contains(.exec) { entry |= PTE.noExecute }
    _ = installPTE(vmf, entry, page: page)
    return .done
  }

  /// `do_wp_page`: a write to a present, read-only PTE of a writable VMA.
  func doWPPage(_ vmf: FaultContext) -> VMFaultResult {
    let old = vmf.origPTE
    if old.isSpecial { return wpPageCopy(vmf, from: nil) }
    let m = memory.meta(old.pfn)
    // wp_page_shared, or wp_page_reuse of an exclusive anonymous page.
    if vmf.vma.flags.contains(.shared) || (m.refcount == 1 && m.mapcount == 1) {
      let lock = pageTable.ptl(for: vmf.pte)
      lock.lock()
      if vmf.pte.pointee.load(ordering: .relaxed) == old.raw {
        vmf.pte.pointee.store(old.raw | PTE.write | PTE.dirty | PTE.accessed, ordering: .releasing)
        if !vmf.vma.flags.contains(.shared) { count(counters, .pgreuse) }
      }
      lock.unlock()
      return .done
    }
    return wpPageCopy(vmf, from: old.pfn)
  }

  /// `wp_page_copy`: a private copy (zero-filled when breaking from the zero frame).
  func wpPageCopy(_ vmf: FaultContext, from source: PFN?) -> VMFaultResult {
    guard let page = allocateUserPage(flags: .anon, zeroed: source == nil) else { return .oom }
    if let source {
      memory.address(of: page).copyMemory(from: memory.address(of: source), byteCount: PhysicalMemory.pageSize)
    }
    memory.meta(page).index = vmf.vma.pageIndex(vmf.address)
    let nx = vmf.vma.flags.contains(.exec) ? 0 : PTE.noExecute
    let entry = page.physicalAddress | PTE.present | PTE.user | PTE.accessed | PTE.dirty | PTE.write | nx
    let lock = pageTable.ptl(for: vmf.pte)
    lock.lock()
    guard vmf.pte.pointee.load(ordering: .relaxed) == vmf.origPTE.raw else {
      lock.unlock()
      memory.put(page, cache: cache)
      count(counters, .faultRaced)
      return .done
    }
    memory.meta(page).addMap()
    vmf.pte.pointee.store(entry, ordering: .releasing)
    if let source { memory.meta(source).removeMap() }
    lock.unlock()
    count(counters, .pgallocNormal)
    count(counters, .pgcow)
    if let source {
      // Accesses that translated through the old entry may still read the old page.
      let mem = memory
      machine.rcu.callRCU { mem.put(source) }
    }
    return .done
  }

  /// A PROT_NONE entry in a VMA that is accessible again: restore the mapping, without write.
  func fixProtNone(_ vmf: FaultContext) -> VMFaultResult {
    let lock = pageTable.ptl(for: vmf.pte)
    lock.lock()
    let old = vmf.origPTE.raw
    if vmf.pte.pointee.load(ordering: .relaxed) == old {
      vmf.pte.pointee.store((old & ~(PTE.protNone | PTE.write)) | PTE.present, ordering: .releasing)
    }
    lock.unlock()
    return .done
  }

  /// Installs `entry` where the PTE is still `origPTE` (`finish_fault`/`set_pte_at` under the
  /// PTL). On a lost race the page's reference is dropped. Returns whether it installed.
  @inline(__always)
  func installPTE(_ vmf: FaultContext, _ entry: UInt64, page: PFN?) -> Bool {
    let lock = pageTable.ptl(for: vmf.pte)
    lock.lock()
    guard vmf.pte.pointee.load(ordering: .relaxed) == vmf.origPTE.raw else {
      lock.unlock()
      if let page { memory.put(page, cache: cache) }
      count(counters, .faultRaced)
      return false
    }
    if let page { memory.meta(page).addMap() }
    vmf.pte.pointee.store(entry, ordering: .releasing)
    lock.unlock()
    return true
  }

  /// A frame for user data. When the arena is empty, frames waiting for an RCU grace period are
  /// reclaimed once before giving up.
  @inline(__always)
  func allocateUserPage(flags: PageFlags, zeroed: Bool = true) -> PFN? {
    if let p = zeroed ? memory.allocateZeroed(cache: cache, flags: flags) : memory.allocate(cache: cache, flags: flags) {
      return p
    }
    return allocateUserPageSlow(flags: flags, zeroed: zeroed)
  }

  @inline(never)
  func allocateUserPageSlow(flags: PageFlags, zeroed: Bool) -> PFN? {
    precondition(!rcuSide.isReading, "page allocation inside an RCU read section")
    machine.drainDeferredFrees()
    return zeroed ? memory.allocateZeroed(cache: cache, flags: flags) : memory.allocate(cache: cache, flags: flags)
  }
}
