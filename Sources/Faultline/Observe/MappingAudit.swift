import Synchronization

/// Checks that the frame metadata agrees with the page tables that map it, huge PMDs included
/// (invariant 3 of DESIGN.md §4, for the interleaving explorer and the stress tests; not used by
/// the engine itself). The rules, those of Linux's folio accounting:
/// - a huge PMD maps the head of a compound page (or the huge zero page), which holds one
///   reference and one entire mapping (`folio->_entire_mapcount`) for it;
/// - a PTE maps a frame whose `mapcount` counts it, and holds one reference on the frame's
///   compound head (its own frame when it is no subpage of a huge page);
/// - the shared zero frame and the huge zero page are not counted.
package struct MappingAudit {
  let memory: PhysicalMemory

  package init(memory: PhysicalMemory) { self.memory = memory }

  /// What `[start, end)` of `mm` maps: `huge(pmdStart, entry)` for each huge PMD, `pte(address,
  /// entry)` for each other mapped page. `start` and `end` are 2 MiB aligned. Reads without
  /// locks: a caller racing writers sees each entry as it was at some moment.
  func forEachMapping(
    _ mm: AddressSpace, _ start: UInt64, _ end: UInt64, huge: (UInt64, PTE) -> Void, pte: (UInt64, PTE) -> Void
  ) {
    let size = TransparentHugePage.size
    for h in stride(from: start, to: end, by: Int(size)) {
      // One read of the PMD decides: a huge leaf, or the table whose entries are read (never a
      // second walk, which could meet a huge PMD installed meanwhile).
      guard let pmd = mm.pageTable.lookupPMD(h) else { continue }
      let e = PTE(raw: pmd.pointee.load(ordering: .acquiring))
      if e.raw & PTE.huge != 0 {
        if e.mapsFrame { huge(h, e) }
        continue
      }
      guard PTE.pmdNamesTable(e.raw) else { continue }
      let table = mm.pageTable.entries(e.pfn)
      for i in 0..<TransparentHugePage.pages {
        let p = PTE(raw: table[i].load(ordering: .acquiring))
        if p.mapsFrame && !p.isSpecial { pte(h + UInt64(i) << Page.shift, p) }
      }
    }
  }

  /// Lock-free, at any moment: every frame mapped in `[start, end)` of `mm` is live (not free,
  /// mapped, its head referenced). Appends one line per problem, tagged `when`. An entry that
  /// changed while its frame was read is skipped: a fault that copies a page installs the copy
  /// before it drops the old page's mapping, so the old page may legitimately look unmapped.
  /// Preconditions: nothing frees the page-table pages of the range meanwhile.
  package func checkLive(_ mm: AddressSpace, _ start: UInt64, _ end: UInt64, when: String = "", _ problems: inout [String]) {
    let frames = memory.frames
    forEachMapping(mm, start, end) { h, e in
      if e.isSpecial {
        if !memory.isHugeZeroPage(e.pfn) { problems.append("inv3: \(Self.hex(h)) maps \(e.pfn) as the huge zero page \(when)") }
        return
      }
      let m = frames.meta(e.pfn)
      let entire = frames.entireMapcount(e.pfn)
      guard Self.unchanged(mm, h, e, huge: true) else { return }
      if !m.flags.contains(.head) || m.flags.contains(.free) || m.refcount == 0 || entire <= 0 {
        problems.append(
          "inv3: huge PMD at \(Self.hex(h)) maps \(e.pfn) with flags \(m.flags.rawValue) refcount \(m.refcount)"
            + " entire mapcount \(entire) \(when)")
      }
    } pte: { a, e in
      let m = frames.meta(e.pfn)
      let head = frames.meta(frames.compoundHead(e.pfn))
      let (mapcount, refcount) = (m.mapcount, head.refcount)
      guard Self.unchanged(mm, a, e, huge: false) else { return }
      if m.flags.contains(.free) || mapcount <= 0 || refcount == 0 {
        problems.append(
          "inv3: \(Self.hex(a)) maps \(e.pfn) with mapcount \(mapcount) flags \(m.flags.rawValue),"
            + " head refcount \(refcount) \(when)")
      }
    }
  }

  /// Once no thread runs and deferred frees were drained: entire mapcounts, mapcounts and
  /// refcounts are exactly what the mappings of `[start, end)` in `mms` account for. Only
  /// valid when nothing else maps or references those frames (private anonymous memory, no
  /// page cache, no pins).
  package func checkExact(_ mms: [AddressSpace], _ start: UInt64, _ end: UInt64, _ problems: inout [String]) {
    let frames = memory.frames
    var entire: [UInt32: Int] = [:]
    var pteMaps: [UInt32: Int] = [:]
    var refs: [UInt32: Int] = [:]
    for mm in mms {
      forEachMapping(mm, start, end) { _, e in
        guard !e.isSpecial else { return }
        entire[e.pfn.raw, default: 0] += 1
        refs[e.pfn.raw, default: 0] += 1
      } pte: { _, e in
        pteMaps[e.pfn.raw, default: 0] += 1
        refs[frames.compoundHead(e.pfn).raw, default: 0] += 1
      }
    }
    for (head, n) in entire.sorted(by: { $0.key < $1.key }) where frames.entireMapcount(PFN(head)) != n {
      problems.append("inv3: huge page \(head) has entire mapcount \(frames.entireMapcount(PFN(head))), \(n) huge PMDs map it")
    }
    for (pfn, n) in pteMaps.sorted(by: { $0.key < $1.key }) where frames.meta(PFN(pfn)).mapcount != n {
      problems.append("inv3: frame \(pfn) has mapcount \(frames.meta(PFN(pfn)).mapcount), \(n) PTEs map it")
    }
    for (head, n) in refs.sorted(by: { $0.key < $1.key }) where frames.meta(PFN(head)).refcount != n {
      problems.append("inv3: frame \(head) has refcount \(frames.meta(PFN(head)).refcount), \(n) mappings hold one")
    }
  }

  /// Whether the entry mapping `address` (its huge PMD for `huge`) is still `e`.
  static func unchanged(_ mm: AddressSpace, _ address: UInt64, _ e: PTE, huge: Bool) -> Bool {
    if huge {
      guard let pmd = mm.pageTable.lookupPMD(address) else { return false }
      return pmd.pointee.load(ordering: .acquiring) == e.raw
    }
    guard let slot = mm.pageTable.lookupPTE(address) else { return false }
    return slot.pointee.load(ordering: .acquiring) == e.raw
  }

  static func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
}
