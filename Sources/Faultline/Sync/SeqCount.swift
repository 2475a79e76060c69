import CFaultlineShims
import Synchronization

/// A sequence counter (`seqcount_t`): even while stable, odd while a writer changes the data it
/// guards. Writers must be serialised by something else (in Faultline, `mmap_lock` held for write).
///
/// Readers take `readBegin()`, read the guarded fields with relaxed atomic loads, and call
/// `readRetry(_:)`. The speculative fault path uses `raw()` instead: an odd value means "abort",
/// never "wait", because SPF must not block on a writer (`__handle_speculative_fault`).
package struct SeqCount: ~Copyable, @unchecked Sendable {
  let value = Atomic<UInt64>(0)

  /// A counter at 0: stable, no writer.
  package init() {}

  /// The current value without waiting; odd while a write is in progress.
  @inline(__always)
  package func raw() -> UInt64 { value.load(ordering: .acquiring) }

  /// Waits until no writer is active and returns the even sequence.

  package func readBegin() -> UInt64 {
    while true {
      let v = value.load(ordering: .acquiring)
      if v & 1 == 0 { return v }
      fl_cpu_relax()
    }
  }

  /// `true` when a writer ran since `start` (the read must be redone or abandoned).
  @inline(__always)
  package func readRetry(_ start: UInt64) -> Bool {
    atomicMemoryFence(ordering: .acquiring)
    return value.load(ordering: .relaxed) != start
  }

  /// Makes the count odd. Stores to the guarded fields must follow.
  @inline(__always)
  package func writeBegin() {
    let v = value.load(ordering: .relaxed)
    value.store(v &+ 1, ordering: .relaxed)
    atomicMemoryFence(ordering: .releasing)
  }

  /// Makes the count even again, publishing the stores made since `writeBegin()`.
  @inline(__always)
  package func writeEnd() {
    let v = value.load(ordering: .relaxed)
    value.store(v &+ 1, ordering: .releasing)
  }

  /// `true` while a writer is between `writeBegin` and `writeEnd`.
  package var isWriting: Bool { value.load(ordering: .relaxed) & 1 != 0 }
}
