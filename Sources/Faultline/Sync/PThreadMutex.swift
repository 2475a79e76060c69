import Glibc

/// A `pthread_mutex_t` in its own allocation, for slow paths (registries, queues, page-cache
/// trees). Faultline avoids `Synchronization.Mutex` because it is a PI-futex lock that costs three
/// times as much uncontended and gives ThreadSanitizer false positives: a contended one hands
/// over in the kernel, where ThreadSanitizer cannot see it (`.ci/run` checks that nothing uses
/// it).
package final class PThreadMutex: @unchecked Sendable {
  private let mutex: UnsafeMutablePointer<pthread_mutex_t>

  /// A new, unlocked mutex.
  package init() {
    mutex = .allocate(capacity: 1)
    mutex.initialize(to: pthread_mutex_t())
    precondition(pthread_mutex_init(mutex, nil) == 0)
  }

  deinit {
    pthread_mutex_destroy(mutex)
    mutex.deallocate()
  }

  /// `pthread_mutex_lock`.
  package func lock() { precondition(pthread_mutex_lock(mutex) == 0) }
  /// `pthread_mutex_unlock`.
  package func unlock() { precondition(pthread_mutex_unlock(mutex) == 0) }

  /// Runs `body` with the mutex held.
  @inline(__always)
  package func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
    lock()
    defer { unlock() }
    return try body()
  }
}

/// A value guarded by a `PThreadMutex`: what `Synchronization.Mutex<Value>` gives, without its
/// PI-futex hand-over, which ThreadSanitizer cannot see (a contended `Mutex` reads to it as a
/// data race on the guarded value).
package final class Locked<Value>: @unchecked Sendable {
  private let mutex = PThreadMutex()
  private var value: Value

  /// Guards `value`.
  package init(_ value: Value) { self.value = value }

  /// Runs `body` on the value with the mutex held.
  @inline(__always)
  package func withLock<T, E: Error>(_ body: (inout Value) throws(E) -> T) throws(E) -> T {
    mutex.lock()
    defer { mutex.unlock() }
    return try body(&value)
  }
}
