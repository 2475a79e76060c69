import Synchronization

/// The walks of a `PageTable` as a plain value (the arena's allocator and the root), so that
/// loads, stores and faults walk with no reference counting. Valid while its table lives.
///
/// - `lookupPTE`/`lookupPMD` take no lock: they are what the MMU's walker does; callers hold an
///   RCU read section (or `mmap_lock`, or the mapping lock of a VMA registered over the address)
///   so that an unlinked table stays readable.
/// - `allocPTE` fills missing upper levels with a compare-and-swap, the loser freeing its page,
///   which is what `__pte_alloc`/`__pmd_alloc` achieve with `page_table_lock`.
/// - `ptl(for:)` is the split PTL of a PTE table, kept in the table frame's metadata
///   (`pte_lockptr`).
struct PageTableWalker: @unchecked Sendable {
  let frames: FrameAllocator
  /// The PGD page.
  let root: PFN

  /// The 512 entries of a table page.
  @inline(__always) func entries(_ pfn: PFN) -> UnsafeMutablePointer<Atomic<UInt64>> { frames.words(of: pfn) }

  @inline(__always) static func index(_ va: UInt64, level: Int) -> Int {
    Int(truncatingIfNeeded: (va >> (12 + 9 * UInt64(level - 1))) & 511)
  }

  /// The PTE slot for `va`, or `nil` when an upper level is missing or the PMD maps a huge
  /// page (a leaf, never read as a table: see `leafEntry`).
  @inline(__always)
  func lookupPTE(_ va: UInt64) -> UnsafeMutablePointer<Atomic<UInt64>>? {
    guard let pmd = lookupPMD(va) else { return nil }
    let e = pmd.pointee.load(ordering: .acquiring)
    if !PTE.pmdNamesTable(e) { return nil }
    return entries(PFN(physical: e & PTE.addressMask)) + Self.index(va, level: 1)
  }

  /// The PMD slot for `va` (whose value names the PTE table), or `nil` when the PUD is missing.
  @inline(__always)
  func lookupPMD(_ va: UInt64) -> UnsafeMutablePointer<Atomic<UInt64>>? {
    var table = root
    var level = 4
    while level > 2 {
      let e = entries(table)[Self.index(va, level: level)].load(ordering: .acquiring)
      if e & PTE.present == 0 { return nil }
      table = PFN(physical: e & PTE.addressMask)
      level -= 1
    }
    return entries(table) + Self.index(va, level: 2)
  }

  /// The entry that maps `va` as one 4 KiB page would: its PTE, or under a huge PMD the PTE a
  /// split would give it (the PMD's bits without PSE, the frame `va`'s within the huge page).
  /// 0 when nothing maps it.
  func leafEntry(_ va: UInt64) -> UInt64 {
    guard let pmd = lookupPMD(va) else { return 0 }
    let e = pmd.pointee.load(ordering: .acquiring)
    // A PROT_NONE huge PMD still maps its page (`pmd_trans_huge` holds for it).
    if e & (PTE.present | PTE.protNone) == 0 { return 0 }
    if e & PTE.huge != 0 {
      let sub = (va & ~TransparentHugePage.mask) & Page.mask
      return (e & ~PTE.huge) &+ sub
    }
    return entries(PFN(physical: e & PTE.addressMask))[Self.index(va, level: 1)].load(ordering: .acquiring)
  }

  /// The PTE slot for `va`, allocating missing levels. `nil` when out of memory, or when the
  /// PMD maps a huge page (whose faults the caller handles before asking for a PTE).
  @inline(__always)
  func allocPTE(_ va: UInt64, cache: FrameCache?) -> UnsafeMutablePointer<Atomic<UInt64>>? {
    allocSlot(va, level: 1, cache: cache)
  }

  /// The PMD slot for `va`, allocating the PUD and PMD tables when missing (`pmd_alloc`), but
  /// not the PTE table. `nil` when out of memory.
  func allocPMD(_ va: UInt64, cache: FrameCache?) -> UnsafeMutablePointer<Atomic<UInt64>>? {
    allocSlot(va, level: 2, cache: cache)
  }

  /// The PTE slot for `va` when its PMD names a PTE table, filling a missing PGD or PUD level
  /// on the way; `nil` when the PMD is empty or a huge leaf (where the fault decides between a
  /// huge page and a table: `handleMMFaultPMD`), or when out of memory.
  @inline(__always)
  func pteSlotForFault(_ va: UInt64, cache: FrameCache?) -> UnsafeMutablePointer<Atomic<UInt64>>? {
    allocSlot(va, level: 1, cache: cache, fillPMD: false)
  }

  /// The slot for `va` in its level-`stop` table (1: PTE, 2: PMD), filling the levels above
  /// (the PMD entry itself only with `fillPMD`).
  @inline(__always)
  func allocSlot(
    _ va: UInt64, level stop: Int, cache: FrameCache?, fillPMD: Bool = true
  ) -> UnsafeMutablePointer<Atomic<UInt64>>? {
    var table = root
    var level = 4
    // The PGD and PUD entries name tables (Faultline has no 1 GiB leaves): the present bit
    // alone decides.
    while level > max(stop, 2) {
      let slot = entries(table) + Self.index(va, level: level)
      var e = slot.pointee.load(ordering: .acquiring)
      if e & PTE.present == 0 {
        guard let filled = fill(slot, cache: cache) else { return nil }
        e = filled
      }
      table = PFN(physical: e & PTE.addressMask)
      level -= 1
    }
    if stop == 1 {
      // A PMD entry may be a huge leaf, which `fill` refuses: never walked as a table.
      let slot = entries(table) + Self.index(va, level: 2)
      var e = slot.pointee.load(ordering: .acquiring)
      if !PTE.pmdNamesTable(e) {
        guard fillPMD, let filled = fill(slot, cache: cache) else { return nil }
        e = filled
      }
      table = PFN(physical: e & PTE.addressMask)
    }
    return entries(table) + Self.index(va, level: stop)
  }

  /// Installs a fresh table page in an empty upper-level slot, or adopts the one a racing
  /// thread installed. Returns the slot's entry, or `nil` when out of memory or when the slot
  /// holds a huge page (a leaf: there is no table below it).
  @inline(never)
  func fill(_ slot: UnsafeMutablePointer<Atomic<UInt64>>, cache: FrameCache?) -> UInt64? {
    if PTE(raw: slot.pointee.load(ordering: .acquiring)).isHugePMD { return nil }
    guard let fresh = frames.allocateZeroed(cache: cache, flags: .pageTable) else { return nil }
    let entry = PTE.table(fresh).raw
    let (won, current) = slot.pointee.compareExchange(expected: 0, desired: entry, ordering: .acquiringAndReleasing)
    if won { return entry }
    frames.put(fresh, cache: cache)
    return current & PTE.huge == 0 ? current : nil
  }

  /// The split PMD lock of the PMD table holding `pmd` (`pmd_lockptr`): the same lock word as
  /// a PTE table's, in the PMD table page's metadata. It guards the huge entries of that table.
  @inline(__always)
  func pmdLock(for pmd: UnsafeMutablePointer<Atomic<UInt64>>) -> SpinLock { ptl(for: pmd) }

  /// The split PTL of the PTE table holding `slot` (`pte_lockptr`).
  @inline(__always)
  func ptl(for slot: UnsafeMutablePointer<Atomic<UInt64>>) -> SpinLock {
    let offset = UnsafeMutableRawPointer(slot) - frames.base
    return frames.meta(PFN(UInt32(truncatingIfNeeded: offset >> Page.shift))).ptl
  }
}
