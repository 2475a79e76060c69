import Synchronization

/// A thread's handle on an address space: what a CPU running that thread carries (its RCU
/// registration, its free-frame cache, its event counters). Loads, stores and system calls go
/// through it.
///
/// One thread uses a `CPU` at a time; it is not `Sendable`. Create one per thread, and drop it
/// before its `AddressSpace`.
public final class CPU {
  /// The address space this thread runs in.
  public let mm: AddressSpace
  public let machine: Machine
  let reader: RCUReader
  let cache: FrameCache
  let counters: UnsafeMutablePointer<Atomic<UInt64>>

  // Plain-value views of what a fault touches, reached with no reference counting.
  let frames: FrameAllocator
  let walker: PageTableWalker
  let mmapLock: RWSemaphoreView
  let vmas: VMATreeReader
  let rcuSide: RCUReadSide
  let arenaBase: UnsafeMutableRawPointer
  let design: FaultDesign
  let speculativeAllocatesTables: Bool
  let mmapSeq: UnsafeMutablePointer<Atomic<UInt64>>
  let mmLockSeq: UnsafeMutablePointer<Atomic<UInt64>>
  let hooksEnabled: UnsafeMutablePointer<Atomic<Bool>>
  /// Pages fault-around may map (`fault_around_bytes / PAGE_SIZE`).
  let faultAround: Int
  let fputMode: FputMode

  /// Registers a new thread with `mm`'s machine. Throws `EAGAIN` past the machine's
  /// `maxThreads`.
  public init(mm: AddressSpace) throws(Errno) {
    self.mm = mm
    machine = mm.machine
    reader = try mm.machine.rcu.register()
    cache = mm.machine.memory.makeCache()
    counters = mm.machine.vmstat.makeBlock()
    frames = mm.machine.memory.frames
    walker = mm.pageTable.walker
    mmapLock = mm.mmapLock.view
    vmas = mm.tree.reader
    rcuSide = reader.side
    arenaBase = mm.machine.memory.base
    design = mm.config.design
    speculativeAllocatesTables = mm.config.speculativeAllocatesTables
    mmapSeq = mm.mmapSeq
    mmLockSeq = mm.mmLockSeq
    hooksEnabled = mm.hooksEnabled
    faultAround = mm.config.faultAroundPages
    fputMode = mm.config.fputMode
  }

  deinit {
    machine.memory.unregister(cache)
    machine.vmstat.retire(counters)
  }

  /// Gives cached free frames back to the global pool (for exact accounting in tests).
  public func drainFrameCache() { frames.drain(cache) }
}
