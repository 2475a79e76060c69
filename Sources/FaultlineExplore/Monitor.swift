import Glibc

/// A pthread mutex and condition variable (on `CLOCK_MONOTONIC`) with bounded waits only: the
/// scheduler's one lock. Every wait takes a deadline, so nothing in the explorer can hang on it.
final class Monitor: @unchecked Sendable {
  private let mutex: UnsafeMutablePointer<pthread_mutex_t>
  private let cond: UnsafeMutablePointer<pthread_cond_t>

  init() {
    mutex = .allocate(capacity: 1)
    cond = .allocate(capacity: 1)
    pthread_mutex_init(mutex, nil)
    var attr = pthread_condattr_t()
    pthread_condattr_init(&attr)
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
    pthread_cond_init(cond, &attr)
    pthread_condattr_destroy(&attr)
  }

  deinit {
    pthread_cond_destroy(cond)
    pthread_mutex_destroy(mutex)
    cond.deallocate()
    mutex.deallocate()
  }

  func lock() { pthread_mutex_lock(mutex) }
  func unlock() { pthread_mutex_unlock(mutex) }

  func withLock<T>(_ body: () throws -> T) rethrows -> T {
    lock()
    defer { unlock() }
    return try body()
  }

  func broadcast() { pthread_cond_broadcast(cond) }

  /// Waits (lock held) until woken or `nanoseconds` pass.
  func wait(nanoseconds: UInt64) {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    let total = UInt64(ts.tv_nsec) + nanoseconds
    ts.tv_sec += Int(total / 1_000_000_000)
    ts.tv_nsec = Int(total % 1_000_000_000)
    _ = pthread_cond_timedwait(cond, mutex, &ts)
  }
}

/// Monotonic nanoseconds.
func monotonicNow() -> UInt64 {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// The scheduler state of kernel thread `tid` of this process, from `/proc/self/task/TID/stat`
/// (`R` running, `S` sleeping in the kernel, e.g. on a futex, `D` uninterruptible), or `nil`.
func kernelThreadState(_ tid: Int32) -> Character? {
  let fd = open("/proc/self/task/\(tid)/stat", O_RDONLY)
  guard fd >= 0 else { return nil }
  defer { close(fd) }
  var buffer = [UInt8](repeating: 0, count: 512)
  let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
  guard n > 0 else { return nil }
  // "tid (comm) S ...": the command may contain ')' and spaces; the state follows the last ')'.
  guard let close = buffer[0..<n].lastIndex(of: UInt8(ascii: ")")), close + 2 < n else { return nil }
  return Character(UnicodeScalar(buffer[close + 2]))
}
