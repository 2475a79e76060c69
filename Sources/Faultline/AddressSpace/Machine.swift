/// What address spaces share: the frame arena, the RCU domain and the event counters — the
/// machine a set of processes runs on.
public final class Machine: @unchecked Sendable {
  /// The frame arena every address space allocates from.
  public let memory: PhysicalMemory
  package let rcu: RCUDomain
  /// The event counters (`/proc/vmstat`).
  public let vmstat = VMStat()
  /// The fault event stream (off unless enabled).
  public let trace = FaultTrace()
  /// The mount table every address space's file table resolves paths in.
  public let namespace = Namespace()
  /// The System V shared-memory segments (`shmget`), which every address space shares.
  public let shm = ShmNamespace()
  /// The CPU features and kernel settings this machine has; address spaces take their
  /// settings from it (`AddressSpaceConfig(profile:)`) and threads their protection keys.
  public let profile: MachineProfile
  /// The hugetlb pool, sized by the profile's `nr_hugepages` settings (`HugePages_*`).
  public let hugetlb: HugeTLBPool
  let idLock = PThreadMutex()
  private var nextInode: UInt64 = 1000

  /// - Parameters:
  ///   - memoryBytes: the arena size (1 GiB by default).
  ///   - prefault: populate the arena up front (benchmarks).
  ///   - maxThreads: the most `CPU` handles alive at once.
  ///   - profile: the machine modelled (this host's by default).
  public init(
    memoryBytes: Int = 1 << 30, prefault: Bool = false, maxThreads: Int = 1024, profile: MachineProfile = .host
  ) throws(Errno) {
    self.profile = profile
    hugetlb = HugeTLBPool(profile: profile)
    memory = try PhysicalMemory(bytes: memoryBytes, prefault: prefault, maxThreads: maxThreads)
    rcu = memory.rcu
  }

  deinit { rcu.barrier() }

  /// Runs every deferred free now (`rcu_barrier`), and frees the System V segments removed
  /// while attached whose last attachment has gone. Call it outside any read section.
  public func drainDeferredFrees() {
    rcu.barrier()
    shm.pruneRemoved()
  }

  /// Mounts `fs` at `path`.
  @discardableResult
  public func mount(_ fs: any FileSystem, at path: String) -> Mount { namespace.mount(fs, at: path) }

  /// Unmounts `path` (`umount2(path, 0)`): `EBUSY` while a file or mapping uses it. An EBUSY
  /// caused only by in-flight users (a speculative fault's reference, a VMA waiting for its last
  /// reference) is counted as `umount_busy_inflight`.
  public func umount(_ path: String) throws(Errno) {
    let before = namespace.activeMounts.first { $0.path == Namespace.normalize(path) }?.inflightRefusals ?? 0
    do {
      try namespace.umount(path)
      _ = namespace.activeMounts  // prunes it, so its file system and page caches can go
    } catch {
      let after = namespace.activeMounts.first { $0.path == Namespace.normalize(path) }?.inflightRefusals ?? 0
      if after > before { vmstat.add(.umountBusyInflight) }
      throw error
    }
  }

  func allocateInode() -> UInt64 {
    idLock.withLock {
      nextInode += 1
      return nextInode
    }
  }
}
