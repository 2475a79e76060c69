import Faultline
import Synchronization

/// The machinery every scenario run shares: a fresh `Machine` and `AddressSpace`, a set-up
/// thread handle, hooks that turn every fault and writer hook point into a yield point, the
/// counter baseline, the fault's and the writer's timestamps, and teardown with the frame-leak
/// check (DESIGN.md §4, invariant 3).
class ScenarioRig {
  /// The fault's and the writer's timestamps (`Scheduler.stamp()`): 0 until set.
  struct Times: Sendable {
    var faultStart = 0, faultEnd = 0
    var writerStart = 0, writerEnd = 0
    var outcome: FaultOutcome?
    var errors: [String] = []
  }

  let config: ScenarioConfig
  let scheduler: Scheduler
  let machine: Machine
  var mm: AddressSpace?
  var cpu: CPU?
  let times = Shared(Times())
  var baseline: [UInt64] = []
  /// The faulting address.
  var target: UInt64 = 0
  /// The range the writer acts on.
  var range: (start: UInt64, end: UInt64) = (0, 0)

  /// A fixed place below `mmap_base` (2 MiB aligned), as the fault tests use.
  static let base: UInt64 = 0x4000_0000
  static let page: UInt64 = Page.size

  init(
    _ config: ScenarioConfig, _ scheduler: Scheduler, memoryBytes: Int = 16 << 20,
    tune: (inout AddressSpaceConfig) -> Void = { _ in }
  ) throws {
    self.config = config
    self.scheduler = scheduler
    machine = try Machine(memoryBytes: memoryBytes, maxThreads: 16, profile: config.profile)
    var c = AddressSpaceConfig(profile: config.profile)
    c.design = config.design
    c.fputMode = config.fputMode
    tune(&c)
    let mm = try AddressSpace(machine: machine, config: c)
    self.mm = mm
    cpu = try CPU(mm: mm)
  }

  /// Maps the window the anonymous scenarios start from: four private read-write pages at
  /// `base`, the first written (so the VMA has its anon_vma before the fault), `target` the
  /// second page and `range` all four. Returns the window's start.
  func mapAnonymousWindow() throws -> UInt64 {
    let page = Self.page
    let base = try cpu!.mmap(Self.base, 4 * page, prot: Prot.read | Prot.write,
                             flags: MapFlags.private | MapFlags.anonymous | MapFlags.fixed)
    try cpu!.storeByte(base, 0x11)
    target = base + page
    range = (base, base + 4 * page)
    return base
  }

  /// Makes every fault hook point at `target`'s page and every writer hook point a yield point,
  /// and takes the counter baseline. Call it last in set-up.
  func arm() {
    let s = scheduler
    let page = Page.roundDown(target)
    mm!.faultHook = { point, addr in
      if Page.roundDown(addr) == page { s.yield(label(point)) }
    }
    mm!.writerHook = { point, _ in s.yield(label(point)) }
    baseline = Observation.trackedCounters.map { machine.vmstat[$0] }
  }

  /// The fault thread's body: a fresh `CPU` handle, one `faultIn`.
  func faultBody(write: Bool) -> @Sendable () -> Void {
    let (mm, times, s, target) = (mm!, times, scheduler, target)
    return {
      let cpu: CPU
      do {
        cpu = try CPU(mm: mm)
      } catch {
        times.with { $0.errors.append("CPU(mm:): \(error)") }
        return
      }
      let start = s.stamp()
      times.with { $0.faultStart = start }
      let o = cpu.faultIn(target, write: write)
      let end = s.stamp()
      times.with {
        $0.faultEnd = end
        $0.outcome = o
      }
    }
  }

  /// Stamps the writer's start, runs `call`, stamps its return.
  static func writerBody(
    _ s: Scheduler, _ times: Shared<Times>, _ name: String, _ call: @escaping @Sendable () throws(Errno) -> Void
  ) -> @Sendable () -> Void {
    return {
      let start = s.stamp()
      times.with { $0.writerStart = start }
      do throws(Errno) {
        try call()
      } catch {
        times.with { $0.errors.append("\(name): \(error)") }
      }
      let end = s.stamp()
      times.with { $0.writerEnd = end }
    }
  }

  /// Non-zero counter deltas since `arm()`.
  func counterDeltas() -> [String: UInt64] {
    var d: [String: UInt64] = [:]
    for (i, item) in Observation.trackedCounters.enumerated() {
      let n = machine.vmstat[item] &- baseline[i]
      if n != 0 { d[item.name] = n }
    }
    return d
  }

  /// Invariant 3 at a quiescent point: every frame a PTE of the range maps is in use.
  func checkMappedFramesLive(_ step: Int, _ violations: inout [String]) {
    guard let mm else { return }
    var a = range.start
    while a < range.end {
      let pte = mm.pageTable.pte(at: a)
      if pte.isPresent && !pte.isSpecial {
        let meta = machine.memory.meta(pte.pfn)
        if meta.flags.contains(.free) || meta.refcount == 0 || meta.mapcount <= 0 {
          violations.append(
            "inv3: \(hex(a)) maps \(pte.pfn) with refcount \(meta.refcount) mapcount \(meta.mapcount)"
              + " flags \(meta.flags.rawValue) (step \(step))")
        }
      }
      a += Self.page
    }
  }

  /// Pages in the range with a PTE that maps a frame (`pred` narrows it), as addresses.
  func mappedPages(where pred: (PTE) -> Bool = { $0.mapsFrame }) -> [UInt64] {
    guard let mm else { return [] }
    return stride(from: range.start, to: range.end, by: Int(Self.page)).filter { pred(mm.pageTable.pte(at: $0)) }
  }

  /// The fault's and the writer's shared checks and fields: errors, the result, the final PTE,
  /// whether the writer returned first, the counters.
  func observe(_ violations: inout [String]) -> Observation {
    let t = times.value
    for e in t.errors { violations.append("error: \(e)") }
    var o = Observation()
    o.result = describe(t.outcome)
    o.pte = mm.map { describe($0.pageTable.pte(at: target)) } ?? "-"
    o.writerFirst = t.writerEnd != 0 && (t.faultEnd == 0 || t.writerEnd < t.faultEnd)
    o.counters = counterDeltas()
    return o
  }

  /// Invariant 7's ordering rule, shared by the scenarios: a fault that finished before the
  /// writer started must get `before`; one that started after the writer returned must get
  /// `after`; one that overlapped may get either.
  func checkResultOrdering(before: String, after: String, _ violations: inout [String]) {
    let t = times.value
    let r = describe(t.outcome)
    if t.faultEnd != 0 && t.writerStart != 0 && t.faultEnd < t.writerStart && r != before {
      violations.append("inv7: the fault finished before the writer started but got \(r), expected \(before)")
    } else if t.writerEnd != 0 && t.faultStart > t.writerEnd && r != after {
      violations.append("inv7: the fault started after the writer returned but got \(r), expected \(after)")
    } else if r != before && r != after {
      violations.append("inv7: fault result \(r), expected \(before) or \(after)")
    }
  }

  /// Tears everything down and checks that every frame is free (invariant 3). `unmount` runs
  /// after the address space is gone (file scenarios umount there). Skipped after an error that
  /// left threads running: their state is leaked, not freed under them.
  func teardown(allFinished: Bool, _ violations: inout [String], unmount: (inout [String]) -> Void = { _ in }) {
    guard allFinished else {
      Self.leaked.withLock { $0.append(machine) }
      return
    }
    mm?.faultHook = nil
    mm?.writerHook = nil
    cpu = nil
    mm?.destroy()
    mm = nil
    unmount(&violations)
    machine.drainDeferredFrees()
    let inUse = machine.memory.framesInUse
    if inUse != 0 { violations.append("inv3: \(inUse) frames still in use after teardown") }
  }

  /// Machines whose threads never finished: kept alive, never torn down under them.
  static let leaked = Locked<[Machine]>([])
}
