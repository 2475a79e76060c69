import Glibc
import Synchronization
import Testing

@testable import FaultlineExplore

/// A toy scenario for the scheduler alone: bodies given by the test, no engine.
final class ToyRun: ScenarioRun {
  let bodies: [@Sendable () -> Void]
  init(_ bodies: [@Sendable () -> Void]) { self.bodies = bodies }
  func quiescent(step: Int, violations: inout [String]) {}
  func finish(allFinished: Bool, violations: inout [String]) -> Observation { Observation() }
}

func toyScenario(_ threads: [String], _ make: @escaping @Sendable (Scheduler) -> [@Sendable () -> Void]) -> Scenario {
  Scenario(
    name: "toy", summary: "toy", threads: threads, variants: ["-"], usesFputMode: false, needsWorkDir: false,
    make: { _, s in ToyRun(make(s)) })
}

func exhaustive(_ scenario: Scenario, options: Scheduler.Options = Scheduler.Options()) -> Explorer.Result {
  var e = Explorer(scenario: scenario, config: ScenarioConfig(design: .mmapLock, variant: "-"), mode: .exhaustive(limit: 1000))
  e.options = options
  return e.explore()
}

/// A pthread mutex the toy threads block on (a futex wait: the kernel reports them sleeping).
final class ToyLock: @unchecked Sendable {
  let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
  init() { pthread_mutex_init(m, nil) }
  deinit {
    pthread_mutex_destroy(m)
    m.deallocate()
  }
  func lock() { pthread_mutex_lock(m) }
  func unlock() { pthread_mutex_unlock(m) }
}

@Suite struct SchedulerTests {
  /// Two threads with `n` yield points each (plus the start, where every thread waits for its
  /// first grant) have n+1 segments each: C(2(n+1), n+1) interleavings, all distinct.
  @Test(arguments: [(0, 2), (1, 6), (2, 20)])
  func twoThreadsWithNYieldPointsEachGiveTheBinomialNumberOfSchedules(n: Int, expected: Int) {
    let scenario = toyScenario(["A", "B"]) { s in
      let body: @Sendable () -> Void = { for i in 0..<n { s.yield("y\(i)") } }
      return [body, body]
    }
    let r = exhaustive(scenario)
    #expect(r.runs.count == expected)
    #expect(r.distinctSchedules == expected)
    #expect(r.divergences == 0)
    #expect(r.violating.isEmpty)
    // Every schedule runs each thread n+1 times, and the logs differ.
    for run in r.runs {
      #expect(run.schedule.filter { $0 == "A" }.count == n + 1)
      #expect(run.schedule.filter { $0 == "B" }.count == n + 1)
    }
    #expect(Set(r.runs.map { $0.log.joined(separator: " ") }).count == expected)
  }

  /// A holds a real lock across two yield points; B takes it once, with one yield point while
  /// holding it. Without the lock this is C(5,2) = 10 schedules; with it B cannot run while A
  /// holds the lock (and the reverse), which leaves 5: B blocks in two of them and is then no
  /// choice until A unlocks.
  @Test func threadsBlockedOnARealLockAreNoChoiceUntilItIsReleased() {
    let scenario = toyScenario(["A", "B"]) { s in
      let lock = ToyLock()
      return [
        {
          lock.lock()
          s.yield("a")
          s.yield("b")
          lock.unlock()
        },
        {
          lock.lock()
          s.yield("c")
          lock.unlock()
        },
      ]
    }
    let r = exhaustive(scenario)
    let schedules = Set(r.runs.map(\.scheduleString))
    #expect(
      schedules == ["B,B,A,A,A", "B,A,B,A,A", "A,B,A,A,B", "A,A,B,A,B", "A,A,A,B,B"],
      "\(r.runs.map { "\($0.scheduleString): \($0.log)" })")
    #expect(r.violating.isEmpty)
    let blocked = r.runs.first { $0.scheduleString == "A,B,A,A,B" }
    #expect(blocked?.log.contains("B:blocked") == true)
    // B blocked at step 2, so at step 3 only A was a choice.
    #expect(blocked?.blocked[2] == ["B"])
  }

  /// A thread that sleeps with nothing to wake it and no other thread parked: a deadlock,
  /// reported as an error within the bound, never a hang.
  @Test func aScheduleWhereNoThreadCanRunEndsWithADeadlockError() {
    let scenario = toyScenario(["A", "B"]) { _ in
      [
        {},
        {
          let deadline = monotonicNow() + 1_500_000_000
          while monotonicNow() < deadline { usleep(1000) }
        },
      ]
    }
    var options = Scheduler.Options()
    options.deadlockTimeout = 200_000_000
    var e = Explorer(
      scenario: scenario, config: ScenarioConfig(design: .mmapLock, variant: "-"), mode: .replay(["A", "B"]))
    e.options = options
    let started = monotonicNow()
    let r = e.explore()
    #expect(r.runs.count == 1)
    #expect(r.runs.first?.error?.hasPrefix("deadlock") == true, "\(String(describing: r.runs.first?.error))")
    #expect(monotonicNow() - started < 10_000_000_000)
  }

  @Test func aReplayedChoiceThatIsNotParkedIsAnError() {
    let scenario = toyScenario(["A", "B"]) { _ in [{}, {}] }
    let r = Explorer(
      scenario: scenario, config: ScenarioConfig(design: .mmapLock, variant: "-"), mode: .replay(["A", "A"])
    ).explore()
    #expect(r.runs.first?.error?.contains("no feasible choice at step 2") == true)
  }

  @Test func randomSamplingIsReproducibleFromTheSeed() {
    let scenario = toyScenario(["A", "B"]) { s in
      let body: @Sendable () -> Void = { s.yield("x"); s.yield("y") }
      return [body, body]
    }
    func sample(_ seed: UInt64) -> [String] {
      Explorer(
        scenario: scenario, config: ScenarioConfig(design: .mmapLock, variant: "-"),
        mode: .random(budget: 8, seed: seed)
      ).explore().runs.map(\.scheduleString)
    }
    #expect(sample(7) == sample(7))
    #expect(sample(7).count == 8)
  }

  @Test func parseScheduleAcceptsSpaces() {
    #expect(parseSchedule("F, W ,F,,W") == ["F", "W", "F", "W"])
  }
}
