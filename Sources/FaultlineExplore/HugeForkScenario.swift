import Faultline

extension Scenario {
  /// A huge fault vs fork, then writes in both (invariants 3, 6, 7).
  public static let hugeFaultFork = Scenario(
    name: "huge-fault-fork",
    summary: "parent fault in a MADV_HUGEPAGE 2 MiB range (huge page, huge zero page) vs fork, then writes in both",
    threads: ["F", "W"], variants: hugeVariants, usesFputMode: false, needsWorkDir: false,
    make: { config, s in try HugeForkRun(config, s) })
}

/// One run of `huge-fault-fork` (`HugeRig`'s window and variants): F faults at R1's page 1 in
/// the parent, W forks. Linux shares a huge PMD with the child write-protected in both
/// (`copy_huge_pmd`); a write then splits it on that side and copies 4 KiB (`do_huge_pmd_wp_page`),
/// or reuses it once it is no longer shared; a write to a shared huge zero page maps a new huge
/// page (`do_huge_zero_wp_pmd`).
///
/// Checks: the parent reads its store (or 0); the child reads 0 or the store, the store when
/// it finished before fork started, 0 when it started after fork returned; every other byte of
/// R1 is 0 on both sides; parent and child never map one frame with a writable entry (6); the
/// child's R1 is resident whole when the fault came first, not at all when fork came first
/// (`zero-write`: whole); then a parent store and a child store (one at page 1, one at page 5)
/// stay private to each side, and frames, mapcounts and refcounts stay exact through it (3).
/// Sabotage: the child's value is read from the parent (as if fork had shared the page).
final class HugeForkRun: HugeRig, ScenarioRun {
  struct State: @unchecked Sendable {
    var child: AddressSpace?
  }
  var bodies: [@Sendable () -> Void] = []
  let state = Shared(State())

  override init(_ config: ScenarioConfig, _ s: Scheduler) throws {
    try super.init(config, s)
    let (mm, state) = (mm!, state)
    let fork: @Sendable () throws(Errno) -> Void = { () throws(Errno) in
      let child = try mm.fork()
      state.with { $0.child = child }
    }
    bodies = [accessBody(), Self.writerBody(s, times, "fork", fork)]
    arm()
  }

  func quiescent(step: Int, violations: inout [String]) {
    guard let mm else { return }
    checkHugeFramesLive(mm, "step \(step)", &violations)
  }

  /// Invariant 6 over the window: no frame mapped by both with a writable entry on either side.
  func checkNotSharedWritable(_ parent: AddressSpace, _ child: AddressSpace, _ when: String, _ v: inout [String]) {
    for a in stride(from: Self.base, to: Self.base + 2 * Self.huge, by: Int(Self.page)) {
      let p = parent.pageTable.pte(at: a)
      let c = child.pageTable.pte(at: a)
      if p.isPresent && c.isPresent && !p.isSpecial && p.pfn == c.pfn && (p.isWritable || c.isWritable) {
        v.append("inv6: parent and child map \(p.pfn) at \(hex(a)) with a writable entry (parent \(describe(p)), child \(describe(c)), \(when))")
        return
      }
    }
  }

  func finish(allFinished: Bool, violations: inout [String]) -> Observation {
    var o = observe(&violations)
    let child = state.value.child
    if allFinished, let mm, let child, let cpu {
      machine.drainDeferredFrees()
      checkHugeFramesLive(mm, "end", &violations)
      checkHugeFramesLive(child, "end, child", &violations)
      checkNotSharedWritable(mm, child, "end", &violations)
      checkMapcounts([mm, child], &violations)
      let stored = store ? Self.value : 0
      _ = checkValues(mm, "the parent", expected: stored, &violations)
      let order = faultFirst
      let childExpected: UInt8 = order == false ? 0 : stored
      let childValue =
        config.sabotage
        ? checkValues(mm, "the child", expected: childExpected, or: order == nil ? 0 : nil, rule: "inv6", &violations)
        : checkValues(child, "the child", expected: childExpected, or: order == nil ? 0 : nil, rule: "inv6", &violations)
      o.effects["child_sees"] = hex(UInt64(childValue))
      o.effects["pmd"] = describePMD(mm)
      o.effects["child_pmd"] = describePMD(child)
      let all = TransparentHugePage.pages
      if checkMincore(mm, range.start, range.end, &violations) != all {
        violations.append("mincore: the parent's R1 is not all resident after its fault")
      }
      let childResident = checkMincore(child, range.start, range.end, &violations)
      let allowed = config.variant == "zero-write" ? [all] : order.map { [$0 ? all : 0] } ?? [all, 0]
      if !allowed.contains(childResident) {
        violations.append("mincore: \(childResident) pages of the child's R1 resident, Linux leaves \(allowed)")
      }
      o.effects["child_resident"] = "\(childResident)"
      writeBothSides(mm, cpu, child, childValue, &violations)
      machine.drainDeferredFrees()
      checkHugeFramesLive(mm, "after the writes", &violations)
      checkHugeFramesLive(child, "after the writes, child", &violations)
      checkNotSharedWritable(mm, child, "after the writes", &violations)
      checkMapcounts([mm, child], &violations)
    } else if allFinished && child == nil {
      violations.append("error: fork returned no child")
    }
    bodies = []
    if allFinished { child?.destroy() }
    state.with { $0.child = nil }
    unmapAndTeardown(allFinished: allFinished, &violations)
    return o
  }

  /// After fork, writes are private to each side, on the faulted page and on another.
  func writeBothSides(_ mm: AddressSpace, _ cpu: CPU, _ child: AddressSpace, _ childValue: UInt8, _ v: inout [String]) {
    let address = target + Self.byteOffset
    let other = Self.hugeRange + 5 * Self.page
    do {
      let childCPU = try CPU(mm: child)
      try cpu.storeByte(address, 0xCC)
      if try childCPU.loadByte(address) != childValue { v.append("inv6: a parent write after fork shows in the child") }
      try childCPU.storeByte(address, 0xDD)
      try childCPU.storeByte(other, 0xEE)
      if try cpu.loadByte(address) != 0xCC { v.append("inv6: a child write after fork shows in the parent") }
      if try cpu.loadByte(other) != 0 { v.append("inv6: a child write to a page the parent never wrote shows in the parent") }
      if try childCPU.loadByte(address) != 0xDD || childCPU.loadByte(other) != 0xEE {
        v.append("inv7: the child does not read back its own writes")
      }
    } catch {
      v.append("inv7: access after the race failed: \(error)")
    }
  }
}
