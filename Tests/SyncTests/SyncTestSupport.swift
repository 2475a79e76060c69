import Faultline
import Glibc
import Synchronization
import Testing

/// Every Sync suite nests under this one so that the spinning, thread-heavy tests run one at a
/// time (2 vCPUs) rather than against each other.
@Suite(.serialized) struct SyncSuite {}

/// Iteration counts. Kept moderate so that each test stays well under ~2 s under ThreadSanitizer
/// (about 10x slower); none of the assertions depends on how fast anything runs.
enum Scale {
  /// Pointer swaps by the RCU stress writer.
  static let rcuSwaps = 400
  /// Operations per thread in the lock stress tests.
  static let lockOps = 4_000
  /// Writes by the seqcount writer.
  static let seqWrites = 10_000
  /// Rounds of the handshake tests.
  static let rounds = 8
}

/// Watchdog for the handshakes below: a bug should fail a test, not hang the run. It is not a
/// timing assertion; correct code never comes anywhere near it.
let watchdog: Duration = .seconds(15)

/// A one-shot flag for handshakes between threads (sequentially consistent).
final class Flag: Sendable {
  private let value = Atomic<Bool>(false)
  init() {}
  func set() { value.store(true, ordering: .sequentiallyConsistent) }
  func clear() { value.store(false, ordering: .sequentiallyConsistent) }
  var isSet: Bool { value.load(ordering: .sequentiallyConsistent) }
  /// Sets the flag to `v` and returns the old value.
  func exchange(_ v: Bool) -> Bool { value.exchange(v, ordering: .sequentiallyConsistent) }
}

/// A shared atomic integer.
final class Count: Sendable {
  let value: Atomic<Int>
  init(_ v: Int = 0) { value = Atomic(v) }
  @discardableResult
  func add(_ n: Int = 1) -> Int { value.wrappingAdd(n, ordering: .sequentiallyConsistent).newValue }
  func store(_ v: Int) { value.store(v, ordering: .sequentiallyConsistent) }
  var load: Int { value.load(ordering: .sequentiallyConsistent) }
}

/// Hands out increasing stamps, to assert the order in which threads passed points.
final class Clock: Sendable {
  private let counter = Atomic<Int>(0)
  init() {}
  func stamp() -> Int { counter.wrappingAdd(1, ordering: .sequentiallyConsistent).newValue }
}

/// Collects failures seen on worker pthreads (which have no Swift Testing context); the test
/// thread reports them with `expectClean()` after joining.
final class Recorder: @unchecked Sendable {
  private let lock = PThreadMutex()
  private var failures: [String] = []

  init() {}

  func fail(_ message: String) { lock.withLock { failures.append(message) } }

  func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fail(message()) }
  }

  /// Yields until `condition` holds; records a failure and returns `false` if the watchdog fires.
  @discardableResult
  func waitUntil(_ what: String, _ condition: () -> Bool) -> Bool {
    let deadline = ContinuousClock.now + watchdog
    var n = 0
    while !condition() {
      n &+= 1
      if n & 255 == 0, ContinuousClock.now > deadline {
        fail("watchdog: gave up waiting for \(what)")
        return false
      }
      sched_yield()
    }
    return true
  }

  var all: [String] { lock.withLock { failures } }

  func expectClean(sourceLocation: SourceLocation = #_sourceLocation) {
    let f = all
    #expect(f.isEmpty, "\(f.count) failure(s): \(f.prefix(10))", sourceLocation: sourceLocation)
  }
}

/// Gives other threads a chance to run before the caller goes on. Its length is not part of any
/// assertion: it only makes it likely that a peer is already blocked where the test wants it.
func letOthersRun(_ rounds: Int = 100) {
  for _ in 0..<rounds { sched_yield() }
}

/// A plain (non-atomic) counter guarded by some lock under test: TSan flags any unguarded access.
final class Guarded: @unchecked Sendable {
  var value = 0
  init() {}
}
