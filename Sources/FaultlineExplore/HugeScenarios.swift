import Faultline

/// The transparent-huge-page scenarios (issue 18): a fault in a `MADV_HUGEPAGE` range (a huge
/// page, the huge zero page, or a write to the huge zero page; see `HugeRig`) against a writer
/// that splits the huge PMD: munmap of R1's upper half, mprotect of it, `MADV_DONTNEED` of one
/// 4 KiB page; `huge-fault-fork` is in `HugeForkScenario.swift`.
extension Scenario {
  static let hugeVariants = ["write", "read", "zero-write"]

  /// A huge fault vs munmap of half its 2 MiB range (invariants 1, 3, 7).
  public static let hugeFaultMunmap = Scenario(
    name: "huge-fault-munmap",
    summary: "fault in a MADV_HUGEPAGE 2 MiB range (huge page, huge zero page) vs munmap of its upper half",
    threads: ["F", "W"], variants: hugeVariants, usesFputMode: false, needsWorkDir: false,
    make: { config, s in try HugeRun(config, s, .munmap) })

  /// A huge fault vs mprotect(PROT_READ) of half its 2 MiB range (invariants 2, 3, 7).
  public static let hugeFaultMprotect = Scenario(
    name: "huge-fault-mprotect",
    summary: "fault in a MADV_HUGEPAGE 2 MiB range vs mprotect(PROT_READ) of its upper half (splits the PMD)",
    threads: ["F", "W"], variants: hugeVariants, usesFputMode: false, needsWorkDir: false,
    make: { config, s in try HugeRun(config, s, .mprotect) })

  /// A huge fault vs MADV_DONTNEED of one 4 KiB page of its range (invariants 1, 3, 7).
  public static let hugeFaultDontneed = Scenario(
    name: "huge-fault-dontneed",
    summary: "fault in a MADV_HUGEPAGE 2 MiB range vs MADV_DONTNEED of its page 3 (splits the PMD)",
    threads: ["F", "W"], variants: hugeVariants, usesFputMode: false, needsWorkDir: false,
    make: { config, s in try HugeRun(config, s, .dontneed) })
}

/// One run of `huge-fault-munmap`, `-mprotect` or `-dontneed`. The fault is at page 1 of R1,
/// which every writer leaves mapped and writable, so it always succeeds (`ok`).
///
/// Checks, besides `HugeRig`'s: once munmap returned, no PTE in R1's upper half (invariant 1);
/// once mprotect returned, no writable PTE there (2); once either returned, R1 is no longer
/// mapped by a huge PMD (R1 now straddles a VMA boundary; `vma_adjust_trans_huge`); a page
/// `MADV_DONTNEED` dropped after the fault finished has no PTE (1); R1's resident pages are
/// those Linux gives for the order (fault first: all of R1 that is still mapped, but a dropped
/// page; writer first: page 1 alone, the range being no longer eligible; `zero-write` split the
/// huge zero page in set-up either way). Sabotage: the writer skips munmap/madvise, or keeps
/// `PROT_WRITE`.
final class HugeRun: HugeRig, ScenarioRun {
  enum Writer { case munmap, mprotect, dontneed }
  let writer: Writer
  var bodies: [@Sendable () -> Void] = []
  /// The upper half of R1 (munmap, mprotect) or its page 3 (`MADV_DONTNEED`).
  let cut: (start: UInt64, end: UInt64)

  init(_ config: ScenarioConfig, _ s: Scheduler, _ writer: Writer) throws {
    self.writer = writer
    let r1 = Self.hugeRange
    cut = writer == .dontneed ? (r1 + 3 * Self.page, r1 + 4 * Self.page) : (r1 + Self.huge / 2, r1 + Self.huge)
    try super.init(config, s)
    let (mm, cut, sabotage) = (mm!, cut, config.sabotage)
    let call: @Sendable () throws(Errno) -> Void
    switch writer {
    case .munmap:
      call = { () throws(Errno) in if !sabotage { try mm.munmap(cut.start, cut.end - cut.start) } }
    case .mprotect:
      let prot = sabotage ? Prot.read | Prot.write : Prot.read
      call = { () throws(Errno) in try CPU(mm: mm).mprotect(cut.start, cut.end - cut.start, prot: prot) }
    case .dontneed:
      call = { () throws(Errno) in
        if !sabotage { try CPU(mm: mm).madvise(cut.start, cut.end - cut.start, advice: .dontNeed) }
      }
    }
    bodies = [accessBody(), Self.writerBody(s, times, "\(writer)", call)]
    arm()
  }

  func quiescent(step: Int, violations: inout [String]) {
    guard let mm else { return }
    checkHugeFramesLive(mm, "step \(step)", &violations)
    if times.value.writerEnd != 0 { checkWriterEffect(mm, "step \(step)", &violations) }
  }

  /// Invariants 1 and 2, and no huge PMD across the new VMA boundary, once the writer returned.
  func checkWriterEffect(_ mm: AddressSpace, _ when: String, _ v: inout [String]) {
    let pages = stride(from: cut.start, to: cut.end, by: Int(Self.page))
    switch writer {
    case .munmap:
      for a in pages where mm.pageTable.pte(at: a).mapsFrame {
        v.append("inv1: PTE at \(hex(a)) after munmap returned (\(when))")
      }
    case .mprotect:
      for a in pages where mm.pageTable.pte(at: a).isWritable {
        v.append("inv2: writable PTE at \(hex(a)) after mprotect(PROT_READ) returned (\(when))")
      }
    case .dontneed:
      return
    }
    if isHuge(mm) { v.append("thp: a huge PMD maps \(hex(Self.hugeRange)) across a VMA boundary after \(writer) returned (\(when))") }
  }

  /// R1's resident pages as Linux leaves them, by order (`HugeRig.faultFirst`).
  func expectedResident(faultFirst: Bool) -> Int {
    let mapped = writer == .munmap ? TransparentHugePage.pages / 2 : TransparentHugePage.pages
    let dropped = writer == .dontneed ? 1 : 0
    if config.variant == "zero-write" { return mapped - dropped }
    return faultFirst ? mapped - dropped : (writer == .dontneed ? mapped : 1)
  }

  func finish(allFinished: Bool, violations: inout [String]) -> Observation {
    var o = observe(&violations)
    if allFinished, let mm {
      machine.drainDeferredFrees()
      checkHugeFramesLive(mm, "end", &violations)
      checkWriterEffect(mm, "end", &violations)
      checkResultOrdering(before: "ok", after: "ok", &violations)
      if !store, let v = loaded.value, v != 0 { violations.append("inv7: the load read \(hex(UInt64(v))), expected 0") }
      _ = checkValues(mm, "R1", expected: store ? Self.value : 0, &violations)
      checkMapcounts([mm], &violations)
      let order = faultFirst
      let dropped = writer == .dontneed ? cut.start : nil
      if let dropped, order == true || config.variant == "zero-write", mm.pageTable.pte(at: dropped).mapsFrame {
        violations.append("inv1: PTE at \(hex(dropped)) after MADV_DONTNEED dropped it (the fault finished first)")
      }
      let end = writer == .munmap ? cut.start : range.end
      let resident = checkMincore(mm, range.start, end, &violations)
      let allowed = order.map { [expectedResident(faultFirst: $0)] } ?? Array(Set([true, false].map(expectedResident))).sorted()
      if !allowed.contains(resident) {
        violations.append("mincore: \(resident) pages of R1 resident, Linux leaves \(allowed.map(String.init).joined(separator: " or "))")
      }
      o.effects["pmd"] = describePMD(mm)
      o.effects["resident"] = "\(resident)"
    }
    bodies = []
    unmapAndTeardown(allFinished: allFinished, &violations)
    return o
  }
}
