import Faultline
import Glibc

/// Runs a scenario under many schedules and collects what happened.
///
/// - **Exhaustive** (the default): a depth-first search over the choice sequence. Each run
///   re-creates the scenario from scratch (a new `Machine` and `AddressSpace`), follows a prefix
///   of choices, then always picks the lowest-numbered parked thread; afterwards the deepest
///   step with an untried parked thread becomes the next prefix. Blocked threads are never
///   choices, so schedules that cannot happen are pruned as they are met.
/// - **Random** (`budget`): `budget` runs choosing uniformly among the parked threads, seeded.
/// - **Replay** (`schedule`): one run following the given choices (then the lowest parked
///   thread, if the schedule is short); a choice that is not parked at its step is an error.
public struct Explorer {
  public enum Mode: Sendable {
    case exhaustive(limit: Int)
    case random(budget: Int, seed: UInt64)
    case replay([String])
  }

  /// One run: its schedule and what it observed.
  public struct RunResult: Sendable {
    public var schedule: [String]
    /// The yield points reached, in order ("F:afterLookup", "W:afterDetach", "F:end").
    public var log: [String]
    /// Per step, the threads that were blocked when the choice was made.
    public var blocked: [[String]]
    public var observation: Observation
    public var violations: [String]
    public var error: String?
    public var scheduleString: String { schedule.joined(separator: ",") }
  }

  /// Everything one (scenario, design, fput mode, variant) exploration found.
  public struct Result: Sendable {
    public var scenario: String
    public var design: FaultDesign
    public var fputMode: FputMode?
    public var variant: String
    public var runs: [RunResult] = []
    /// DFS only: runs whose replayed prefix was not feasible (the scenario was not
    /// deterministic there); they are still counted and checked.
    public var divergences = 0
    /// Whether a DFS ran out of `limit` before covering every schedule.
    public var truncated = false
    public var seconds = 0.0

    public var violating: [RunResult] { runs.filter { !$0.violations.isEmpty || $0.error != nil } }
    /// Distinct schedules run.
    public var distinctSchedules: Int { Set(runs.map(\.scheduleString)).count }
    /// Steps at which some thread was blocked, over all runs.
    public var blockedSteps: Int { runs.reduce(0) { $0 + $1.blocked.filter { !$0.isEmpty }.count } }
  }

  public var scenario: Scenario
  public var config: ScenarioConfig
  public var mode: Mode
  public var options = Scheduler.Options()

  public init(scenario: Scenario, config: ScenarioConfig, mode: Mode) {
    self.scenario = scenario
    self.config = config
    self.mode = mode
  }

  /// Runs the exploration. `progress` is called after every run.
  public func explore(progress: (RunResult) -> Void = { _ in }) -> Result {
    var result = Result(
      scenario: scenario.name, design: config.design, fputMode: scenario.usesFputMode ? config.fputMode : nil,
      variant: config.variant)
    let started = monotonicNow()
    var config = self.config
    var workDir: String?
    if scenario.needsWorkDir {
      guard let dir = makeWorkDir() else {
        var r = RunResult(schedule: [], log: [], blocked: [], observation: Observation(), violations: [], error: nil)
        r.error = "could not create a host work directory under /tmp"
        result.runs.append(r)
        return result
      }
      workDir = dir
      config.workDir = dir
    }
    defer { if let workDir { removeWorkDir(workDir) } }
    func done() -> Result {
      result.seconds = Double(monotonicNow() - started) / 1e9
      return result
    }
    let runOnce = { (choose: ([Int], Int) -> Int?) in self.runOnce(config, choose) }
    switch mode {
    case .replay(let names):
      let ids = names.map { n in scenario.threads.firstIndex(of: n) ?? -1 }
      if let bad = names.indices.first(where: { ids[$0] < 0 }) {
        var r = RunResult(schedule: names, log: [], blocked: [], observation: Observation(), violations: [], error: nil)
        r.error = "unknown thread \"\(names[bad])\" at step \(bad + 1); threads are \(scenario.threads)"
        result.runs.append(r)
        return done()
      }
      let run = runOnce { enabled, step in
        step < ids.count ? (enabled.contains(ids[step]) ? ids[step] : nil) : enabled.first
      }
      result.runs.append(run.result)
      progress(run.result)
    case .random(let budget, let seed):
      var rng = SplitMix64(seed: seed)
      for _ in 0..<max(budget, 0) {
        let run = runOnce { enabled, _ in enabled[Int(rng.next() % UInt64(enabled.count))] }
        result.runs.append(run.result)
        progress(run.result)
      }
    case .exhaustive(let limit):
      var prefix: [Int] = []
      while true {
        if result.runs.count >= limit {
          result.truncated = true
          break
        }
        var diverged = false
        let p = prefix
        let run = runOnce { enabled, step in
          if step < p.count {
            if enabled.contains(p[step]) { return p[step] }
            diverged = true
          }
          return enabled.first
        }
        if diverged { result.divergences += 1 }
        result.runs.append(run.result)
        progress(run.result)
        // Backtrack: the deepest step with a parked thread after the one chosen.
        guard let next = Self.nextPrefix(run.schedule, run.enabled) else { break }
        prefix = next
      }
    }
    return done()
  }

  /// The DFS successor of a run's choices, or `nil` when the tree is exhausted.
  static func nextPrefix(_ choices: [Int], _ enabled: [[Int]]) -> [Int]? {
    var i = choices.count - 1
    while i >= 0 {
      if let alt = enabled[i].first(where: { $0 > choices[i] }) { return Array(choices[0..<i]) + [alt] }
      i -= 1
    }
    return nil
  }

  /// Sets the scenario up from scratch and runs it once under `choose`.
  func runOnce(_ config: ScenarioConfig, _ choose: ([Int], Int) -> Int?) -> (result: RunResult, schedule: [Int], enabled: [[Int]]) {
    let scheduler = Scheduler(names: scenario.threads, options: options)
    var violations: [String] = []
    let instance: any ScenarioRun
    do {
      instance = try scenario.make(config, scheduler)
    } catch {
      let r = RunResult(
        schedule: [], log: [], blocked: [], observation: Observation(), violations: [],
        error: "set-up failed: \(error)")
      return (r, [], [])
    }
    let run = scheduler.run(instance.bodies, choose: choose) { step in
      instance.quiescent(step: step, violations: &violations)
    }
    let observation = instance.finish(allFinished: run.allFinished, violations: &violations)
    // The same violation seen at several quiescent points is reported once.
    var seen = Set<String>()
    violations = violations.filter { seen.insert($0).inserted }
    let names = scenario.threads
    let r = RunResult(
      schedule: run.schedule.map { names[$0] }, log: run.log,
      blocked: run.blocked.map { $0.map { names[$0] } }, observation: observation, violations: violations,
      error: run.error)
    return (r, run.schedule, run.enabled)
  }
}

/// A fresh host directory holding `data`: four pages of distinct bytes, written with plain Glibc
/// calls so that nothing of it is in any Faultline page cache.
func makeWorkDir() -> String? {
  var template = Array("/tmp/faultline-explore-XXXXXX".utf8CString)
  let dir: String? = template.withUnsafeMutableBufferPointer { p in
    guard let d = mkdtemp(p.baseAddress!) else { return nil }
    return String(cString: d)
  }
  guard let dir else { return nil }
  let bytes = (0..<4 * Page.byteCount).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
  let h = open(dir + "/data", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
  guard h >= 0 else { return nil }
  defer { close(h) }
  let n = bytes.withUnsafeBytes { pwrite(h, $0.baseAddress, $0.count, 0) }
  return n == bytes.count ? dir : nil
}

func removeWorkDir(_ dir: String) {
  unlink(dir + "/data")
  rmdir(dir)
}

/// Parses "F,W,W,F" (spaces allowed) into thread names.
public func parseSchedule(_ text: String) -> [String] {
  text.split(separator: ",").map { $0.trimmingCharacters(in: " ") }.filter { !$0.isEmpty }
}

extension Substring {
  fileprivate func trimmingCharacters(in set: Character) -> String {
    String(drop { $0 == set }.reversed().drop { $0 == set }.reversed())
  }
}
