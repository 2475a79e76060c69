/// What the system-call flag types share, in swift-system's style: each is the C `int` the call
/// takes (`rawValue`), so a constant, a `|` of constants, or a raw number (`Prot.read | 0x10`,
/// as a test of an unknown bit passes it) all reach the engine, which checks unknown bits itself.
public protocol SyscallFlags: RawRepresentable, ExpressibleByIntegerLiteral, Hashable, Sendable
where RawValue == Int32, IntegerLiteralType == Int32 {
  /// The flags whose C value is `rawValue`, unknown bits included.
  init(rawValue: Int32)
}

extension SyscallFlags {
  /// The flags whose C value is the literal.
  public init(integerLiteral value: Int32) { self.init(rawValue: value) }
}

extension SyscallFlags where Self: OptionSet {
  /// The union, spelled as in C (`PROT_READ | PROT_WRITE`).
  public static func | (lhs: Self, rhs: Self) -> Self { lhs.union(rhs) }
}

/// The `prot` argument of `mmap(2)`, `mprotect(2)` and `pkey_mprotect(2)` (`PROT_*`).
public struct Prot: OptionSet, SyscallFlags {
  /// The C value.
  public let rawValue: Int32
  /// The protection whose C value is `rawValue`.
  public init(rawValue: Int32) { self.rawValue = rawValue }
  /// `PROT_NONE`: no access.
  public static let none: Prot = []
  /// `PROT_READ`.
  public static let read = Prot(rawValue: 0x1)
  /// `PROT_WRITE`.
  public static let write = Prot(rawValue: 0x2)
  /// `PROT_EXEC`.
  public static let exec = Prot(rawValue: 0x4)
  /// `PROT_GROWSDOWN`: `mprotect` extends the change down to the start of a grows-down VMA.
  public static let growsDown = Prot(rawValue: 0x0100_0000)
  /// `PROT_GROWSUP`: the grows-up counterpart (no x86-64 VMA grows up).
  public static let growsUp = Prot(rawValue: 0x0200_0000)
}

/// The `flags` argument of `mmap(2)` (`MAP_*`, x86-64 values).
public struct MapFlags: OptionSet, SyscallFlags {
  /// The C value.
  public let rawValue: Int32
  /// The flags whose C value is `rawValue`.
  public init(rawValue: Int32) { self.rawValue = rawValue }
  /// `MAP_SHARED`.
  public static let shared = MapFlags(rawValue: 0x01)
  /// `MAP_PRIVATE`.
  public static let `private` = MapFlags(rawValue: 0x02)
  /// `MAP_SHARED_VALIDATE`: `MAP_SHARED` that refuses flags it does not know (`EOPNOTSUPP`).
  public static let sharedValidate = MapFlags(rawValue: 0x03)
  /// `MAP_DROPPABLE` (Linux 6.11): a mapping type for private anonymous memory whose pages the
  /// kernel may drop under memory pressure (they read back as zeros), not reserved, not dumped,
  /// and wiped in a `fork` child (`VM_DROPPABLE | VM_NORESERVE | VM_WIPEONFORK | VM_DONTDUMP`).
  /// Faultline has no reclaim, so its pages are never dropped: the one part of the semantics a
  /// program cannot rely on anyway.
  public static let droppable = MapFlags(rawValue: 0x08)
  /// `MAP_TYPE`: the mask of the mapping type (shared, private, shared-validate, droppable).
  public static let type = MapFlags(rawValue: 0x0f)
  /// `MAP_FIXED`.
  public static let fixed = MapFlags(rawValue: 0x10)
  /// `MAP_ANONYMOUS`.
  public static let anonymous = MapFlags(rawValue: 0x20)
  /// `MAP_32BIT` (x86-64): place the mapping in the low 2 GiB, searching bottom-up from 1 GiB
  /// (`find_start_end`). Only placement reads it: the VMA does not remember it, so a later
  /// `mremap` may move the mapping anywhere. Ignored with `MAP_FIXED`.
  public static let map32Bit = MapFlags(rawValue: 0x40)
  /// `MAP_GROWSDOWN`.
  public static let growsDown = MapFlags(rawValue: 0x0100)
  /// `MAP_DENYWRITE` (ignored, as Linux ignores it).
  public static let denyWrite = MapFlags(rawValue: 0x0800)
  /// `MAP_EXECUTABLE` (ignored, as Linux ignores it).
  public static let executable = MapFlags(rawValue: 0x1000)
  /// `MAP_LOCKED`.
  public static let locked = MapFlags(rawValue: 0x2000)
  /// `MAP_NORESERVE`.
  public static let noReserve = MapFlags(rawValue: 0x4000)
  /// `MAP_POPULATE`.
  public static let populate = MapFlags(rawValue: 0x8000)
  /// `MAP_NONBLOCK`.
  public static let nonBlock = MapFlags(rawValue: 0x10000)
  /// `MAP_STACK`.
  public static let stack = MapFlags(rawValue: 0x20000)
  /// `MAP_HUGETLB`.
  public static let hugeTLB = MapFlags(rawValue: 0x40000)
  /// `MAP_SYNC`.
  public static let sync = MapFlags(rawValue: 0x80000)
  /// `MAP_FIXED_NOREPLACE`.
  public static let fixedNoReplace = MapFlags(rawValue: 0x100000)
  /// `MAP_UNINITIALIZED`.
  public static let uninitialized = MapFlags(rawValue: 0x4000000)
  /// `LEGACY_MAP_MASK`: the flags `MAP_SHARED_VALIDATE` accepts without checking. It predates
  /// `MAP_FIXED_NOREPLACE`, which `MAP_SHARED_VALIDATE` therefore refuses (EOPNOTSUPP).
  public static let legacyMask: MapFlags = [
    .shared, .private, .fixed, .anonymous, .denyWrite, .executable, .uninitialized, .growsDown, .locked,
    .noReserve, .populate, .nonBlock, .stack, .hugeTLB,
  ]
}

/// The `advice` argument of `madvise(2)` (`MADV_*`): one value, not a set of bits.
public struct Advice: SyscallFlags {
  /// The C value.
  public let rawValue: Int32
  /// The advice whose C value is `rawValue` (an unknown one is `EINVAL`).
  public init(rawValue: Int32) { self.rawValue = rawValue }
  /// `MADV_NORMAL`.
  public static let normal = Advice(rawValue: 0)
  /// `MADV_RANDOM`.
  public static let random = Advice(rawValue: 1)
  /// `MADV_SEQUENTIAL`.
  public static let sequential = Advice(rawValue: 2)
  /// `MADV_WILLNEED`.
  public static let willNeed = Advice(rawValue: 3)
  /// `MADV_DONTNEED`.
  public static let dontNeed = Advice(rawValue: 4)
  /// `MADV_FREE`.
  public static let free = Advice(rawValue: 8)
  /// `MADV_REMOVE`.
  public static let remove = Advice(rawValue: 9)
  /// `MADV_DONTFORK`.
  public static let dontFork = Advice(rawValue: 10)
  /// `MADV_DOFORK`.
  public static let doFork = Advice(rawValue: 11)
  /// `MADV_MERGEABLE`.
  public static let mergeable = Advice(rawValue: 12)
  /// `MADV_UNMERGEABLE`.
  public static let unmergeable = Advice(rawValue: 13)
  /// `MADV_HUGEPAGE`.
  public static let hugePage = Advice(rawValue: 14)
  /// `MADV_NOHUGEPAGE`.
  public static let noHugePage = Advice(rawValue: 15)
  /// `MADV_DONTDUMP`.
  public static let dontDump = Advice(rawValue: 16)
  /// `MADV_DODUMP`.
  public static let doDump = Advice(rawValue: 17)
  /// `MADV_WIPEONFORK`.
  public static let wipeOnFork = Advice(rawValue: 18)
  /// `MADV_KEEPONFORK`.
  public static let keepOnFork = Advice(rawValue: 19)
  /// `MADV_COLD`.
  public static let cold = Advice(rawValue: 20)
  /// `MADV_PAGEOUT`.
  public static let pageOut = Advice(rawValue: 21)
  /// `MADV_POPULATE_READ`.
  public static let populateRead = Advice(rawValue: 22)
  /// `MADV_POPULATE_WRITE`.
  public static let populateWrite = Advice(rawValue: 23)
  /// `MADV_DONTNEED_LOCKED`.
  public static let dontNeedLocked = Advice(rawValue: 24)
  /// `MADV_COLLAPSE`.
  public static let collapse = Advice(rawValue: 25)
  /// `MADV_HWPOISON`.
  public static let hwPoison = Advice(rawValue: 100)
  /// `MADV_SOFT_OFFLINE`.
  public static let softOffline = Advice(rawValue: 101)
  /// `MADV_GUARD_INSTALL` (Linux 6.13): every page of the range becomes a guard page, whose
  /// access is `SIGSEGV`; pages there are dropped first.
  public static let guardInstall = Advice(rawValue: 102)
  /// `MADV_GUARD_REMOVE` (Linux 6.13): the range's guard pages become ordinary empty entries.
  public static let guardRemove = Advice(rawValue: 103)
}

/// The `flags` argument of `mremap(2)` (`MREMAP_*`).
public struct MremapFlags: OptionSet, SyscallFlags {
  /// The C value.
  public let rawValue: Int32
  /// The flags whose C value is `rawValue`.
  public init(rawValue: Int32) { self.rawValue = rawValue }
  /// `MREMAP_MAYMOVE`.
  public static let mayMove = MremapFlags(rawValue: 1)
  /// `MREMAP_FIXED`.
  public static let fixed = MremapFlags(rawValue: 2)
  /// `MREMAP_DONTUNMAP`.
  public static let dontUnmap = MremapFlags(rawValue: 4)
}

/// The `flags` argument of `msync(2)` (`MS_*`).
public struct MsyncFlags: OptionSet, SyscallFlags {
  /// The C value.
  public let rawValue: Int32
  /// The flags whose C value is `rawValue`.
  public init(rawValue: Int32) { self.rawValue = rawValue }
  /// `MS_ASYNC`: nothing more than the pages being dirty in the page cache, as since Linux 2.6.19.
  public static let async = MsyncFlags(rawValue: 1)
  /// `MS_INVALIDATE`: refuses locked memory (`EBUSY`).
  public static let invalidate = MsyncFlags(rawValue: 2)
  /// `MS_SYNC`: writes shared file pages back and syncs the file.
  public static let sync = MsyncFlags(rawValue: 4)
}

/// The `flags` argument of `mlock2(2)` (`MLOCK_*`); `mlock(2)` is no flags.
public struct MlockFlags: OptionSet, SyscallFlags {
  /// The C value.
  public let rawValue: Int32
  /// The flags whose C value is `rawValue`.
  public init(rawValue: Int32) { self.rawValue = rawValue }
  /// `MLOCK_ONFAULT`: lock pages as they are faulted in, without populating the range.
  public static let onFault = MlockFlags(rawValue: 1)
}

/// The `flags` argument of `mlockall(2)` (`MCL_*`): at least one of `current` and `future`.
public struct MlockallFlags: OptionSet, SyscallFlags {
  /// The C value.
  public let rawValue: Int32
  /// The flags whose C value is `rawValue`.
  public init(rawValue: Int32) { self.rawValue = rawValue }
  /// `MCL_CURRENT`: lock (and populate) every mapping there is now.
  public static let current = MlockallFlags(rawValue: 1)
  /// `MCL_FUTURE`: lock (and populate) every later mapping and heap growth (`mm->def_flags`).
  public static let future = MlockallFlags(rawValue: 2)
  /// `MCL_ONFAULT`: with `current` or `future`, lock without populating (`VM_LOCKONFAULT`).
  public static let onFault = MlockallFlags(rawValue: 4)
}

/// The `access_rights` argument of `pkey_alloc(2)` (`PKEY_DISABLE_*`). Linux takes an
/// `unsigned long` and refuses bits outside `PKEY_ACCESS_MASK` (`EINVAL`), so the C value is a
/// `UInt64`, unknown bits included, and a raw number (`0x4`) reaches the engine's check.
public struct PkeyAccessRights: OptionSet, ExpressibleByIntegerLiteral, Hashable, Sendable {
  /// The C value.
  public let rawValue: UInt64
  /// The rights whose C value is `rawValue`, unknown bits included.
  public init(rawValue: UInt64) { self.rawValue = rawValue }
  /// The rights whose C value is the literal.
  public init(integerLiteral value: UInt64) { self.init(rawValue: value) }
  /// `PKEY_DISABLE_ACCESS`: loads and stores through the key fault.
  public static let disableAccess = PkeyAccessRights(rawValue: 0x1)
  /// `PKEY_DISABLE_WRITE`: stores through the key fault.
  public static let disableWrite = PkeyAccessRights(rawValue: 0x2)
  /// `PKEY_ACCESS_MASK`: every right `pkey_alloc` accepts.
  public static let accessMask: PkeyAccessRights = [.disableAccess, .disableWrite]

  /// The union, spelled as in C (`PKEY_DISABLE_ACCESS | PKEY_DISABLE_WRITE`).
  public static func | (lhs: Self, rhs: Self) -> Self { lhs.union(rhs) }
}

/// The `shmflg` argument of `shmget(2)`: `IPC_CREAT`, `IPC_EXCL`, `SHM_HUGETLB`,
/// `SHM_NORESERVE`, and the permission bits (`0o600`) in the low nine bits.
public struct ShmFlags: OptionSet, SyscallFlags {
  /// The C value.
  public let rawValue: Int32
  /// The flags whose C value is `rawValue`.
  public init(rawValue: Int32) { self.rawValue = rawValue }
  /// `IPC_PRIVATE`: the key that always makes a new segment.
  public static let ipcPrivate: Int32 = 0
  /// `IPC_CREAT`: create the segment when the key has none.
  public static let create = ShmFlags(rawValue: 0o1000)
  /// `IPC_EXCL`: with `IPC_CREAT`, `EEXIST` when the key has a segment.
  public static let exclusive = ShmFlags(rawValue: 0o2000)
  /// `SHM_HUGETLB`: a segment of huge pages.
  public static let hugeTLB = ShmFlags(rawValue: 0o4000)
  /// `SHM_NORESERVE`: no swap reservation.
  public static let noReserve = ShmFlags(rawValue: 0o10000)
}

/// The `shmflg` argument of `shmat(2)` (`SHM_*`).
public struct ShmatFlags: OptionSet, SyscallFlags {
  /// The C value.
  public let rawValue: Int32
  /// The flags whose C value is `rawValue`.
  public init(rawValue: Int32) { self.rawValue = rawValue }
  /// `SHM_RDONLY`: attach read-only (the VMA cannot be made writable).
  public static let readOnly = ShmatFlags(rawValue: 0o10000)
  /// `SHM_RND`: round an unaligned address down to `SHMLBA`.
  public static let round = ShmatFlags(rawValue: 0o20000)
  /// `SHM_REMAP`: replace whatever is mapped at the address.
  public static let remap = ShmatFlags(rawValue: 0o40000)
  /// `SHM_EXEC`: attach executable.
  public static let exec = ShmatFlags(rawValue: 0o100000)
}

/// The `cmd` argument of `shmctl(2)`: one value, not a set of bits (`IPC_64` is not accepted on
/// x86-64, where the kernel does not parse an IPC version).
public struct ShmctlCommand: SyscallFlags {
  /// The C value.
  public let rawValue: Int32
  /// The command whose C value is `rawValue` (an unknown one is `EINVAL`).
  public init(rawValue: Int32) { self.rawValue = rawValue }
  /// `IPC_RMID`: remove the segment (now, or at its last detach).
  public static let remove = ShmctlCommand(rawValue: 0)
  /// `IPC_SET`: Faultline keeps no owner to change, and leaves the mode as it is.
  public static let set = ShmctlCommand(rawValue: 1)
  /// `IPC_STAT`.
  public static let stat = ShmctlCommand(rawValue: 2)
  /// `IPC_INFO`: returns the highest index in use.
  public static let info = ShmctlCommand(rawValue: 3)
  /// `SHM_LOCK`.
  public static let lock = ShmctlCommand(rawValue: 11)
  /// `SHM_UNLOCK`.
  public static let unlock = ShmctlCommand(rawValue: 12)
  /// `SHM_STAT`: `IPC_STAT` by index; returns the id.
  public static let shmStat = ShmctlCommand(rawValue: 13)
  /// `SHM_INFO`: returns the highest index in use.
  public static let shmInfo = ShmctlCommand(rawValue: 14)
  /// `SHM_STAT_ANY`: `SHM_STAT` without the read-permission check.
  public static let shmStatAny = ShmctlCommand(rawValue: 15)
}
