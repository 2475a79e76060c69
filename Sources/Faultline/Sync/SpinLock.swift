import CFaultlineShims
import Glibc
import Synchronization

/// A test-and-test-and-set spinlock on one `Atomic<UInt32>` word that lives wherever its owner put
/// it: the split page-table lock (PTL) sits in the metadata of the page-table frame it guards, as
/// `ptlock_ptr(page)` does in Linux.
///
/// The lock is a view, not an owner: copying a `SpinLock` copies the pointer. Spinning backs off to
/// `sched_yield` so that two threads on two vCPUs do not starve a preempted holder.
package struct SpinLock: @unchecked Sendable {
  let word: UnsafeMutablePointer<Atomic<UInt32>>

  /// Wraps an existing lock word. The word must start at 0 (unlocked).
  package init(word: UnsafeMutablePointer<Atomic<UInt32>>) { self.word = word }

  /// Allocates a standalone, unlocked lock word. Free it with `deallocate()`.
  package static func allocate() -> SpinLock {
    let p = UnsafeMutablePointer<Atomic<UInt32>>.allocate(capacity: 1)
    p.initialize(to: Atomic(0))
    return SpinLock(word: p)
  }

  /// Frees a lock made by `allocate()`.
  package func deallocate() { word.deallocate() }

  /// One attempt; `true` when the caller now holds the lock.
  @inline(__always)
  package func tryLock() -> Bool {
    word.pointee.load(ordering: .relaxed) == 0
      && word.pointee.compareExchange(expected: 0, desired: 1, ordering: .acquiring).exchanged
  }

  /// `spin_lock`: spins while another thread holds the lock, backing off to `sched_yield`.
  @inline(__always)
  package func lock() {
    if word.pointee.compareExchange(expected: 0, desired: 1, ordering: .acquiring).exchanged { return }
    lockSlow()
  }

  @inline(never)
  func lockSlow() {
    var spins = 0
    while true {
      while word.pointee.load(ordering: .relaxed) != 0 {
        spins += 1
        if spins < 128 { fl_cpu_relax() } else { sched_yield(); spins = 0 }
      }
      if word.pointee.compareExchange(expected: 0, desired: 1, ordering: .acquiring).exchanged { return }
    }
  }

  /// `spin_unlock`.
  @inline(__always)
  package func unlock() { word.pointee.store(0, ordering: .releasing) }

  /// Whether some thread holds the lock (for assertions only).
  package var isLocked: Bool { word.pointee.load(ordering: .relaxed) != 0 }
}
