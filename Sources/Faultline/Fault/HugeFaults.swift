import Synchronization

/// Faults at the PMD level (`__handle_mm_fault`'s middle, `mm/huge_memory.c`): an empty PMD in a
/// range that may hold a transparent huge page gets one (`do_huge_pmd_anonymous_page`), a huge
/// PMD is marked young (`huge_pmd_set_accessed`), reused or split on a write
/// (`do_huge_pmd_wp_page`). Only the locked designs get here (`mmap_lock`, per-VMA locks, and
/// every fallback): the speculative ones abort on an empty or huge PMD, as SPF v12 and
/// Lespinasse's series did (`spf_thp_eligible`, `spf_pmd_huge`).
///
/// Every change to a huge PMD is made under the PMD lock, and the fault re-checks under it
/// that the entry is the one it read (`pmd_same`); a fault that lost the race returns and the
/// access finds what the other thread installed.
extension CPU {
  /// `__handle_mm_fault` when the PMD of `address` does not name a PTE table: it is empty (a
  /// huge page when the VMA allows one, else a new table), or a huge leaf. Ends in the PTE-level
  /// fault once the PMD names a table (after a fallback or a split).
  @inline(never)
  func handleMMFaultPMD(_ vma: VMASnapshot, _ address: UInt64, _ flags: FaultFlags) -> VMFaultResult {
    guard let pmd = walker.allocPMD(address, cache: cache) else { return .oom }
    while true {
      let e = pmd.pointee.load(ordering: .acquiring)
      if PTE.pmdNamesTable(e) {
        let slot = walker.entries(PFN(physical: e & PTE.addressMask)) + PageTableWalker.index(address, level: 1)
        let vmf = FaultContext(
          address: address, flags: flags, mode: LockedFault(), pte: slot,
          origPTE: PTE(raw: slot.pointee.load(ordering: .acquiring)), pmd: slot, origPMD: 0)
        return handlePTEFault(vma, vmf)
      }
      if e == 0 {
        if thpFaultAllowed(vma, address), let result = doHugePMDAnonymousPage(vma, address, pmd, flags) {
          return result
        }
        // VM_FAULT_FALLBACK: a PTE table. `fill` fails when out of memory, or when a huge PMD
        // appeared meanwhile (walk again).
        if walker.fill(pmd, cache: cache) == nil && pmd.pointee.load(ordering: .acquiring) == 0 { return .oom }
        continue
      }
      if let result = hugePMDFault(vma, address, pmd, e, flags) { return result }
      // Split: the PMD names a table now.
    }
  }

  /// `thp_vma_allowable_order` and `thp_vma_suitable_order` for a fault at `address`.
  @inline(__always)
  func thpFaultAllowed(_ vma: VMASnapshot, _ address: UInt64) -> Bool {
    TransparentHugePage.faultAllowed(
      flags: vma.flags, isAnonymous: vma.isAnonymous, start: vma.start, end: vma.end, address: address,
      unadvised: thpUnadvised, advised: thpAdvised)
  }

  /// `do_huge_pmd_anonymous_page`: a read maps the huge zero page (when `use_zero_page`), a
  /// write a zeroed huge page, each with a PTE table deposited beside it so that a later split
  /// cannot fail. `nil` is `VM_FAULT_FALLBACK`: no 2 MiB block free (`thp_fault_fallback`).
  func doHugePMDAnonymousPage(
    _ vma: VMASnapshot, _ address: UInt64, _ pmd: UnsafeMutablePointer<Atomic<UInt64>>, _ flags: FaultFlags
  ) -> VMFaultResult? {
    // vmf_anon_prepare.
    if vma.anonVMA == 0 {
      if flags.contains(.vmaLock) { return .abort(.vmaNoAnon) }
      prepareAnonVMA(vma)
    }
    let write = flags.contains(.write)
    let pageProt = vma.flags.ptePageProt
    let page: PFN
    var entry: UInt64
    if !write && thpUseZeroPage {
      guard let table = allocateUserPage(flags: .pageTable) else { return .oom }
      guard let (zero, allocated) = getHugeZeroPage() else {
        frames.put(table, cache: cache)
        count(counters, .thpFaultFallback)
        return nil
      }
      if allocated { count(counters, .thpZeroPageAlloc) }
      if hooksEnabled.pointee.load(ordering: .relaxed) { runHook(.pagePrepared, address) }
      page = zero
      entry = zero.physicalAddress | PTE.present | PTE.user | PTE.accessed | PTE.huge | PTE.special | pageProt
      _ = installHugePMD(pmd, entry, page: page, table: table, zero: true)
      return .done
    }
    guard let huge = frames.allocateHuge(flags: .anon, zeroed: true) else {
      count(counters, .thpFaultFallback)
      return nil
    }
    guard let table = allocateUserPage(flags: .pageTable) else {
      frames.putFolio(huge)
      return .oom
    }
    if hooksEnabled.pointee.load(ordering: .relaxed) { runHook(.pagePrepared, address) }
    page = huge
    frames.meta(page).index = vma.pageIndex(TransparentHugePage.roundDown(address))
    // maybe_pmd_mkwrite: a read fault (no huge zero page) in a read-only VMA maps it read-only.
    entry = page.physicalAddress | PTE.present | PTE.user | PTE.accessed | PTE.dirty | PTE.huge | pageProt
    if vma.flags.contains(.write) { entry |= PTE.write }
    // map_anon_folio_pmd counts the page once it is mapped: not the one a racing fault beat.
    if installHugePMD(pmd, entry, page: page, table: table, zero: false) { count(counters, .thpFaultAlloc) }
    return .done
  }

  /// Installs `entry` in the empty `pmd` under the PMD lock, with `table` deposited; when the
  /// PMD is no longer empty, drops `page` (the huge zero page's reference for `zero`) and
  /// `table`, counts `fault_raced`, and lets the access retry. Returns whether it installed.
  func installHugePMD(
    _ pmd: UnsafeMutablePointer<Atomic<UInt64>>, _ entry: UInt64, page: PFN, table: PFN, zero: Bool
  ) -> Bool {
    let lock = walker.pmdLock(for: pmd)
    lock.lock()
    // A PTE table is filled in without the PMD lock (`PageTableWalker.fill`, a compare-and-swap
    // from empty, where Linux takes it): only a compare-and-swap here too keeps a table that
    // appeared after the check from being overwritten.
    var installed = false
    if pmd.pointee.load(ordering: .relaxed) == 0 {
      walker.depositTable(pmd, table)
      installed = pmd.pointee.compareExchange(expected: 0, desired: entry, ordering: .acquiringAndReleasing).exchanged
      if installed {
        if !zero { frames.addEntireMap(page, 1) }
      } else {
        _ = walker.withdrawTable(pmd)
      }
    }
    lock.unlock()
    if installed { return true }
    frames.put(table, cache: cache)
    if zero { putHugeZeroPage(afterGracePeriod: false) } else { frames.putFolio(page) }
    count(counters, .faultRaced)
    return false
  }

  /// A fault on a huge leaf `orig` in `pmd`: a write to a read-only one goes to
  /// `doHugePMDWPPage`; otherwise it was spurious and the entry is marked young (and dirty)
  /// as the walker would (`huge_pmd_set_accessed`). `nil` when the PMD was split and the fault
  /// goes on at the PTE level.
  func hugePMDFault(
    _ vma: VMASnapshot, _ address: UInt64, _ pmd: UnsafeMutablePointer<Atomic<UInt64>>, _ orig: UInt64,
    _ flags: FaultFlags
  ) -> VMFaultResult? {
    let write = flags.contains(.write)
    let lock = walker.pmdLock(for: pmd)
    if orig & PTE.present == 0 {
      // PROT_NONE in a VMA that allows access again (the fault's access check passed): restore
      // the mapping without write, as `fixProtNone` does for a PTE.
      lock.lock()
      if pmd.pointee.load(ordering: .relaxed) == orig {
        pmd.pointee.store((orig & ~(PTE.protNone | PTE.write)) | PTE.present, ordering: .releasing)
      }
      lock.unlock()
      return .done
    }
    if write && orig & PTE.write == 0 { return doHugePMDWPPage(vma, address, pmd, orig) }
    if !pkeyAllows(key: PTE(raw: orig).pkey, write: write) {
      if flags.contains(.vmaLock) { return .abort(.vmaAccess) }
      return .pkeyFault(pkey: vma.flags.pkey)
    }
    lock.lock()
    let now = pmd.pointee.load(ordering: .relaxed)
    if now == orig { pmd.pointee.store(now | PTE.accessed | (write ? PTE.dirty : 0), ordering: .releasing) }
    lock.unlock()
    count(counters, .faultRaced)
    return .done
  }

  /// `do_huge_pmd_wp_page`: a write to a read-only huge PMD. The huge zero page is replaced by
  /// a new zeroed huge page (`do_huge_zero_wp_pmd`, Linux 6.13+). An anonymous huge page that
  /// only this PMD maps and references is reused in place. Otherwise (shared since `fork`, or
  /// no 2 MiB block for the zero page's replacement) the PMD is split and the fault goes on at
  /// the PTE level, which copies one 4 KiB page (`nil`): Linux has not copied a whole shared
  /// huge page on a write fault since 5.8.
  func doHugePMDWPPage(
    _ vma: VMASnapshot, _ address: UInt64, _ pmd: UnsafeMutablePointer<Atomic<UInt64>>, _ orig: UInt64
  ) -> VMFaultResult? {
    if orig & PTE.special != 0 {
      if let result = doHugeZeroWPPMD(vma, address, pmd, orig) { return result }
    } else {
      let head = PFN(physical: orig & PTE.addressMask)
      let m = frames.meta(head)
      // References waiting for a grace period would make an exclusive page look shared.
      if m.refcount > 1 && frames.entireMapcount(head) == 1 { settleDeferredPuts() }
      if hooksEnabled.pointee.load(ordering: .relaxed) { runHook(.beforePTEMapLock, address) }
      let lock = walker.pmdLock(for: pmd)
      lock.lock()
      if pmd.pointee.load(ordering: .relaxed) != orig {
        lock.unlock()
        return .done
      }
      if m.refcount == 1 && frames.entireMapcount(head) == 1 && m.mapcount == 0 {
        pmd.pointee.store(orig | PTE.write | PTE.dirty | PTE.accessed, ordering: .releasing)
        lock.unlock()
        return .done
      }
      lock.unlock()
    }
    mm.pageTable.splitHugePMD(pmd)
    return nil
  }

  /// `do_huge_zero_wp_pmd`: a write to the huge zero page maps a new zeroed huge page in its
  /// place, keeping the deposited table; `nil` (`VM_FAULT_FALLBACK`, then a split) when no 2 MiB
  /// block is free.
  func doHugeZeroWPPMD(
    _ vma: VMASnapshot, _ address: UInt64, _ pmd: UnsafeMutablePointer<Atomic<UInt64>>, _ orig: UInt64
  ) -> VMFaultResult? {
    guard let page = frames.allocateHuge(flags: .anon, zeroed: true) else {
      count(counters, .thpFaultFallback)
      return nil
    }
    frames.meta(page).index = vma.pageIndex(TransparentHugePage.roundDown(address))
    let entry =
      page.physicalAddress | PTE.present | PTE.user | PTE.accessed | PTE.dirty | PTE.write | PTE.huge
      | vma.flags.ptePageProt
    if hooksEnabled.pointee.load(ordering: .relaxed) { runHook(.pagePrepared, address) }
    let lock = walker.pmdLock(for: pmd)
    lock.lock()
    guard pmd.pointee.load(ordering: .relaxed) == orig else {
      lock.unlock()
      frames.putFolio(page)
      count(counters, .faultRaced)
      return .done
    }
    frames.addEntireMap(page, 1)
    pmd.pointee.store(entry, ordering: .releasing)
    lock.unlock()
    // Counted once mapped (map_anon_folio_pmd), as in doHugePMDAnonymousPage.
    count(counters, .thpFaultAlloc)
    putHugeZeroPage(afterGracePeriod: true)
    return .done
  }

  /// `mm_get_huge_zero_folio` for a read fault. Out of line, with `putHugeZeroPage`: a mutex and
  /// the machine's memory object, once per 2 MiB (`Scripts/check-hot-path-arc.sh` lists both
  /// as cold, as it lists `putAfterGracePeriod`).
  @inline(never)
  func getHugeZeroPage() -> (page: PFN, allocated: Bool)? { machine.memory.getHugeZeroPage() }

  /// Drops a huge PMD's reference on the huge zero page: at once when the entry was never
  /// installed, else after a grace period (`PageTable.releaseHugeZeroPage`).
  @inline(never)
  func putHugeZeroPage(afterGracePeriod: Bool) {
    if afterGracePeriod { mm.pageTable.releaseHugeZeroPage() } else { machine.memory.putHugeZeroPage() }
  }
}
