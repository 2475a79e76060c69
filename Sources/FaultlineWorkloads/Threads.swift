import Glibc

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
