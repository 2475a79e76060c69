/// The machine's System V shared-memory segments (`ipc/shm.c`, one IPC namespace): what
/// `shmget` creates and `shmctl` inspects and removes. Every address space of a `Machine` sees
/// the same segments; `shmat`/`shmdt` (`AddressSpace+Shm.swift`) map them.
///
/// A segment is a `ShmemFile` named `/SYSV<key>` whose inode number is the segment's id, as
/// Linux's `newseg` sets `i_ino` to the id. `shm_nattch` is the number of VMAs mapping it in any
/// address space (Linux counts VMA opens and closes, so a split attachment counts twice). A
/// removed segment (`IPC_RMID`) that is still attached becomes `IPC_PRIVATE` with `SHM_DEST` and
/// goes with its last VMA; the namespace notices at its next lookup.
///
/// Ids are Linux's `ipc_buildid`: `seq << 15 | index`, the index allocated cyclically
/// (`idr_alloc_cyclic`) over the first `max(in_use * 3 / 2, 64)` indexes (`ipc_min_cycle`)
/// and the sequence bumped whenever the index wraps back.
///
/// The caller is an unprivileged owner of every segment: permissions are the mode's owner bits
/// (no `CAP_IPC_OWNER`), `IPC_STAT` and `SHM_STAT` need read permission as `shmat` does, and
/// `SHM_HUGETLB` is `EPERM` without `CAP_IPC_LOCK` (`can_do_hugetlb_shm`; Faultline has no
/// `vm.hugetlb_shm_group`).
///
/// Not modelled: owners other than the caller, commit accounting beyond refusing a segment
/// larger than all memory (`SHM_NORESERVE` skips that check), hugetlb segments for a caller
/// with `CAP_IPC_LOCK` (`ENOMEM`, which Linux answers only when the pool cannot reserve the
/// segment and `SHM_NORESERVE` is absent; with it, or with room in the pool, Linux makes one),
/// `shm_rmid_forced`, the times and pids of `shmid_ds`.
/// Guards: `lock` guards `segments` and the allocation cursor. Lock order: `LockOrder` (taken
/// before `mmap_lock` by `shmat`/`shmdt`, never inside it).
public final class ShmNamespace: @unchecked Sendable {
  /// One segment (`struct shmid_kernel`).
  final class Segment {
    let id: Int32
    /// The key it was created with (`IPC_PRIVATE` once removed while attached).
    var key: Int32
    /// `shm_segsz`: the size asked for, not rounded.
    let size: UInt64
    /// The permission bits and, once removed while attached, `SHM_DEST`.
    var mode: UInt32
    let object: ShmemFile
    var destroyed = false
    /// Attaches between their permission check and their VMA (`do_shmat`'s raised
    /// `shm_nattch`): a removed segment stays while any is pending. Guarded by the namespace's
    /// `lock`.
    var pendingAttaches = 0
    /// `SHM_LOCK`ed (`SHM_LOCKED` in the mode's status bits).
    var locked = false

    init(id: Int32, key: Int32, size: UInt64, mode: UInt32, object: ShmemFile) {
      self.id = id
      self.key = key
      self.size = size
      self.mode = mode
      self.object = object
    }
  }

  /// `IPCMNI_SHIFT`: the index takes the low 15 bits of an id.
  static let indexShift = 15
  /// `SHMMNI`: the most segments (`kernel.shmmni`).
  public static let maxSegments = 4096
  /// `ipc_min_cycle` (`RADIX_TREE_MAP_SIZE`): ids cycle over at least this many indexes.
  static let minCycle = 64
  /// `SHMMIN`.
  public static let minSize: UInt64 = 1
  /// `SHMMAX` (`ULONG_MAX - (1UL << 24)`), the default `kernel.shmmax`.
  public static let maxSize: UInt64 = UInt64.max - (1 << 24)
  /// `SHM_DEST`: removed, waiting for its last detach.
  public static let destMode: UInt32 = 0o1000
  /// `SHM_LOCKED`.
  public static let lockedMode: UInt32 = 0o2000

  private let lock = PThreadMutex()
  private var segments: [Int: Segment] = [:]
  private var nextIndex = 0
  private var lastIndex = -1
  private var seq = 0

  init() {}

  /// `shmget(key, size, flags)`: the id of the segment with `key`, created when `key` is
  /// `IPC_PRIVATE` or absent with `IPC_CREAT`. `memory` makes the new segment's object;
  /// `hugetlb` and `capIPCLock` decide a `SHM_HUGETLB` segment.
  func get(
    key: Int32, size: UInt64, flags: ShmFlags, memory: PhysicalMemory, overcommit: MachineProfile.Overcommit,
    hugetlb: HugeTLBPool, capIPCLock: Bool
  ) throws(Errno) -> Int32 {
    try lock.withLock { () throws(Errno) -> Int32 in
      prune()
      if key != ShmFlags.ipcPrivate, let found = segments.values.first(where: { $0.key == key && !$0.destroyed }) {
        if flags.contains(.create) && flags.contains(.exclusive) { throw Errno.fileExists }
        // ipcget_public: shm_more_checks (the size) before ipc_check_perms; any class's bits in
        // the flags are asked of the owner's.
        if found.size < size { throw Errno.invalidArgument }
        let asked = UInt32(bitPattern: flags.rawValue) & 0o777
        if !permits(found, (asked >> 6 | asked >> 3 | asked) & 0o7) { throw Errno.permissionDenied }
        return found.id
      }
      if key != ShmFlags.ipcPrivate && !flags.contains(.create) { throw Errno.noSuchFileOrDirectory }
      // newseg.
      if size < Self.minSize || size > Self.maxSize { throw Errno.invalidArgument }
      if flags.contains(.hugeTLB) {
        // hstate_sizelog of the SHM_HUGE_* bits, then hugetlb_file_setup's can_do_hugetlb_shm.
        let log2 = Int((UInt32(bitPattern: flags.rawValue) >> UInt32(MapFlags.hugeShift)) & UInt32(MapFlags.hugeMask))
        guard let huge = log2 == 0 ? hugetlb.defaultSize : HugePageSize(log2: log2), hugetlb.supports(huge) else {
          throw Errno.invalidArgument
        }
        throw capIPCLock ? Errno.noMemory : Errno.notPermitted
      }
      // __shmem_file_setup: an loff_t size (MAX_LFS_FILESIZE).
      if size > Inode.maxFileSize { throw Errno.invalidArgument }
      // shmem_acct_size → __vm_enough_memory, unless SHM_NORESERVE: under the heuristic (and
      // strict) policy a segment larger than all memory (the arena; no swap) is ENOMEM.
      if !flags.contains(.noReserve) && overcommit != .always && Page.covering(size) > UInt64(memory.frameCount) {
        throw Errno.noMemory
      }
      guard let index = allocateIndex() else { throw Errno.noSpace }
      let id = Int32(seq << Self.indexShift | index)
      let object = ShmemFile(inode: UInt64(id), size: size, memory: memory, name: "/SYSV" + hex8(UInt64(UInt32(bitPattern: key))))
      segments[index] = Segment(id: id, key: key, size: size, mode: UInt32(bitPattern: flags.rawValue) & 0o777, object: object)
      return id
    }
  }

  /// `ipc_addid`'s `SHMMNI` limit, then `ipc_idr_alloc`: `idr_alloc_cyclic` over the indexes
  /// below `max(in_use * 3 / 2, ipc_min_cycle)` (at most `SHMMNI`), the first free one at or
  /// after the cursor, else the first free one from 0; the sequence goes up when the index does
  /// not.
  private func allocateIndex() -> Int? {
    if segments.count >= Self.maxSegments { return nil }
    let end = min(max(segments.count * 3 / 2, Self.minCycle), Self.maxSegments)
    let free = { (index: Int) in self.segments[index] == nil }
    guard let index = (min(nextIndex, end)..<end).first(where: free) ?? (0..<end).first(where: free) else { return nil }
    if index <= lastIndex { seq = (seq + 1) % (Int(Int32.max) >> Self.indexShift) }
    lastIndex = index
    nextIndex = index + 1
    return index
  }

  /// Frees the removed segments whose last VMA went (`Machine.drainDeferredFrees`).
  func pruneRemoved() { lock.withLock { prune() } }

  /// `shm_destroy` of every removed segment whose last VMA went.
  /// - Requires: `lock` held.
  private func prune() {
    for (index, s) in segments where s.destroyed && s.pendingAttaches == 0 && s.object.mappingCount == 0 {
      segments[index] = nil
    }
  }

  /// The live segment `id` names (`shm_obtain_object_check`): `EINVAL` for none.
  /// - Requires: `lock` held.
  private func lookupLocked(_ id: Int32) throws(Errno) -> Segment {
    prune()
    guard id >= 0, let s = segments[Int(id) & ((1 << Self.indexShift) - 1)], s.id == id else {
      throw Errno.invalidArgument
    }
    return s
  }

  /// `ipcperms` for the owner (the caller owns every segment): `want` (read 4, write 2,
  /// execute 1) against the mode's owner bits.
  private func permits(_ s: Segment, _ want: UInt32) -> Bool { want & ~(s.mode >> 6) & 0o7 == 0 }

  /// The segment `shmat` maps for `id`, after the permission check for `want` (read 4, write
  /// 2, execute 1), counted as attaching until `endAttach`: as `do_shmat` raises `shm_nattch`
  /// under the lock before it maps, an `IPC_RMID` meanwhile leaves the segment for the attach
  /// to map and count.
  func beginAttach(_ id: Int32, want: UInt32) throws(Errno) -> Segment {
    try lock.withLock { () throws(Errno) -> Segment in
      let s = try lookupLocked(id)
      if !permits(s, want) { throw Errno.permissionDenied }
      s.pendingAttaches += 1
      return s
    }
  }

  /// The end of `beginAttach`'s attach, mapped or failed (`do_shmat`'s `shm_nattch--` and
  /// `shm_may_destroy`): a removed segment nothing maps now goes.
  func endAttach(_ s: Segment) {
    lock.withLock {
      s.pendingAttaches -= 1
      prune()
    }
  }

  /// `shmctl(id, cmd)`: the segment's state for `IPC_STAT`/`SHM_STAT`, `nil` for a command that
  /// fills no buffer. `IPC_INFO`/`SHM_INFO` return the highest index in use through `result`.
  func control(_ id: Int32, _ cmd: ShmctlCommand) throws(Errno) -> (ShmidDS?, Int32) {
    try lock.withLock { () throws(Errno) -> (ShmidDS?, Int32) in
      prune()
      switch cmd {
      case .info, .shmInfo:
        return (nil, Int32(segments.keys.max() ?? 0))
      case .shmStat, .shmStatAny:
        guard id >= 0, let s = segments[Int(id)] else { throw Errno.invalidArgument }
        // shm_stat: SHM_STAT_ANY skips ipcperms.
        if cmd == .shmStat && !permits(s, 0o4) { throw Errno.permissionDenied }
        return (stat(s), s.id)
      default:
        break
      }
      let s = try lookupLocked(id)
      switch cmd {
      case .stat:
        if !permits(s, 0o4) { throw Errno.permissionDenied }
        return (stat(s), 0)
      case .set: return (nil, 0)
      case .lock:
        s.locked = true
        return (nil, 0)
      case .unlock:
        s.locked = false
        return (nil, 0)
      case .remove:
        // do_shm_rmid: gone now when nothing maps it, else IPC_PRIVATE and SHM_DEST.
        s.destroyed = true
        s.key = ShmFlags.ipcPrivate
        prune()
        return (nil, 0)
      default:
        throw Errno.invalidArgument
      }
    }
  }

  private func stat(_ s: Segment) -> ShmidDS {
    var mode = s.mode
    if s.destroyed { mode |= Self.destMode }
    if s.locked { mode |= Self.lockedMode }
    return ShmidDS(key: s.key, size: s.size, mode: mode, attachments: s.object.mappingCount)
  }

  /// The size of segment `id` (`shm_segsz`) without the read-permission check `IPC_STAT`
  /// makes: what a replay learns after `shmat` to know the range it mapped. `nil` for no such
  /// segment.
  public func segmentSize(_ id: Int32) -> UInt64? {
    lock.withLock { try? lookupLocked(id).size }
  }

  /// The ids of the segments that exist now (`ipcs -m`), in index order.
  public var ids: [Int32] {
    lock.withLock {
      prune()
      return segments.keys.sorted().compactMap { segments[$0]?.id }
    }
  }
}

/// What `shmctl(IPC_STAT)` reports (`struct shmid64_ds`, the fields Faultline models).
public struct ShmidDS: Equatable, Sendable {
  /// `shm_perm.__key`: `IPC_PRIVATE` (0) once removed.
  public var key: Int32
  /// `shm_segsz`.
  public var size: UInt64
  /// `shm_perm.mode`: the permission bits, with `SHM_DEST` (0o1000) once removed and
  /// `SHM_LOCKED` (0o2000) while locked.
  public var mode: UInt32
  /// `shm_nattch`: VMAs mapping the segment, in every address space.
  public var attachments: Int

  /// A buffer with these fields.
  public init(key: Int32, size: UInt64, mode: UInt32, attachments: Int) {
    self.key = key
    self.size = size
    self.mode = mode
    self.attachments = attachments
  }
}
