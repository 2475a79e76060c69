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
/// throws fails the run. Returns the operations summed over workers.
public func timedRun(
  threads: Int, seconds: Double, _ worker: @escaping @Sendable (Int, () -> Bool) throws -> Int
) throws -> Int {
  final class Shared: @unchecked Sendable {
    let go = Atomic<Bool>(false)
    let stop = Atomic<Bool>(false)
    let ops = Atomic<Int>(0)
    let failures = Atomic<Int>(0)
  }
  let s = Shared()
  runOnThreads(threads + 1) { t in
    if t == threads {
      s.go.store(true, ordering: .releasing)
      let t0 = nowNanoseconds()
      while Double(nowNanoseconds() - t0) < seconds * 1e9 { usleep(2000) }
      s.stop.store(true, ordering: .releasing)
      return
    }
    while !s.go.load(ordering: .acquiring) {}
    do {
      let n = try worker(t) { s.stop.load(ordering: .relaxed) }
      s.ops.wrappingAdd(n, ordering: .relaxed)
    } catch {
      s.failures.wrappingAdd(1, ordering: .relaxed)
    }
  }
  if s.failures.load(ordering: .relaxed) > 0 { throw WorkloadError.threadFailed }
  return s.ops.load(ordering: .relaxed)
}

/// A workload thread failed (a system call or an access that should have worked).
public enum WorkloadError: Error { case threadFailed }
