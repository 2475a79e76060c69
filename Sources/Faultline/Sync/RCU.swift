import CFaultlineShims
import Glibc
import Synchronization

/// An epoch-based RCU domain (in the spirit of liburcu's memb flavour and `kernel/rcu`).
///
/// - Readers hold an explicit per-thread `RCUReader`. `readLock()` publishes the current epoch in
///   the reader's own cache line with a plain store and no fence; `readUnlock()` is a release store
///   of zero. Nesting is counted in the same line, owner-only.
/// - `synchronize()` advances the epoch, issues `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`
///   (a full barrier on every CPU running one of our threads, which orders each reader's slot store
///   before its loads), then waits until no slot holds an older epoch. If the kernel refuses
///   membarrier, readers pay a full fence instead (`usesMembarrier` says which).
/// - `callRCU(_:)` queues a callback to run after a grace period; callbacks run in batches from the
///   writer that fills the queue, or from `barrier()`.
///
/// A reader must never block (sleep on a lock, wait for another thread) inside a read section, and
/// must not call `synchronize()` or `barrier()` there: that is a self-deadlock, as in the kernel.
package final class RCUDomain: @unchecked Sendable {
  /// Slot stride: 16 words (128 bytes), so two readers never share a line or its prefetch pair.
  static let slotWords = 16

  /// The global epoch, alone on its cache line; starts at 1 so that 0 means "not in a read
  /// section".
  let epoch: UnsafeMutablePointer<Atomic<UInt64>>
  /// Slot i: word 0 is the published epoch (atomic; 0 outside a read section), word 1 the number
  /// of sections nested inside the first (owner-only).
  let slots: UnsafeMutablePointer<Atomic<UInt64>>
  let slotBytes: Int
  /// The most readers that can be registered at once.
  package let capacity: Int
  /// One past the highest slot ever handed out: writers scan `0..<highWater`.
  let highWater = Atomic<Int>(0)
  /// `true` when the write side uses membarrier and readers need no fence.
  package let usesMembarrier: Bool

  /// Guards `freeSlots`, `pending` and `pendingCost`.
  private let registry = PThreadMutex()
  private var freeSlots: [Int] = []
  private var pending: [() -> Void] = []
  private var pendingCost = 0
  /// Serialises grace periods.
  private let gpLock = PThreadMutex()
  /// Queued work (callbacks, weighted by `cost`) that triggers a grace period from `callRCU`.
  package var batchLimit = 4096
  /// Completed grace periods, for tests and counters.
  package let gracePeriods = Atomic<UInt64>(0)
  /// Batches taken off the queue whose callbacks have not all run yet.
  private let batchesInFlight = Atomic<Int>(0)

  /// - Parameters:
  ///   - capacity: the most reader handles alive at once.
  ///   - useMembarrier: `false` forces the fence fallback (tests use it to cover both paths).
  package init(capacity: Int = 1024, useMembarrier: Bool = true) {
    self.capacity = capacity
    slotBytes = capacity * Self.slotWords * 8
    // Pages are touched only as slots are handed out.
    let raw = mmap(nil, slotBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    precondition(raw != MAP_FAILED, "RCU slot area: mmap failed")
    slots = raw!.bindMemory(to: Atomic<UInt64>.self, capacity: capacity * Self.slotWords)
    usesMembarrier = useMembarrier && MembarrierSupport.registered
    freeSlots = Array((0..<capacity).reversed())
    epoch = .allocate(capacity: Self.slotWords)
    for i in 0..<Self.slotWords { (epoch + i).initialize(to: Atomic(i == 0 ? 1 : 0)) }
  }

  deinit {
    barrier()
    munmap(UnsafeMutableRawPointer(slots), slotBytes)
    epoch.deallocate()
  }

  // MARK: Registration

  /// Registers a reader. Throws `EAGAIN` when `capacity` readers are already registered.
  package func register() throws(Errno) -> RCUReader {
    let index: Int? = registry.withLock {
      freeSlots.popLast()
    }
    guard let index else { throw Errno.resourceTemporarilyUnavailable }
    let slot = slots + index * Self.slotWords
    slot.pointee.store(0, ordering: .relaxed)
    (slot + 1).pointee.store(0, ordering: .relaxed)
    while true {
      let hw = highWater.load(ordering: .relaxed)
      if hw > index { break }
      if highWater.compareExchange(expected: hw, desired: index + 1, ordering: .releasing).exchanged { break }
    }
    return RCUReader(domain: self, slot: slot, index: index)
  }

  func unregister(_ index: Int) {
    let slot = slots + index * Self.slotWords
    precondition(slot.pointee.load(ordering: .relaxed) == 0, "RCU reader dropped inside a read section")
    slot.pointee.store(0, ordering: .releasing)
    registry.withLock { freeSlots.append(index) }
  }

  // MARK: Grace periods

  /// Waits until every read section that started before the call has ended.
  package func synchronize() {
    gpLock.withLock {
      let target = epoch.pointee.wrappingAdd(1, ordering: .sequentiallyConsistent).newValue
      if usesMembarrier {
        _ = fl_membarrier()
      } else {
        atomicMemoryFence(ordering: .sequentiallyConsistent)
      }
      let n = highWater.load(ordering: .acquiring)
      for i in 0..<n {
        let slot = slots + i * Self.slotWords
        var spins = 0
        while true {
          let e = slot.pointee.load(ordering: .acquiring)
          if e == 0 || e >= target { break }
          spins += 1
          if spins < 256 { fl_cpu_relax() } else { sched_yield() }
        }
      }
      gracePeriods.wrappingAdd(1, ordering: .relaxed)
    }
  }

  /// Queues `callback` to run after a grace period (`call_rcu`). `cost` weighs it against
  /// `batchLimit` (e.g. the number of frames it frees); a full queue is flushed by this caller,
  /// which then waits for a grace period. Unlike the kernel's `call_rcu`, it must therefore not
  /// be called inside a read section.
  package func callRCU(cost: Int = 1, _ callback: @escaping () -> Void) {
    let flush: Bool = registry.withLock {
      pending.append(callback)
      pendingCost += max(cost, 1)
      return pendingCost >= batchLimit
    }
    if flush { drainOnce() }
  }

  /// Waits for a grace period and runs every callback queued before the call (`rcu_barrier`),
  /// including those another thread's flush has already taken off the queue.
  package func barrier() {
    while drainOnce() {}
    var spins = 0
    while batchesInFlight.load(ordering: .acquiring) != 0 {
      spins += 1
      if spins < 64 { fl_cpu_relax() } else { sched_yield() }
    }
  }

  /// The number of callbacks waiting for a grace period.
  package var pendingCallbacks: Int { registry.withLock { pending.count } }

  /// Takes the queue, waits a grace period, runs it. Returns `false` when the queue was empty.
  @discardableResult
  private func drainOnce() -> Bool {
    let batch: [() -> Void] = registry.withLock {
      let b = pending
      pending = []
      pendingCost = 0
      if !b.isEmpty { batchesInFlight.wrappingAdd(1, ordering: .relaxed) }
      return b
    }
    if batch.isEmpty { return false }
    synchronize()
    for cb in batch { cb() }
    batchesInFlight.wrappingSubtract(1, ordering: .releasing)
    return true
  }
}

/// A thread's registration with an `RCUDomain`: owns the slot and gives it back on `deinit`.
/// Not thread-safe: one thread uses it. Dropping it inside a read section is a bug and traps.
package final class RCUReader {
  let domain: RCUDomain
  let index: Int
  /// The read-side operations, as a plain value for hot paths (no reference counting).
  let side: RCUReadSide

  init(domain: RCUDomain, slot: UnsafeMutablePointer<Atomic<UInt64>>, index: Int) {
    self.domain = domain
    self.index = index
    side = RCUReadSide(slot: slot, epoch: domain.epoch, membarrier: domain.usesMembarrier)
  }

  deinit { domain.unregister(index) }

  /// Enters a read section (`rcu_read_lock`). Nests.
  @inline(__always) package func readLock() { side.lock() }
  /// Leaves a read section (`rcu_read_unlock`).
  @inline(__always) package func readUnlock() { side.unlock() }
  /// `true` inside a read section.
  package var isReading: Bool { side.isReading }
}

/// The read side of one registered reader: pointers to its slot and the domain's epoch. Valid
/// while its `RCUReader` lives.
struct RCUReadSide {
  /// Word 0: the published epoch (0 outside a section; epochs start at 1); word 1: the number of
  /// sections nested inside the first (owner-only). The outermost section writes word 0 alone,
  /// so a fault's own sections (`lockOutermost`) cost one store to enter and one to leave.
  let slot: UnsafeMutablePointer<Atomic<UInt64>>
  let epoch: UnsafeMutablePointer<Atomic<UInt64>>
  let membarrier: Bool

  /// Enters a read section (`rcu_read_lock`). Nests.
  @inline(__always)
  func lock() {
    // Only this thread writes its slot, so a relaxed read of it is exact.
    if slot.pointee.load(ordering: .relaxed) == 0 {
      publish()
    } else {
      let nested = (slot + 1).pointee.load(ordering: .relaxed)
      (slot + 1).pointee.store(nested + 1, ordering: .relaxed)
    }
  }

  /// Leaves a read section (`rcu_read_unlock`).
  @inline(__always)
  func unlock() {
    assert(slot.pointee.load(ordering: .relaxed) != 0, "rcu unlock without lock")
    let nested = (slot + 1).pointee.load(ordering: .relaxed)
    if nested == 0 {
      slot.pointee.store(0, ordering: .releasing)
    } else {
      (slot + 1).pointee.store(nested - 1, ordering: .relaxed)
    }
  }

  /// Enters a read section that is not nested in another: a fault path's own sections (faults
  /// never start inside one, since they may sleep on a lock or allocate). `lock()` without the
  /// test; a section nested inside this one works as with `lock()`.
  @inline(__always)
  func lockOutermost() {
    assert(slot.pointee.load(ordering: .relaxed) == 0, "outermost rcu lock inside a read section")
    publish()
  }

  /// Leaves a section entered with `lockOutermost()`.
  @inline(__always)
  func unlockOutermost() {
    assert((slot + 1).pointee.load(ordering: .relaxed) == 0, "outermost rcu unlock with a nested section open")
    slot.pointee.store(0, ordering: .releasing)
  }

  /// Publishes the current epoch in the slot: the section has begun.
  @inline(__always)
  private func publish() {
    slot.pointee.store(epoch.pointee.load(ordering: .relaxed), ordering: .relaxed)
    if !membarrier {
      atomicMemoryFence(ordering: .sequentiallyConsistent)
    } else {
      // The writer's membarrier orders this store before our loads.
      fl_compiler_barrier()
    }
  }

  /// `true` inside a read section.
  var isReading: Bool { slot.pointee.load(ordering: .relaxed) != 0 }
}

/// Registers this process for expedited private membarrier once.
enum MembarrierSupport {
  static let registered: Bool = fl_membarrier_register() == 0
}
