import CFaultlineShims
import Glibc
import Synchronization

/// Runs `body(i)` on `count` raw pthreads and joins them. Engine threads are pthreads, not
/// Swift concurrency tasks: each registers an RCU reader and owns a frame cache.
public func runOnThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
  final class Box: @unchecked Sendable {
    let body: @Sendable () -> Void
    init(_ b: @escaping @Sendable () -> Void) { body = b }
  }
  var threads: [pthread_t] = []
  for i in 0..<count {
    let box = Unmanaged.passRetained(Box { body(i) }).toOpaque()
    var t = pthread_t()
    let rc = pthread_create(&t, nil, { p in
      Unmanaged<Box>.fromOpaque(p!).takeRetainedValue().body()
      return nil
    }, box)
    precondition(rc == 0, "pthread_create failed: \(rc)")
    threads.append(t)
  }
  for t in threads { pthread_join(t, nil) }
}

/// Runs `worker(i, stop)` on `threads` pthreads for `seconds`: workers wait for a common start,
/// then loop until `stop()` is true, and return how many operations they did; a worker that
/// throws fails the run. Returns the operations summed over workers and the seconds from the
/// start to the last worker's return: a worker finishes the operation it is in when the stop
/// comes, and a short run's rate must count that time too. Worker `i` is pinned to
/// CPU `i % onlineCPUs()`, so a run does not depend on where the scheduler happens to put its
/// threads; with more workers than CPUs some share one (the bench says so).
public func timedRun(
  threads: Int, seconds: Double, _ worker: @escaping @Sendable (Int, () -> Bool) throws -> Int
) throws -> TimedCount {
  final class Shared: @unchecked Sendable {
    let go = Atomic<Bool>(false)
    let start = Atomic<UInt64>(0)
    let end = Atomic<UInt64>(0)
    let stop = Atomic<Bool>(false)
    let ops = Atomic<Int>(0)
    let failures = Atomic<Int>(0)
  }
  let s = Shared()
  runOnThreads(threads + 1) { t in
    if t == threads {
      let t0 = nowNanoseconds()
      s.start.store(t0, ordering: .relaxed)
      s.go.store(true, ordering: .releasing)
      while Double(nowNanoseconds() - t0) < seconds * 1e9 { usleep(2000) }
      s.stop.store(true, ordering: .releasing)
      return
    }
    _ = fl_pin_self_to_cpu(Int32(t % onlineCPUs()))
    while !s.go.load(ordering: .acquiring) {}
    do {
      let n = try worker(t) { s.stop.load(ordering: .relaxed) }
      s.ops.wrappingAdd(n, ordering: .relaxed)
    } catch {
      s.failures.wrappingAdd(1, ordering: .relaxed)
    }
    s.end.max(nowNanoseconds(), ordering: .relaxed)
  }
  if s.failures.load(ordering: .relaxed) > 0 { throw WorkloadError.threadFailed }
  let elapsed = Double(s.end.load(ordering: .relaxed) &- s.start.load(ordering: .relaxed)) / 1e9
  return TimedCount(ops: s.ops.load(ordering: .relaxed), seconds: elapsed > 0 ? elapsed : seconds)
}

/// What `timedRun` counted and over how long.
public struct TimedCount: Sendable {
  /// Operations summed over workers.
  public var ops: Int
  /// Seconds from the common start to the last worker's return.
  public var seconds: Double
  /// Operations per second.
  public var rate: Double { Double(ops) / seconds }
}

/// A workload thread failed (a system call or an access that should have worked).
public enum WorkloadError: Error { case threadFailed }

/// CPUs this process may run on.
public func onlineCPUs() -> Int { max(Int(fl_online_cpus()), 1) }

/// Runs `body` on a fresh pthread pinned to CPU 0 and returns its result (or rethrows its error):
/// a single-threaded measurement placed like worker 0 of `timedRun`.
public func onPinnedThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) throws -> T {
  let slot = ResultSlot<T>()
  runOnThreads(1) { _ in
    _ = fl_pin_self_to_cpu(0)
    slot.result = Result { try body() }
  }
  return try slot.result!.get()
}

/// Carries a result from the thread that makes it to the one that joins it.
private final class ResultSlot<T>: @unchecked Sendable { var result: Result<T, any Error>? }
