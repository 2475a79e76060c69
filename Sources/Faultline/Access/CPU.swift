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

  // Hot-path copies, reached without reference counting.
  unowned(unsafe) let memory: PhysicalMemory
  unowned(unsafe) let pageTable: PageTable
  let rcuSide: RCUReadSide
  let arenaBase: UnsafeMutableRawPointer

  /// Registers a new thread with `mm`'s machine. Throws `EAGAIN` past the machine's
  /// `maxThreads`.
  public init(mm: AddressSpace) throws(Errno) {
    self.mm = mm
    machine = mm.machine
    reader = try mm.machine.rcu.register()
    cache = mm.machine.memory.makeCache()
    counters = mm.machine.vmstat.makeBlock()
    memory = mm.machine.memory
    pageTable = mm.pageTable
    rcuSide = reader.side
    arenaBase = mm.machine.memory.base
  }

  deinit {
    machine.memory.unregister(cache)
    machine.vmstat.retire(counters)
  }

  /// Gives cached free frames back to the global pool (for exact accounting in tests).
  public func drainFrameCache() { memory.drain(cache) }
}
