/// What address spaces share: the frame arena, the RCU domain and the event counters — the
/// machine a set of processes runs on.
public final class Machine: @unchecked Sendable {
  public let memory: PhysicalMemory
  public let rcu: RCUDomain
  public let vmstat = VMStat()
  /// The fault event stream (off unless enabled).
  public let trace = FaultTrace()
  let idLock = PThreadMutex()
  private var nextInode: UInt64 = 1000

  /// - Parameters:
  ///   - memoryBytes: the arena size (1 GiB by default).
  ///   - prefault: populate the arena up front (benchmarks).
  ///   - maxThreads: the most `CPU` handles alive at once.
  public init(memoryBytes: Int = 1 << 30, prefault: Bool = false, maxThreads: Int = 1024) throws(Errno) {
    memory = try PhysicalMemory(bytes: memoryBytes, prefault: prefault)
    rcu = RCUDomain(capacity: maxThreads)
  }

  deinit { rcu.barrier() }

  /// Runs every deferred free now (`rcu_barrier`). Call it outside any read section.
  public func drainDeferredFrees() { rcu.barrier() }

  func allocateInode() -> UInt64 {
    idLock.withLock {
      nextInode += 1
      return nextInode
    }
  }
}
