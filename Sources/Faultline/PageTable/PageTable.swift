import Synchronization

/// A 4-level x86-64 page table (PGD → PUD → PMD → PTE) whose table pages are frames of the
/// `PhysicalMemory` arena, with `Atomic<UInt64>` entries.
///
/// - Lookups (`lookupPTE`, `lookupPMD`) take no lock: they are what the MMU's walker does, and
///   callers hold an RCU read section so that an unlinked table stays readable, or what keeps
///   the tables from being unlinked: `mmap_lock`, or the mapping lock a VMA covering the address
///   is registered under (writeback's `mkclean`).
/// - Upper levels are filled with a compare-and-swap (the loser frees its page), which is what
///   `__pte_alloc`/`__pmd_alloc` achieve with `page_table_lock`.
/// - Each PTE-table page has its own lock, the split PTL, in its frame metadata (`pte_lockptr`).
///   Every change to a PTE is made under it; upper-level entries change under `mmap_lock` (write)
///   or by CAS.
/// - Table pages removed by `freePgtables` go through `MMUGather`, so are freed after a grace
///   period.
package final class PageTable: @unchecked Sendable {
  /// Levels of the radix tree: PGD, PUD, PMD, PTE (x86-64 4-level paging).
  package static let levels = 4
  /// Bytes mapped by one entry at level 1 (PTE), 2 (PMD), 3 (PUD), 4 (PGD).
  @inline(__always) static func span(level: Int) -> UInt64 { 1 << (12 + 9 * UInt64(level - 1)) }
  /// `PMD_SIZE`: bytes one PTE table maps (2 MiB).
  package static let pmdSize: UInt64 = 1 << 21

  unowned(unsafe) let memory: PhysicalMemory
  /// Where splits of huge PMDs are counted (`thp_split_pmd`), when the table belongs to a machine.
  let vmstat: VMStat?
  /// The grace periods that release the huge zero page after a split, when the table belongs
  /// to a machine (without one it is released at once).
  let rcu: RCUDomain?
  /// The walks as a plain value, for hot paths (no reference counting).
  let walker: PageTableWalker
  /// The PGD page.
  package var root: PFN { walker.root }

  /// An empty page table (`pgd_alloc`) over `memory`; `ENOMEM` when no frame is free for the PGD.
  package init(memory: PhysicalMemory, vmstat: VMStat? = nil, rcu: RCUDomain? = nil) throws(Errno) {
    guard let r = memory.allocateZeroed(flags: .pageTable) else { throw Errno.noMemory }
    self.memory = memory
    self.vmstat = vmstat
    self.rcu = rcu
    walker = PageTableWalker(frames: memory.frames, root: r)
  }

  @inline(__always) func entries(_ pfn: PFN) -> UnsafeMutablePointer<Atomic<UInt64>> { walker.entries(pfn) }
  @inline(__always) static func index(_ va: UInt64, level: Int) -> Int { PageTableWalker.index(va, level: level) }

  /// The PTE slot for `va`, or `nil` when an upper level is missing. No allocation, no lock.
  package func lookupPTE(_ va: UInt64) -> UnsafeMutablePointer<Atomic<UInt64>>? { walker.lookupPTE(va) }
  /// The PMD slot for `va`, or `nil` when the PUD is missing.
  package func lookupPMD(_ va: UInt64) -> UnsafeMutablePointer<Atomic<UInt64>>? { walker.lookupPMD(va) }
  /// The PTE slot for `va`, allocating missing levels. `nil` when out of memory.
  func allocPTE(_ va: UInt64, cache: FrameCache?) -> UnsafeMutablePointer<Atomic<UInt64>>? {
    walker.allocPTE(va, cache: cache)
  }
  /// The split PTL of the PTE table holding `slot`.
  package func ptl(for slot: UnsafeMutablePointer<Atomic<UInt64>>) -> SpinLock { walker.ptl(for: slot) }

  /// The entry that maps `va` as a 4 KiB page (none when any level is missing): its PTE, or
  /// the subpage entry of a huge PMD (`PageTableWalker.leafEntry`), so that mincore and the
  /// tools see a huge page as 512 mapped pages.
  package func pte(at va: UInt64) -> PTE { PTE(raw: walker.leafEntry(va)) }

  /// The split PMD lock of the PMD table holding `pmd` (`pmd_lock`).
  package func pmdLock(for pmd: UnsafeMutablePointer<Atomic<UInt64>>) -> SpinLock { walker.pmdLock(for: pmd) }

  // MARK: Range operations (each says under `Requires:` which lock it needs; see `LockOrder`)

  /// Calls `body(pteTable, firstIndex, endIndex, vaOfIndex0)` for every PTE table that exists
  /// under `[start, end)`, skipping absent upper levels whole.
  ///
  /// A huge PMD met on the way is a leaf with no table: `huge(pmdSlot, vaOfItsStart)` decides
  /// about one that `[start, end)` covers whole, returning `true` when it dealt with it (the
  /// operation's `*_huge_pmd` counterpart: `zap_huge_pmd`, `change_huge_pmd`, `copy_huge_pmd`).
  /// Any other huge PMD, one the range covers only in part or one `huge` declined, is split
  /// first (`split_huge_pmd`), and its new table walked like any other: the one general rule by
  /// which every range operation splits a huge page it cuts through. `keep(entry)` names huge
  /// PMDs the operation leaves alone whole or in part (neither handled nor split).
  /// - Requires: what keeps the range's tables from being freed meanwhile: `mmap_lock`, or the
  ///   mapping lock of a registered VMA that covers the range. A walk that may split needs
  ///   `mmap_lock` (read is enough, as for `MADV_DONTNEED`).
  @inline(__always)
  func forEachPTETable(
    _ start: UInt64, _ end: UInt64,
    huge: (UnsafeMutablePointer<Atomic<UInt64>>, UInt64) -> Bool = { _, _ in false },
    keep: (UInt64) -> Bool = { _ in false },
    _ body: (UnsafeMutablePointer<Atomic<UInt64>>, Int, Int, UInt64) -> Void
  ) {
    guard start < end else { return }
    walkTables(root, level: 4, spanStart: 0, start, end, huge, keep, body)
  }

  private func walkTables(
    _ table: PFN, level: Int, spanStart: UInt64, _ start: UInt64, _ end: UInt64,
    _ huge: (UnsafeMutablePointer<Atomic<UInt64>>, UInt64) -> Bool,
    _ keep: (UInt64) -> Bool,
    _ body: (UnsafeMutablePointer<Atomic<UInt64>>, Int, Int, UInt64) -> Void
  ) {
    let size = Self.span(level: level)
    let t = entries(table)
    let first = start > spanStart ? Int((start - spanStart) / size) : 0
    let last = Int(min((end - 1 - spanStart) / size, 511))
    guard first <= last else { return }
    if level == 1 {
      body(t, first, last + 1, spanStart)
      return
    }
    for i in first...last {
      var e = t[i].load(ordering: .acquiring)
      let childStart = spanStart &+ UInt64(i) &* size
      if level == 2 && e & PTE.huge != 0 && e & (PTE.present | PTE.protNone) != 0 {
        // A huge leaf: the operation's own handling when covered whole, else split it.
        if keep(e) { continue }
        let whole = childStart >= start && childStart &+ size <= end
        if whole && huge(t + i, childStart) { continue }
        splitHugePMD(t + i)
        e = t[i].load(ordering: .acquiring)
      }
      if e & (PTE.present | PTE.huge) != PTE.present { continue }
      walkTables(PFN(physical: e & PTE.addressMask), level: level - 1, spanStart: childStart, start, end, huge, keep, body)
    }
  }

  /// Clears every PTE in `[start, end)` (`zap_pte_range`). Mapped frames lose their mapcount now;
  /// their reference is dropped through `gather` after the flush. A dirty PTE marks its page dirty.
  /// Returns the number of entries cleared. With `keepAnon`, entries mapping anonymous frames
  /// (private copies of file pages) stay. Guard markers stay too (`zap_nonpresent_ptes` keeps
  /// them unless the zap drops markers): only `dropMarkers` (munmap and teardown,
  /// `ZAP_FLAG_DROP_MARKER`) clears them. With `keepHugeZero` (`MADV_FREE`:
  /// `madvise_free_huge_pmd` skips it) a huge zero-page PMD stays whole, even one the range
  /// covers only in part.
  /// - Requires: `mmap_lock` held (read is enough, as for `MADV_DONTNEED`), or the backing object's
  ///   mapping lock over a registered VMA's range (truncate, hole punch).
  @discardableResult
  func zapRange(
    _ start: UInt64, _ end: UInt64, gather: inout MMUGather, keepAnon: Bool = false, dropMarkers: Bool = false,
    keepHugeZero: Bool = false
  ) -> Int {
    var cleared = 0
    forEachPTETable(
      start, end,
      huge: { pmd, _ in
        // Split meanwhile: its table is walked instead.
        guard zapHugePMD(pmd, gather: &gather) else { return false }
        cleared += TransparentHugePage.pages
        return true
      },
      keep: { keepHugeZero && $0 & PTE.special != 0 }
    ) { table, from, to, _ in
      let lock = ptl(for: table)
      lock.lock()
      for i in from..<to {
        let e = PTE(raw: table[i].load(ordering: .relaxed))
        if e.isGuardMarker && !dropMarkers { continue }
        if keepAnon && e.mapsFrame && !e.isSpecial && memory.meta(e.pfn).flags.contains(.anon) { continue }
        let old = PTE(raw: table[i].exchange(0, ordering: .acquiringAndReleasing))
        if old.isNone { continue }
        cleared += 1
        releaseZapped(old, gather: &gather)
      }
      lock.unlock()
    }
    return cleared
  }

  /// What clearing the non-empty entry `old` leaves to do (`zap_present_ptes`): a flush, and for
  /// a frame its dirty bit, its mapcount now and its reference through `gather`.
  /// - Requires: the PTL of the entry's table held.
  @inline(__always)
  func releaseZapped(_ old: PTE, gather: inout MMUGather) {
    gather.flushNeeded()
    guard old.mapsFrame && !old.isSpecial else { return }
    let m = memory.meta(old.pfn)
    if old.isDirty { m.setFlags(.dirty) }
    m.removeMap()
    gather.removePage(old.pfn)
  }

  /// Rewrites the PTEs of `[start, end)` for new VMA flags (`change_pte_range`): no access at
  /// all gives PROT_NONE entries that keep their frame; no write clears the write bit; no exec
  /// sets NX. Permissions are only ever lowered here; a later fault raises them. Records a needed
  /// flush in `gather` when some entry lost a permission.
  /// - Requires: `mmap_lock` held for write.
  func changeProtection(_ start: UInt64, _ end: UInt64, vmFlags: VMFlags, gather: inout MMUGather) {
    forEachPTETable(start, end, huge: { pmd, _ in
      changeHugePMD(pmd, vmFlags: vmFlags, gather: &gather)
      return true
    }) { table, from, to, _ in
      let lock = ptl(for: table)
      lock.lock()
      for i in from..<to {
        let old = table[i].load(ordering: .relaxed)
        // Nothing to change in an empty entry or a guard marker (change_pte_range leaves markers).
        if old == 0 || old == PTE.guardMarker { continue }
        let new = Self.changedEntry(old, vmFlags: vmFlags)
        if new != old {
          table[i].store(new, ordering: .releasing)
          if Self.changeNeedsFlush(old, new) { gather.flushNeeded() }
        }
      }
      lock.unlock()
    }
  }

  /// The entry `old` (a PTE or a huge PMD) rewritten for new VMA flags by `changeProtection`'s rule.
  @inline(__always)
  static func changedEntry(_ old: UInt64, vmFlags: VMFlags) -> UInt64 {
    var new = old
    if !vmFlags.isAccessible {
      new = (new & ~(PTE.present | PTE.write)) | PTE.protNone
    } else {
      if new & PTE.protNone != 0 { new = (new & ~PTE.protNone) | PTE.present }
      if !vmFlags.contains(.write) { new &= ~PTE.write }
    }
    return (new & ~(PTE.noExecute | PTE.pkeyMask)) | vmFlags.ptePageProt
  }

  /// Losing present or write needs a flush, and so does a new protection key (its PKRU rights
  /// may be lower); gaining nothing here never does.
  @inline(__always)
  static func changeNeedsFlush(_ old: UInt64, _ new: UInt64) -> Bool {
    old & ~new & (PTE.present | PTE.write) != 0 || (old ^ new) & PTE.pkeyMask != 0
  }

  /// Unlinks and frees (through `gather`) every table page whose whole span lies inside
  /// `[floor, ceiling)` and meets `[start, end)` (`free_pgtables`). `floor` is the end of the
  /// previous VMA and `ceiling` the start of the next (0 and `UInt64.max` when none), so no
  /// table that still serves a VMA is touched. The root is never freed here.
  /// - Requires: `mmap_lock` held for write, and the range's VMAs already unlinked from their
  ///   registries (`unlinkFileVMA`).
  func freePgtables(_ start: UInt64, _ end: UInt64, floor: UInt64, ceiling: UInt64, gather: inout MMUGather) {
    guard start < end else { return }
    freeLevel(root, level: 4, spanStart: 0, start, end, floor, ceiling, &gather)
  }

  private func freeLevel(
    _ table: PFN, level: Int, spanStart: UInt64, _ start: UInt64, _ end: UInt64,
    _ floor: UInt64, _ ceiling: UInt64, _ gather: inout MMUGather
  ) {
    let size = Self.span(level: level)
    let t = entries(table)
    let first = start > spanStart ? Int((start - spanStart) / size) : 0
    let last = Int(min((end - 1 - spanStart) / size, 511))
    guard first <= last else { return }
    for i in first...last {
      let e = t[i].load(ordering: .acquiring)
      precondition(level != 2 || e & PTE.huge == 0, "freeing page tables under a huge PMD that was not zapped")
      if e & PTE.present == 0 { continue }
      let childStart = spanStart &+ UInt64(i) &* size
      let childEnd = childStart &+ size
      let child = PFN(physical: e & PTE.addressMask)
      if level > 2 {
        freeLevel(child, level: level - 1, spanStart: childStart, start, end, floor, ceiling, &gather)
      }
      if childStart >= floor && (childEnd <= ceiling || childEnd == 0 && ceiling == .max) {
        assert(tableIsEmpty(child), "freeing a page table that still maps something")
        t[i].store(0, ordering: .releasing)
        gather.removeTable(child)
      }
    }
  }

  func tableIsEmpty(_ pfn: PFN) -> Bool {
    let t = entries(pfn)
    for i in 0..<512 where t[i].load(ordering: .relaxed) != 0 { return false }
    return true
  }

  /// Frees every table page, the root included (`exit_mmap` after unmapping everything). Data
  /// frames still mapped are unmapped first, through `gather`.
  /// - Requires: `mmap_lock` held for write, every VMA removed (`exit_mmap`).
  func destroy(gather: inout MMUGather) {
    zapRange(0, Page.userAddressLimit, gather: &gather, dropMarkers: true)
    freePgtables(0, Page.userAddressLimit, floor: 0, ceiling: .max, gather: &gather)
    gather.removeTable(root)
  }

  /// The number of table pages reachable from the root, the root included (tests and stats).
  package var tablePages: Int {
    func count(_ pfn: PFN, _ level: Int) -> Int {
      if level == 1 { return 1 }
      var n = 1
      let t = entries(pfn)
      for i in 0..<512 {
        let e = t[i].load(ordering: .acquiring)
        if e & (PTE.present | PTE.huge) == PTE.present { n += count(PFN(physical: e & PTE.addressMask), level - 1) }
      }
      return n
    }
    return count(root, 4)
  }
}
