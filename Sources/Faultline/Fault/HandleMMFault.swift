import CFaultlineShims
import Synchronization

/// The fault body every design shares (`handle_mm_fault` → `handle_pte_fault` and below, in
/// `mm/memory.c`). A design finds and pins the VMA; this code fills the PTE.
///
/// Pages are prepared (allocated, zeroed, copied) before the PTL is taken. Every PTL a fault
/// takes for its own PTE goes through `pteMapLock`, which, for a speculative fault, re-validates
/// what the lookup assumed (the design's sequence count, the PMD) and only try-locks; any
/// failure is an abort and the prepared page is dropped. (Fault-around, which runs only in a
/// locked fault, takes the table's PTL directly.) The install then re-checks that the PTE still
/// holds what the fault first read (`pte_same`), and backs out if another thread got there first.
extension CPU {
  /// `handle_mm_fault` for a page-aligned `address` inside `vma`, whose access was checked,
  /// when the VMA is pinned by a lock. Allocates missing page-table levels; an empty or huge
  /// PMD goes to `handleMMFaultPMD` (a transparent huge page, or a new PTE table).
  /// Transparent, not `@inline(__always)`: the optimizer kept the latter out of line in
  /// `faultVMALocked` (15 instructions per fault of call and prologue).
  @_transparent
  func handleMMFault(_ vma: VMASnapshot, _ address: UInt64, _ flags: FaultFlags) -> VMFaultResult {
    guard let slot = walker.pteSlotForFault(address, cache: cache) else { return handleMMFaultPMD(vma, address, flags) }
    // A locked fault never re-checks the PMD: `pmd` is unused by `LockedFault`.
    let vmf = FaultContext(
      address: address, flags: flags, mode: LockedFault(), pte: slot,
      origPTE: PTE(raw: slot.pointee.load(ordering: .acquiring)), pmd: slot, origPMD: 0)
    return handlePTEFault(vma, vmf)
  }

  /// `handle_pte_fault`.
  @inline(__always)
  func handlePTEFault<M: FaultMode>(_ vma: VMASnapshot, _ vmf: FaultContext<M>) -> VMFaultResult {
    let e = vmf.origPTE
    if e.isNone {
      if vma.isAnonymous { return doAnonymousPage(vma, vmf) }
      return vma.file != nil ? doFileFault(vma, vmf) : doSharedFault(vma, vmf)
    }
    if e.isGuardMarker { return guardMarkerFault(vmf) }
    if e.isProtNone { return fixProtNone(vmf) }
    if vmf.flags.contains(.write) && !e.isWritable { return doWPPage(vma, vmf) }
    if !pkeyAllows(key: e.pkey, write: vmf.flags.contains(.write)) { return pkeyFault(vma, vmf) }
    // Spurious: another thread installed it. Mark it young (and dirty) as the walker would.
    if let reason = pteMapLock(vmf) { return .abort(reason) }
    let now = vmf.pte.pointee.load(ordering: .relaxed)
    if now == e.raw {
      let bits = PTE.accessed | (vmf.flags.contains(.write) ? PTE.dirty : 0)
      vmf.pte.pointee.store(now | bits, ordering: .releasing)
    }
    pteUnmapUnlock(vmf)
    count(counters, .faultRaced)
    return .done
  }

  /// `do_anonymous_page`: the zero frame for a read, a fresh zeroed frame for a write.
  func doAnonymousPage<M: FaultMode>(_ vma: VMASnapshot, _ vmf: FaultContext<M>) -> VMFaultResult {
    let pageProt = vma.flags.ptePageProt
    if !vmf.flags.contains(.write) {
      // The zero page needs no anon_vma.
      let entry = PFN.zero.physicalAddress | PTE.present | PTE.user | PTE.accessed | PTE.special | pageProt
      if let result = finishFault(vmf, entry, page: nil) { return result }
      count(counters, .zeroPageMap)
      return .done
    }
    if let reason = anonPrepare(vma, vmf) { return .abort(reason) }
    guard let page = allocateUserPage(flags: .anon) else { return .oom }
    frames.meta(page).index = vma.pageIndex(vmf.address)
    let entry = page.physicalAddress | PTE.present | PTE.user | PTE.accessed | PTE.dirty | PTE.write | pageProt
    if let result = finishFault(vmf, entry, page: page) { return result }
    count(counters, .pgallocNormal)
    return .done
  }

  /// A fault on a shared anonymous mapping (`do_read_fault`/`do_shared_fault` over shmem): the
  /// page comes from the shmem page cache (a private hugetlb mapping's from its own object,
  /// `hugetlbPrivateFault`). A writable shared mapping needs no write-notify, so a
  /// read fault maps the page writable too, as Linux does for tmpfs. Only locked designs get here.
  /// Under the PTL the page must still be the shmem object's page at `index`: a hole punched since
  /// the lookup took it out (shmem_fault holds the folio lock to finish_fault), so nothing is
  /// mapped and the access faults again.
  func doSharedFault<M: FaultMode>(_ vma: VMASnapshot, _ vmf: FaultContext<M>) -> VMFaultResult {
    if vmf.flags.contains(.speculative) { return .abort(.vmaNotSup) }
    if vma.flags.contains(.hugeTLB) && !vma.flags.contains(.shared) { return hugetlbPrivateFault(vma, vmf) }
    let index = vma.pageIndex(vmf.address)
    let (found, failure) = sharedPage(vma, index)
    guard let page = found else { return failure }
    let flags = vma.flags
    var entry = page.physicalAddress | PTE.present | PTE.user | PTE.accessed
    if flags.contains(.write) { entry |= PTE.write }
    if vmf.flags.contains(.write) { entry |= PTE.dirty }
    entry |= flags.ptePageProt
    let result = finishFault(vmf, entry, page: page) { raced in
      !raced && !sharedPageOwned(vma, page, index) ? .retry : nil
    }
    return result ?? .done
  }

  /// `do_wp_page`: a write to a present, read-only PTE of a writable VMA. A subpage of a split
  /// huge page is always copied: its references live on the head, so it never looks exclusive
  /// (Linux 6.16+ can reuse an exclusive large folio in place; the result reads the same).
  func doWPPage<M: FaultMode>(_ vma: VMASnapshot, _ vmf: FaultContext<M>) -> VMFaultResult {
    let old = vmf.origPTE
    if old.isSpecial { return wpPageCopy(vma, vmf, from: nil) }
    let m = frames.meta(old.pfn)
    // wp_page_shared, or wp_page_reuse of an exclusive anonymous page; a page-cache page in a
    // private mapping is always copied.
    let shared = vma.flags.contains(.shared)
    if shared && vma.file != nil { return wpPageSharedFile(vma, vmf) }
    // (A split huge page's first subpage holds the whole page's references: never settled.)
    if !shared && m.mapcount == 1 && m.refcount > 1 && m.flags.contains(.anon) && !m.flags.contains(.head) {
      settleDeferredPuts()
    }
    if shared || (m.flags.contains(.anon) && m.refcount == 1 && m.mapcount == 1) {
      if let reason = pteMapLock(vmf) { return .abort(reason) }
      // wp_can_reuse_anon_folio decides under the PTL: fork takes its references under it.
      if !shared && (m.refcount != 1 || m.mapcount != 1) {
        pteUnmapUnlock(vmf)
        return wpPageCopy(vma, vmf, from: old.pfn)
      }
      if vmf.pte.pointee.load(ordering: .relaxed) == old.raw {
        vmf.pte.pointee.store(old.raw | PTE.write | PTE.dirty | PTE.accessed, ordering: .releasing)
        if !shared { count(counters, .pgreuse) }
      }
      pteUnmapUnlock(vmf)
      return .done
    }
    // A private hugetlb page is copied whole, from the pool.
    if vma.flags.contains(.hugeTLB) { return hugetlbWP(vma, vmf) }
    return wpPageCopy(vma, vmf, from: old.pfn)
  }

  /// `wp_page_copy`: a private copy (zero-filled when breaking from the zero frame).
  func wpPageCopy<M: FaultMode>(_ vma: VMASnapshot, _ vmf: FaultContext<M>, from source: PFN?) -> VMFaultResult {
    if let reason = anonPrepare(vma, vmf) { return .abort(reason) }
    guard let page = allocateUserPage(flags: .anon, zeroed: source == nil) else { return .oom }
    if let source {
      frames.address(of: page).copyMemory(from: frames.address(of: source), byteCount: Page.byteCount)
    }
    frames.meta(page).index = vma.pageIndex(vmf.address)
    let pageProt = vma.flags.ptePageProt
    let entry = page.physicalAddress | PTE.present | PTE.user | PTE.accessed | PTE.dirty | PTE.write | pageProt
    if let result = finishFault(vmf, entry, page: page, replacing: source) { return result }
    count(counters, .pgallocNormal)
    count(counters, .pgcow)
    // Accesses that translated through the old entry may still read the old page.
    if let source { putAfterGracePeriod(source) }
    return .done
  }

  /// A guard marker (`MADV_GUARD_INSTALL`): `do_swap_page` → `handle_pte_marker` →
  /// `VM_FAULT_SIGSEGV`. The marker is re-read under the PTL (and a speculative fault's sequence
  /// re-checked by `pteMapLock`), so a marker that `MADV_GUARD_REMOVE` or `munmap` cleared
  /// meanwhile sends the access back to fault again instead of signalling.
  @inline(never)
  func guardMarkerFault<M: FaultMode>(_ vmf: FaultContext<M>) -> VMFaultResult {
    if let reason = pteMapLock(vmf) { return .abort(reason) }
    let still = vmf.pte.pointee.load(ordering: .relaxed) == vmf.origPTE.raw
    pteUnmapUnlock(vmf)
    return still ? .sigsegv : .retry
  }

  /// A PROT_NONE entry in a VMA that is accessible again: restore the mapping, without write.
  func fixProtNone<M: FaultMode>(_ vmf: FaultContext<M>) -> VMFaultResult {
    if let reason = pteMapLock(vmf) { return .abort(reason) }
    let old = vmf.origPTE.raw
    if vmf.pte.pointee.load(ordering: .relaxed) == old {
      vmf.pte.pointee.store((old & ~(PTE.protNone | PTE.write)) | PTE.present, ordering: .releasing)
    }
    pteUnmapUnlock(vmf)
    return .done
  }

  /// `finish_fault` with `set_pte_range`, the one way a fault installs a new entry: the design's
  /// re-validation (`pteMapLock`), then under the PTL `recheck` and `pte_same` (the PTE still holds
  /// `origPTE`), then the mapcount of `page` (and of `source`, the page the old entry mapped, for
  /// `wp_page_copy`) and the entry. Faultline keeps no rss counters and has no MMU cache to update.
  ///
  /// `recheck` sees whether `pte_same` failed (`raced`) and returns what the fault returns instead
  /// of installing, or `nil` to go on; it runs under the PTL, after the PTE was read.
  /// `installed` runs after the install, before the PTL is released (the shared file fault
  /// dirties its page there).
  ///
  /// Returns `nil` once the entry is installed (the PTL released; the caller counts the event).
  /// Otherwise, with `page`'s reference dropped: the abort `pteMapLock` gave, `recheck`'s result,
  /// or `.done` after a lost race (`faultRaced`), when the access finds what the other thread put.
  @inline(__always)
  func finishFault<M: FaultMode>(
    _ vmf: FaultContext<M>, _ entry: UInt64, page: PFN?, replacing source: PFN? = nil,
    recheck: (_ raced: Bool) -> VMFaultResult? = { _ in nil }, installed: () -> Void = {}
  ) -> VMFaultResult? {
    if page != nil && hooksEnabled.pointee.load(ordering: .relaxed) { runHook(.pagePrepared, vmf.address) }
    if let reason = pteMapLock(vmf) {
      if let page { frames.put(page, cache: cache) }
      return .abort(reason)
    }
    let raced = vmf.pte.pointee.load(ordering: .relaxed) != vmf.origPTE.raw
    if let result = recheck(raced) {
      pteUnmapUnlock(vmf)
      if let page { frames.put(page, cache: cache) }
      return result
    }
    if raced {
      pteUnmapUnlock(vmf)
      if let page { frames.put(page, cache: cache) }
      count(counters, .faultRaced)
      return .done
    }
    if let page { frames.meta(page).addMap() }
    vmf.pte.pointee.store(entry, ordering: .releasing)
    if let source { frames.meta(source).removeMap() }
    installed()
    pteUnmapUnlock(vmf)
    return nil
  }

  /// `vmf_anon_prepare`: a new anonymous page needs the VMA's anon_vma. Preparing one looks at
  /// the neighbours and needs `mmap_lock`, so a speculative or VMA-locked fault aborts instead.
  @inline(__always)
  func anonPrepare<M: FaultMode>(_ vma: VMASnapshot, _ vmf: FaultContext<M>) -> SPFAbort? {
    if vma.anonVMA != 0 { return nil }
    if vmf.flags.contains(.speculative) || vmf.flags.contains(.vmaLock) { return .vmaNoAnon }
    prepareAnonVMA(vma)
    return nil
  }

  // MARK: pteMapLock

  /// Takes the PTL of `vmf.pte` (`pte_map_lock` in SPF v12). A locked fault just locks it. A
  /// speculative fault enters an RCU read section (which keeps the page tables it walked from
  /// being freed once it has seen the VMA unchanged), checks the VMA, then the PMD, try-locks
  /// the PTL and checks the VMA again. Returns the abort reason, or `nil` with the PTL held.
  @inline(__always)
  func pteMapLock<M: FaultMode>(_ vmf: FaultContext<M>) -> SPFAbort? {
    if hooksEnabled.pointee.load(ordering: .relaxed) { runHook(.beforePTEMapLock, vmf.address) }
    let ptl = walker.ptl(for: vmf.pte)
    if !M.isSpeculative {
      ptl.lock()
      return nil
    }
    // SPF v12 loops on the trylock, re-enabling interrupts between tries so that a TLB
    // shootdown can get through; here the RCU read section is left between tries, so that a
    // grace period can. After `ptlRetries` tries the fault gives up with `spf_ptl_busy`.
    var tries = 0
    while true {
      rcuSide.lockOutermost()
      if !vmf.mode.stillValid(self) {
        rcuSide.unlockOutermost()
        return .vmaChanged
      }
      if vmf.pmd.pointee.load(ordering: .acquiring) != vmf.origPMD {
        rcuSide.unlockOutermost()
        return .pmdChanged
      }
      if ptl.tryLock() { break }
      rcuSide.unlockOutermost()
      tries += 1
      if tries == Self.ptlRetries { return .ptlBusy }
      fl_cpu_relax()
    }
    if !vmf.mode.stillValid(self) {
      ptl.unlock()
      rcuSide.unlockOutermost()
      return .vmaChanged
    }
    return nil
  }

  /// Trylock attempts before a speculative fault gives up on a busy PTL.
  static let ptlRetries = 64

  /// Releases what `pteMapLock` took.
  @inline(__always)
  func pteUnmapUnlock<M: FaultMode>(_ vmf: FaultContext<M>) {
    walker.ptl(for: vmf.pte).unlock()
    if !M.isSpeculative { return }
    rcuSide.unlockOutermost()
  }

  // MARK: Cold paths

  /// The entry allows the access, but its protection key, which PKRU denies, is not the one the
  /// VMA had when the fault checked it: the fault raced a `pkey_mprotect` (or the entry was
  /// left stale). Linux never fixes a protection-key fault (`access_error` returns at once on
  /// `X86_PF_PK`). A speculative or VMA-locked fault gives up so that the `mmap_lock` path,
  /// where entries and VMA agree, decides; that path reports `SEGV_PKUERR` with the VMA's key.
  @inline(never)
  func pkeyFault<M: FaultMode>(_ vma: VMASnapshot, _ vmf: FaultContext<M>) -> VMFaultResult {
    if vmf.flags.contains(.speculative) || vmf.flags.contains(.vmaLock) { return .abort(.vmaAccess) }
    return .pkeyFault(pkey: vma.flags.pkey)
  }

  /// A frame for user data. When the arena is empty, frames waiting for an RCU grace period are
  /// reclaimed once before giving up.
  @inline(__always)
  func allocateUserPage(flags: PageFlags, zeroed: Bool = true) -> PFN? {
    if let p = zeroed ? frames.allocateZeroed(cache: cache, flags: flags) : frames.allocate(cache: cache, flags: flags) {
      return p
    }
    return allocateUserPageSlow(flags: flags, zeroed: zeroed)
  }

  /// Once per VMA: give it an anon_vma (under `mmap_lock`).
  @inline(never)
  func prepareAnonVMA(_ vma: VMASnapshot) { _ = mm.anonVMAPrepare(vma.object.takeUnretainedValue()) }

  /// The shmem page behind a shared anonymous mapping, referenced for the caller; `.sigbus`
  /// beyond the object's size, `.oom` when out of memory.
  @inline(never)
  func sharedPage(_ vma: VMASnapshot, _ index: UInt64) -> (PFN?, VMFaultResult) {
    guard let shmem = vma.object.takeUnretainedValue().shmem else { return (nil, .sigbus) }
    if shmem.beyondSize(index) { return (nil, .sigbus) }
    // hugetlb_no_page: no huge page for it in the pool is SIGBUS.
    if let hugetlb = shmem.hugetlb, !hugetlb.fault(page: index) { return (nil, .sigbus) }
    guard let page = shmem.getPage(index, cache: cache) else { return (nil, .oom) }
    return (page, .done)
  }

  /// Whether the shmem object behind `vma` still holds `page` at `index`.
  @inline(never)
  func sharedPageOwned(_ vma: VMASnapshot, _ page: PFN, _ index: UInt64) -> Bool {
    vma.object.takeUnretainedValue().shmem?.owns(page, at: index) ?? false
  }

  @inline(never)
  func putAfterGracePeriod(_ pfn: PFN) {
    let f = frames
    // A subpage of a split huge page: the reference is its head's (`folio_put`).
    machine.rcu.callRCU { f.putFolio(pfn) }
  }

  /// Runs the queued deferred puts before `do_wp_page` decides on an anonymous page that only
  /// this entry maps but that still holds more than one reference. Faultline's stand-in for
  /// the TLB flush is a grace period: whoever unmaps or copies away from a page drops its
  /// reference only after one (`putAfterGracePeriod`, `MMUGather`), where Linux flushes and
  /// drops at once. Without this, a page that fork had shared would still count the other
  /// side's reference here and be copied, where Linux reuses it (after the child exits, or
  /// after the other side copied first). Cold: it runs only in that state, and one run clears
  /// every queued put.
  @inline(never)
  func settleDeferredPuts() {
    precondition(!rcuSide.isReading, "deferred puts settled inside an RCU read section")
    machine.drainDeferredFrees()
  }

  @inline(never)
  func allocateUserPageSlow(flags: PageFlags, zeroed: Bool) -> PFN? {
    precondition(!rcuSide.isReading, "page allocation inside an RCU read section")
    machine.drainDeferredFrees()
    return zeroed ? frames.allocateZeroed(cache: cache, flags: flags) : frames.allocate(cache: cache, flags: flags)
  }

  @inline(never)
  func runHook(_ point: FaultHookPoint, _ address: UInt64) {
    mm.faultHook?(point, address)
  }
}
