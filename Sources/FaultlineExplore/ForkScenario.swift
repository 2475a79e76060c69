import Faultline

extension Scenario {
  /// A parent write fault vs fork (invariants 3, 6, 7).
  public static let faultFork = Scenario(
    name: "fault-fork",
    summary: "parent store to page 1 (absent, or write-protected by an earlier fork) vs fork",
    threads: ["F", "W"], variants: ["absent", "wp"], usesFputMode: false, needsWorkDir: false,
    make: { config, s in try ForkRun(config, s) })
}

/// One run of `fault-fork`: a 4-page private anonymous mapping, page 0 written. Variant
/// `absent`: page 1 was never touched (old value 0), and the parent's store takes a fresh
/// anonymous page. Variant `wp`: page 1 holds 0xAA in a PTE write-protected by an earlier fork
/// whose child is gone (the store reuses the page in `do_wp_page`, the 6.4 per-VMA-lock bug's
/// path). F stores 0xBB through `storeByte` (fault and retry, as the CPU would); W forks.
///
/// Checks: the child sees the old value or 0xBB, never anything else, and 0xBB when the store
/// finished before fork started, the old value when it started after fork returned (7); the
/// parent sees 0xBB; parent and child never map one frame with a writable PTE, and after fork a
/// write in either is invisible in the other (6); frames (3). Sabotage: the child's value is
/// read from the parent (as if fork had shared the page).
final class ForkRun: ScenarioRig, ScenarioRun {
  struct State: @unchecked Sendable {
    var child: AddressSpace?
    var storeError: String?
  }
  var bodies: [@Sendable () -> Void] = []
  let state = Shared(State())
  let old: UInt8

  init(_ config: ScenarioConfig, _ s: Scheduler) throws {
    old = config.variant == "wp" ? 0xAA : 0
    try super.init(config, s)
    let (mm, cpu, page) = (self.mm!, self.cpu!, Self.page)
    let base = try mapAnonymousWindow()
    if config.variant == "wp" {
      try cpu.storeByte(target, 0xAA)
      let earlier = try mm.fork()
      earlier.destroy()
      machine.drainDeferredFrees()
    }
    let (times, state, sched) = (times, state, s)
    let fault: @Sendable () -> Void = {
      let cpu: CPU
      do { cpu = try CPU(mm: mm) } catch {
        times.with { $0.errors.append("CPU(mm:): \(error)") }
        return
      }
      let start = sched.stamp()
      times.with { $0.faultStart = start }
      var outcome = FaultOutcome.ok
      do throws(Signal) { try cpu.storeByte(base + page, 0xBB) } catch { outcome = .signal(error) }
      let end = sched.stamp()
      times.with {
        $0.faultEnd = end
        $0.outcome = outcome
      }
    }
    let writer: @Sendable () -> Void = {
      let start = sched.stamp()
      times.with { $0.writerStart = start }
      do throws(Errno) {
        let child = try mm.fork()
        state.with { $0.child = child }
      } catch {
        times.with { $0.errors.append("fork: \(error)") }
      }
      let end = sched.stamp()
      times.with { $0.writerEnd = end }
    }
    bodies = [fault, writer]
    arm()
  }

  func quiescent(step: Int, violations: inout [String]) {
    checkMappedFramesLive(step, &violations)
  }

  func finish(allFinished: Bool, violations: inout [String]) -> Observation {
    var o = observe(&violations)
    let child = state.value.child
    if allFinished, let mm, let child, let cpu {
      checkMappedFramesLive(-1, &violations)
      let p = mm.pageTable.pte(at: target)
      let c = child.pageTable.pte(at: target)
      o.effects["child_pte"] = describe(c)
      if p.isPresent && c.isPresent && !p.isSpecial && p.pfn == c.pfn && (p.isWritable || c.isWritable) {
        violations.append("inv6: parent and child map \(p.pfn) with a writable PTE (parent \(describe(p)), child \(describe(c)))")
      }
      do {
        let childCPU = try CPU(mm: child)
        let parentValue = try cpu.loadByte(target)
        let childValue = config.sabotage ? parentValue : try childCPU.loadByte(target)
        o.effects["child_sees"] = hex(UInt64(childValue))
        let t = times.value
        if parentValue != 0xBB { violations.append("inv7: the parent reads \(hex(UInt64(parentValue))) after its store of 0xbb") }
        if childValue != old && childValue != 0xBB {
          violations.append("inv6: the child reads \(hex(UInt64(childValue))), neither the old \(hex(UInt64(old))) nor 0xbb")
        } else if t.faultEnd < t.writerStart && childValue != 0xBB {
          violations.append("inv6: the store finished before fork started, but the child reads the old value")
        } else if t.faultStart > t.writerEnd && childValue != old {
          violations.append("inv6: the store started after fork returned, but the child reads 0xbb")
        }
        // After fork, writes are private to each side.
        try cpu.storeByte(target, 0xCC)
        if try childCPU.loadByte(target) != childValue { violations.append("inv6: a parent write after fork shows in the child") }
        try childCPU.storeByte(target, 0xDD)
        if try cpu.loadByte(target) != 0xCC { violations.append("inv6: a child write after fork shows in the parent") }
      } catch {
        violations.append("inv7: access after the race failed: \(error)")
      }
    } else if allFinished && child == nil {
      violations.append("error: fork returned no child")
    }
    bodies = []
    if allFinished { child?.destroy() }
    state.with { $0.child = nil }
    teardown(allFinished: allFinished, &violations)
    return o
  }
}
