import Faultline
import FaultlineTestSupport
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Helpers of the fault-path tests that stop a fault at a hook point (SpeculativeAbortTests,
// PerVMALockTests): counter deltas, bounded waits, and the state a hook shares with its test.

/// The counters a fault can move. Tests compare the non-zero deltas of these with an exact
/// expected dictionary, so an extra abort, a missing one or a second fault all show up.
let abortTestCounters: [VMStatItem] =
  [.pgfault, .speculativePgfault] + SPFAbort.allCases.map { VMStatItem(abort: $0) }
  + [.vmaLockSuccess, .vmaLockAbort, .vmaLockRetry, .vmaLockMiss, .segvMaperr, .segvAccerr]

/// Runs `body` and returns how much each of `abortTestCounters` moved (non-zero deltas only).
func counterDelta(_ r: Rig, _ body: () throws -> Void) rethrows -> [VMStatItem: UInt64] {
  let before = abortTestCounters.map { r.machine.vmstat[$0] }
  try body()
  var d: [VMStatItem: UInt64] = [:]
  for (i, item) in abortTestCounters.enumerated() {
    let n = r.machine.vmstat[item] &- before[i]
    if n != 0 { d[item] = n }
  }
  return d
}

/// Spins (yielding) until `cond` holds or `seconds` pass; `false` on time-out. Every wait in
/// these tests is bounded by this.
@discardableResult
func boundedWait(seconds: Int = 10, _ cond: () -> Bool) -> Bool {
  let deadline = ContinuousClock.now + .seconds(seconds)
  while !cond() {
    if ContinuousClock.now > deadline { return false }
    sched_yield()
  }
  return true
}

/// State a fault hook shares with the test (hooks are `@Sendable`).
final class HookState: Sendable {
  /// Cleared by the first call that acts, so the hook acts once (the `mmap_lock` fallback
  /// passes through `.beforePTEMapLock` again).
  let armed = Atomic<Bool>(true)
  /// Calls that acted.
  let acted = Atomic<Int>(0)
  /// System calls made from the hook that failed (should stay 0).
  let failures = Atomic<Int>(0)
  /// `.aborted` calls seen, and the reason of the last one (`SPFAbort.rawValue`, or -1 for nil).
  let aborts = Atomic<Int>(0)
  let lastAbort = Atomic<Int>(-2)
  /// A saved word (the PMD's value).
  let saved = Atomic<UInt64>(0)

  /// `true` exactly once.
  func fire() -> Bool {
    if armed.exchange(false, ordering: .acquiringAndReleasing) {
      acted.wrappingAdd(1, ordering: .relaxed)
      return true
    }
    return false
  }

  func noteAbort(_ point: FaultHookPoint) {
    if case .aborted(let reason) = point {
      aborts.wrappingAdd(1, ordering: .relaxed)
      lastAbort.store(reason.map { $0.rawValue } ?? -1, ordering: .relaxed)
    }
  }
}
