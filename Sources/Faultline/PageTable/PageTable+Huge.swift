import Synchronization

/// Huge PMDs in the range operations (`mm/huge_memory.c`, `mm/pgtable-generic.c`): the PTE
/// table deposited beside each huge PMD, its split into 512 PTEs, and the `*_huge_pmd`
/// counterparts of zap and change-protection.
///
/// A huge PMD maps a whole compound page (its head's refcount holds one reference for it, and
/// `FrameAllocator.entireMapcount` counts it), or the huge zero page (one reference of
/// `PhysicalMemory.getHugeZeroPage`). Every change to a huge PMD is made under the PMD lock
/// (`pmdLock(for:)`), by a caller holding `mmap_lock` (read is enough for a split and a zap).
///
/// After a split the page stays one compound page mapped by 512 PTEs: each subpage's mapcount
/// counts its PTE, and each PTE holds a reference on the head (`folio_ref_add(folio,
/// HPAGE_PMD_NR - 1)`), so the 2 MiB go back to the allocator only when the last subpage is
/// unmapped. Linux queues such a partly mapped page for a deferred split that frees its
/// unmapped subpages under memory pressure; Faultline does not model the deferred split.
extension PageTable {
  // MARK: The deposited table (`pgtable_trans_huge_deposit`/`_withdraw`)

  /// Deposits the empty PTE table `table` beside the huge PMD `pmd` (`PageTableWalker.depositTable`).
  /// - Requires: the PMD lock of `pmd` held.
  func depositTable(_ pmd: UnsafeMutablePointer<Atomic<UInt64>>, _ table: PFN) { walker.depositTable(pmd, table) }

  /// Takes back a table deposited in `pmd`'s PMD table (`PageTableWalker.withdrawTable`).
  /// - Requires: the PMD lock of `pmd` held, and a huge PMD in that table (so one is deposited).
  func withdrawTable(_ pmd: UnsafeMutablePointer<Atomic<UInt64>>) -> PFN { walker.withdrawTable(pmd) }

  // MARK: Split

  /// `__split_huge_pmd` for the huge PMD in `pmd`: fills the
  /// deposited table with the 512 PTEs the huge entry stands for (its bits without PSE: write,
  /// dirty, accessed, protection key, PROT_NONE), and makes the PMD point at it. The huge zero
  /// page becomes 512 entries of the 4 KiB zero frame, and its reference is dropped after a
  /// grace period. Does nothing when the entry is no longer a huge leaf. Counts
  /// `thp_split_pmd`; returns whether it split.
  ///
  /// The PMD goes straight from the huge entry to the filled table, so an access walking it
  /// without a lock reaches the same frames either way (Linux invalidates the PMD first, which
  /// the TLB flush needs and Faultline's accessors do not).
  /// - Requires: `mmap_lock` held (read is enough); not the PMD lock.
  @discardableResult
  func splitHugePMD(_ pmd: UnsafeMutablePointer<Atomic<UInt64>>) -> Bool {
    let lock = pmdLock(for: pmd)
    lock.lock()
    let e = pmd.pointee.load(ordering: .relaxed)
    guard e & PTE.huge != 0, e & (PTE.present | PTE.protNone) != 0 else {
      lock.unlock()
      return false
    }
    let table = withdrawTable(pmd)
    let t = entries(table)
    let bits = e & ~(PTE.addressMask | PTE.huge)
    let head = PFN(physical: e & PTE.addressMask)
    var zeroPut = false
    if e & PTE.special != 0 {
      for i in 0..<TransparentHugePage.pages { t[i].store(PFN.zero.physicalAddress | bits, ordering: .relaxed) }
      zeroPut = true
    } else {
      let frames = memory.frames
      for i in 0..<TransparentHugePage.pages {
        let sub = PFN(head.raw &+ UInt32(i))
        frames.meta(sub).addMap()
        t[i].store(sub.physicalAddress | bits, ordering: .relaxed)
      }
      // The PMD's reference becomes the first PTE's; the other 511 take one each.
      frames.meta(head).p.pointee.refcount.wrappingAdd(UInt32(TransparentHugePage.pages - 1), ordering: .relaxed)
      frames.addEntireMap(head, -1)
    }
    pmd.pointee.store(PTE.table(table).raw, ordering: .releasing)
    lock.unlock()
    vmstat?.add(.thpSplitPmd)
    if zeroPut { releaseHugeZeroPage() }
    return true
  }

  /// Splits the huge PMD mapping `address`, if there is one (`split_huge_pmd_address`), as a
  /// VMA split at an address that is not 2 MiB aligned needs (`vma_adjust_trans_huge`).
  /// - Requires: `mmap_lock` held.
  func splitHugePMD(at address: UInt64) {
    guard let pmd = lookupPMD(address) else { return }
    let e = pmd.pointee.load(ordering: .acquiring)
    if e & PTE.huge != 0 { splitHugePMD(pmd) }
  }

  /// Drops one reference on the huge zero page once no access can still read through an
  /// entry that mapped it.
  func releaseHugeZeroPage() {
    let memory = memory
    if let rcu {
      rcu.callRCU { memory.putHugeZeroPage() }
    } else {
      memory.putHugeZeroPage()
    }
  }

  // MARK: Zap and change protection of a whole huge PMD

  /// `zap_huge_pmd`: clears the huge PMD in `pmd`, which the zapped range covers whole. The
  /// deposited table goes back through `gather`; the huge page loses its entire mapping now and
  /// its reference after the flush (the huge zero page its reference). A dirty PMD marks the
  /// page dirty. Returns `false` when the PMD was no longer a huge leaf under its lock (a fault
  /// or a `MADV_DONTNEED`, under `mmap_lock` read or a VMA lock, split it after the walk read
  /// it): the caller then zaps the PTE table it names, as `zap_pmd_range` falls through.
  /// - Requires: `mmap_lock` held (read is enough); not the PMD lock.
  @discardableResult
  func zapHugePMD(_ pmd: UnsafeMutablePointer<Atomic<UInt64>>, gather: inout MMUGather) -> Bool {
    let lock = pmdLock(for: pmd)
    lock.lock()
    let old = pmd.pointee.load(ordering: .relaxed)
    guard old & PTE.huge != 0, old & (PTE.present | PTE.protNone) != 0 else {
      lock.unlock()
      return false
    }
    pmd.pointee.store(0, ordering: .releasing)
    let table = withdrawTable(pmd)
    lock.unlock()
    gather.removeTable(table)
    let head = PFN(physical: old & PTE.addressMask)
    if old & PTE.special == 0 {
      let frames = memory.frames
      if old & PTE.dirty != 0 { frames.meta(head).setFlags(.dirty) }
      frames.addEntireMap(head, -1)
    }
    // The huge zero page's head is gathered too: `MMUGather.release` drops its own reference.
    gather.removePage(head)
    return true
  }

  /// `change_huge_pmd`: the `changeProtection` rule applied to a huge PMD the range covers
  /// whole (PSE stays, so a PROT_NONE huge PMD is still a leaf).
  /// - Requires: `mmap_lock` held for write; not the PMD lock.
  func changeHugePMD(_ pmd: UnsafeMutablePointer<Atomic<UInt64>>, vmFlags: VMFlags, gather: inout MMUGather) {
    let lock = pmdLock(for: pmd)
    lock.lock()
    let old = pmd.pointee.load(ordering: .relaxed)
    if old & PTE.huge != 0 && old & (PTE.present | PTE.protNone) != 0 {
      let new = Self.changedEntry(old, vmFlags: vmFlags)
      if new != old {
        pmd.pointee.store(new, ordering: .releasing)
        if Self.changeNeedsFlush(old, new) { gather.flushNeeded() }
      }
    }
    lock.unlock()
  }
}

// MARK: The deposited table (`pgtable_trans_huge_deposit`/`_withdraw`)

/// On the walker, so that the fault path deposits with no reference counting.
extension PageTableWalker {
  /// The chain of deposited PTE tables of the PMD table holding `pmd`: its head (a frame number
  /// plus one, 0 when empty) lives in the PMD table page's owner word, each deposited table's
  /// successor in its own (Linux threads them through `pmd_huge_pte` and `page->lru`).
  @inline(__always) private func depositHead(_ pmd: UnsafeMutablePointer<Atomic<UInt64>>) -> UnsafeMutablePointer<Atomic<UInt64>> {
    let offset = UnsafeMutableRawPointer(pmd) - frames.base
    return frames.meta(PFN(UInt32(truncatingIfNeeded: offset >> Page.shift))).privateWord
  }

  /// Deposits the empty PTE table `table` beside the huge PMD `pmd`, so that a later split
  /// needs no allocation and cannot fail.
  /// - Requires: the PMD lock of `pmd` held.
  func depositTable(_ pmd: UnsafeMutablePointer<Atomic<UInt64>>, _ table: PFN) {
    let head = depositHead(pmd)
    frames.meta(table).privateWord.pointee.store(head.pointee.load(ordering: .relaxed), ordering: .relaxed)
    head.pointee.store(UInt64(table.raw) + 1, ordering: .relaxed)
  }

  /// Takes back a table deposited in `pmd`'s PMD table (any one: they are all empty).
  /// - Requires: the PMD lock of `pmd` held, and a huge PMD in that table (so one is deposited).
  func withdrawTable(_ pmd: UnsafeMutablePointer<Atomic<UInt64>>) -> PFN {
    let head = depositHead(pmd)
    let top = head.pointee.load(ordering: .relaxed)
    precondition(top != 0, "no page table deposited beside a huge PMD")
    let table = PFN(UInt32(truncatingIfNeeded: top - 1))
    let next = frames.meta(table).privateWord
    head.pointee.store(next.pointee.load(ordering: .relaxed), ordering: .relaxed)
    next.pointee.store(0, ordering: .relaxed)
    return table
  }
}
