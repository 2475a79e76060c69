import CFaultlineShims
import Glibc
import Synchronization

/// The reader/writer semaphore behind `mmap_lock` (`kernel/locking/rwsem.c`).
///
/// Writer-preferring: once a writer waits, new readers wait too, so a stream of faults cannot
/// starve `munmap`. Waiters spin briefly and then sleep on a futex. `downgrade()` turns a write
/// hold into a read hold without letting a writer in between, as `mmap_write_downgrade` does.
///
/// The class owns the lock words; `view` is the same lock as a plain value for hot paths.
package final class RWSemaphore: @unchecked Sendable {
  /// The lock as a plain value (no reference counting on use).
  let view: RWSemaphoreView

  /// An unlocked semaphore.
  package init() { view = RWSemaphoreView.allocate() }
  deinit { view.words.deallocate() }

  /// `down_read_trylock`: a read hold unless a writer holds or waits.
  @inline(__always) package func tryRead() -> Bool { view.tryRead() }
  /// `down_read`: waits while a writer holds or waits.
  @inline(__always) package func readLock() { view.readLock() }
  /// `up_read`.
  @inline(__always) package func readUnlock() { view.readUnlock() }
  /// `down_write_trylock`.
  @inline(__always) package func tryWrite() -> Bool { view.tryWrite() }
  /// `down_write`: waits for every holder; new readers queue behind it meanwhile.
  package func writeLock() { view.writeLock() }
  /// `up_write`.
  package func writeUnlock() { view.writeUnlock() }
  /// `downgrade_write`: turns the caller's write hold into a read hold atomically.
  package func downgrade() { view.downgrade() }
  /// `true` while a writer holds the semaphore.
  package var isWriteLocked: Bool { view.isWriteLocked }
  /// The number of read holds right now.
  package var readers: Int { view.readers }
}

/// The words of an `RWSemaphore` and its operations.
///
/// All four words sit in one cache line so that the futex can address `wakeSequence`; every
/// word is atomic.
struct RWSemaphoreView: @unchecked Sendable {
  private static let writerBit: UInt32 = 1 << 31
  private static let spinLimit = 64

  let words: UnsafeMutablePointer<Atomic<UInt32>>
  /// Bit 31: a writer holds it. Bits 0..30: the number of readers holding it.
  private var state: UnsafeMutablePointer<Atomic<UInt32>> { words }
  /// Writers waiting to get in; while non-zero new readers queue behind them.
  private var writersWaiting: UnsafeMutablePointer<Atomic<UInt32>> { words + 1 }
  /// Futex word, bumped by every release that may let a sleeper in.
  private var wakeSequence: UnsafeMutablePointer<Atomic<UInt32>> { words + 2 }
  /// Threads asleep (or about to sleep) on `wakeSequence`.
  private var sleepers: UnsafeMutablePointer<Atomic<UInt32>> { words + 3 }

  static func allocate() -> RWSemaphoreView {
    let w = UnsafeMutablePointer<Atomic<UInt32>>.allocate(capacity: 16)  // a cache line
    for i in 0..<16 { (w + i).initialize(to: Atomic(0)) }
    return RWSemaphoreView(words: w)
  }

  // MARK: Readers

  /// A read hold unless a writer holds or waits (`down_read_trylock`). Losing a race with
  /// another reader is retried, so readers never fail because of readers.
  @inline(__always)
  func tryRead() -> Bool {
    var s = state.pointee.load(ordering: .relaxed)
    while true {
      if s & Self.writerBit != 0 || writersWaiting.pointee.load(ordering: .relaxed) != 0 { return false }
      let (ok, current) = state.pointee.compareExchange(expected: s, desired: s + 1, ordering: .acquiring)
      if ok { return true }
      s = current
    }
  }

  /// A read hold, waiting while a writer holds or waits (`down_read`).
  @inline(__always)
  func readLock() {
    if tryRead() { return }
    readLockSlow()
  }

  @inline(never)
  private func readLockSlow() {
    wait { self.tryRead() }
  }

  /// Drops a read hold (`up_read`); the last reader wakes sleepers.
  @inline(__always)
  func readUnlock() {
    let old = state.pointee.wrappingSubtract(1, ordering: .sequentiallyConsistent).oldValue
    assert(old & ~Self.writerBit != 0, "readUnlock without a read hold")
    // The sleeper count is read inline: the last reader of an uncontended semaphore (every
    // fault's `up_read`) pays one load, not a call.
    if old == 1 && sleepers.pointee.load(ordering: .sequentiallyConsistent) != 0 { wakeSleepers() }
  }

  // MARK: Writers

  /// One attempt at a write hold.
  @inline(__always)
  func tryWrite() -> Bool {
    state.pointee.compareExchange(expected: 0, desired: Self.writerBit, ordering: .acquiring).exchanged
  }

  /// The write hold, waiting for every holder (`down_write`); new readers queue behind it
  /// meanwhile.
  func writeLock() {
    if tryWrite() { return }
    writersWaiting.pointee.wrappingAdd(1, ordering: .sequentiallyConsistent)
    wait { self.tryWrite() }
    writersWaiting.pointee.wrappingSubtract(1, ordering: .sequentiallyConsistent)
  }

  /// Drops the write hold (`up_write`) and wakes sleepers.
  func writeUnlock() {
    let old = state.pointee.exchange(0, ordering: .sequentiallyConsistent)
    assert(old == Self.writerBit, "writeUnlock without the write hold")
    wakeSleepers()
  }

  /// Turns the caller's write hold into a read hold atomically (`downgrade_write`).
  func downgrade() {
    let old = state.pointee.exchange(1, ordering: .sequentiallyConsistent)
    assert(old == Self.writerBit, "downgrade without the write hold")
    wakeSleepers()
  }

  /// `true` while a writer holds the semaphore.
  var isWriteLocked: Bool { state.pointee.load(ordering: .relaxed) & Self.writerBit != 0 }
  /// The number of read holds right now.
  var readers: Int { Int(state.pointee.load(ordering: .relaxed) & ~Self.writerBit) }

  // MARK: Sleeping

  private func wait(until acquire: () -> Bool) {
    for _ in 0..<Self.spinLimit {
      fl_cpu_relax()
      if acquire() { return }
    }
    while true {
      // Register as a sleeper before the last check: a release either sees us and bumps the
      // sequence, or happened before our check, which then succeeds.
      sleepers.pointee.wrappingAdd(1, ordering: .sequentiallyConsistent)
      let seq = wakeSequence.pointee.load(ordering: .sequentiallyConsistent)
      if acquire() {
        sleepers.pointee.wrappingSubtract(1, ordering: .relaxed)
        return
      }
      _ = fl_futex_wait(UnsafeMutableRawPointer(wakeSequence).assumingMemoryBound(to: UInt32.self), seq)
      sleepers.pointee.wrappingSubtract(1, ordering: .relaxed)
      if acquire() { return }
    }
  }

  @inline(never)
  private func wakeSleepers() {
    if sleepers.pointee.load(ordering: .sequentiallyConsistent) == 0 { return }
    wakeSequence.pointee.wrappingAdd(1, ordering: .sequentiallyConsistent)
    _ = fl_futex_wake(UnsafeMutableRawPointer(wakeSequence).assumingMemoryBound(to: UInt32.self), Int32.max)
  }
}
