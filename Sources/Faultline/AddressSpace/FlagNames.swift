/// The C names of the mm calls' flag and constant arguments, with their Linux x86-64 values: the
/// one table the replay parser reads names with (`FaultlineReplay.Symbols`) and the conformance
/// check prints them with, so that a new flag is added here once. The engine itself takes the
/// values (`Prot`, `MapFlags`, `Advice`, …); the names are for the strace syntax.
///
/// One table per argument kind, each in the order strace prints the names.
package enum FlagNames {
  /// `PROT_*` (mmap, mprotect, pkey_mprotect; `asm-generic/mman-common.h`). `PROT_NONE` is what a
  /// zero prints as.
  package static let prot: [FlagName] = [
    FlagName("PROT_NONE", 0), FlagName("PROT_READ", 0x1), FlagName("PROT_WRITE", 0x2),
    FlagName("PROT_EXEC", 0x4), FlagName("PROT_SEM", 0x8), FlagName("PROT_GROWSDOWN", 0x0100_0000),
    FlagName("PROT_GROWSUP", 0x0200_0000),
  ]

  /// The mapping types of mmap's `MAP_TYPE` field (`flags & mapTypeMask`), each a value of the
  /// field rather than a bit (`linux/mman.h`, `uapi/linux/mman.h`).
  package static let mapTypes: [FlagName] = [
    FlagName("MAP_SHARED", 0x01), FlagName("MAP_PRIVATE", 0x02), FlagName("MAP_SHARED_VALIDATE", 0x03),
    FlagName("MAP_DROPPABLE", 0x08),
  ]

  /// The bits of mmap's `MAP_TYPE` field.
  package static let mapTypeMask: UInt64 = 0xF

  /// mmap's flag bits above the type field (`asm-generic/mman-common.h`, `asm/mman.h`).
  package static let mapFlags: [FlagName] = [
    FlagName("MAP_FIXED", 0x10), FlagName("MAP_ANONYMOUS", 0x20), FlagName("MAP_32BIT", 0x40),
    FlagName("MAP_GROWSDOWN", 0x100), FlagName("MAP_DENYWRITE", 0x800), FlagName("MAP_EXECUTABLE", 0x1000),
    FlagName("MAP_LOCKED", 0x2000), FlagName("MAP_NORESERVE", 0x4000), FlagName("MAP_POPULATE", 0x8000),
    FlagName("MAP_NONBLOCK", 0x10000), FlagName("MAP_STACK", 0x20000), FlagName("MAP_HUGETLB", 0x40000),
    FlagName("MAP_SYNC", 0x80000), FlagName("MAP_FIXED_NOREPLACE", 0x100000),
    FlagName("MAP_UNINITIALIZED", 0x400_0000),
  ]

  /// mmap names that a script may use but that are never printed: the zero `MAP_FILE`, the alias
  /// `MAP_ANON`, and the `MAP_HUGE_*` page-size encodings (log2 of the size, shifted by
  /// `MAP_HUGE_SHIFT`, 26) that strace prints.
  package static let mapInputOnly: [FlagName] = [
    FlagName("MAP_FILE", 0), FlagName("MAP_ANON", 0x20),
    FlagName("MAP_HUGE_64KB", 16 << 26), FlagName("MAP_HUGE_512KB", 19 << 26), FlagName("MAP_HUGE_1MB", 20 << 26),
    FlagName("MAP_HUGE_2MB", 21 << 26), FlagName("MAP_HUGE_8MB", 23 << 26), FlagName("MAP_HUGE_16MB", 24 << 26),
    FlagName("MAP_HUGE_32MB", 25 << 26), FlagName("MAP_HUGE_256MB", 28 << 26), FlagName("MAP_HUGE_512MB", 29 << 26),
    FlagName("MAP_HUGE_1GB", 30 << 26), FlagName("MAP_HUGE_2GB", 31 << 26), FlagName("MAP_HUGE_16GB", 34 << 26),
  ]

  /// `MADV_*` (madvise; `asm-generic/mman-common.h`): each a value, not a bit.
  package static let madvise: [FlagName] = [
    FlagName("MADV_NORMAL", 0), FlagName("MADV_RANDOM", 1), FlagName("MADV_SEQUENTIAL", 2),
    FlagName("MADV_WILLNEED", 3), FlagName("MADV_DONTNEED", 4), FlagName("MADV_FREE", 8),
    FlagName("MADV_REMOVE", 9), FlagName("MADV_DONTFORK", 10), FlagName("MADV_DOFORK", 11),
    FlagName("MADV_MERGEABLE", 12), FlagName("MADV_UNMERGEABLE", 13), FlagName("MADV_HUGEPAGE", 14),
    FlagName("MADV_NOHUGEPAGE", 15), FlagName("MADV_DONTDUMP", 16), FlagName("MADV_DODUMP", 17),
    FlagName("MADV_WIPEONFORK", 18), FlagName("MADV_KEEPONFORK", 19), FlagName("MADV_COLD", 20),
    FlagName("MADV_PAGEOUT", 21), FlagName("MADV_POPULATE_READ", 22), FlagName("MADV_POPULATE_WRITE", 23),
    FlagName("MADV_DONTNEED_LOCKED", 24), FlagName("MADV_COLLAPSE", 25), FlagName("MADV_HWPOISON", 100),
    FlagName("MADV_SOFT_OFFLINE", 101), FlagName("MADV_GUARD_INSTALL", 102), FlagName("MADV_GUARD_REMOVE", 103),
  ]

  /// `MS_*` (msync).
  package static let msync: [FlagName] = [FlagName("MS_ASYNC", 1), FlagName("MS_INVALIDATE", 2), FlagName("MS_SYNC", 4)]

  /// `MREMAP_*` (mremap).
  package static let mremap: [FlagName] = [
    FlagName("MREMAP_MAYMOVE", 1), FlagName("MREMAP_FIXED", 2), FlagName("MREMAP_DONTUNMAP", 4),
  ]

  /// `MLOCK_*` (mlock2).
  package static let mlock2: [FlagName] = [FlagName("MLOCK_ONFAULT", 1)]

  /// `PKEY_*` (pkey_alloc's access rights).
  package static let pkeyAccess: [FlagName] = [
    FlagName("PKEY_DISABLE_ACCESS", 0x1), FlagName("PKEY_DISABLE_WRITE", 0x2),
  ]

  /// `MCL_*` (mlockall).
  package static let mlockall: [FlagName] = [
    FlagName("MCL_CURRENT", 1), FlagName("MCL_FUTURE", 2), FlagName("MCL_ONFAULT", 4),
  ]

  /// shmget's key names (`IPC_PRIVATE`).
  package static let ipcKey: [FlagName] = [FlagName("IPC_PRIVATE", 0)]

  /// shmget's flags (`IPC_CREAT`, …); the permission bits print as an octal number after them.
  package static let shmget: [FlagName] = [
    FlagName("IPC_CREAT", 0o1000), FlagName("IPC_EXCL", 0o2000), FlagName("SHM_HUGETLB", 0o4000),
    FlagName("SHM_NORESERVE", 0o10000),
  ]

  /// shmat's flags (`SHM_*`).
  package static let shmat: [FlagName] = [
    FlagName("SHM_RDONLY", 0o10000), FlagName("SHM_RND", 0o20000), FlagName("SHM_REMAP", 0o40000),
    FlagName("SHM_EXEC", 0o100000),
  ]

  /// shmctl's commands: each a value, not a bit; `IPC_64` may be or-ed in.
  package static let shmctl: [FlagName] = [
    FlagName("IPC_RMID", 0), FlagName("IPC_SET", 1), FlagName("IPC_STAT", 2), FlagName("IPC_INFO", 3),
    FlagName("SHM_LOCK", 11), FlagName("SHM_UNLOCK", 12), FlagName("SHM_STAT", 13), FlagName("SHM_INFO", 14),
    FlagName("SHM_STAT_ANY", 15), FlagName("IPC_64", 0x100),
  ]

  /// `O_*` (open), octal values from `asm-generic/fcntl.h`.
  package static let open: [FlagName] = [
    FlagName("O_RDONLY", 0), FlagName("O_WRONLY", 0o1), FlagName("O_RDWR", 0o2), FlagName("O_ACCMODE", 0o3),
    FlagName("O_CREAT", 0o100), FlagName("O_EXCL", 0o200), FlagName("O_NOCTTY", 0o400), FlagName("O_TRUNC", 0o1000),
    FlagName("O_APPEND", 0o2000), FlagName("O_NONBLOCK", 0o4000), FlagName("O_DSYNC", 0o10000),
    FlagName("O_ASYNC", 0o20000), FlagName("O_DIRECT", 0o40000), FlagName("O_LARGEFILE", 0o100000),
    FlagName("O_DIRECTORY", 0o200000), FlagName("O_NOFOLLOW", 0o400000), FlagName("O_NOATIME", 0o1000000),
    FlagName("O_CLOEXEC", 0o2000000), FlagName("O_SYNC", 0o4010000), FlagName("O_PATH", 0o10000000),
    FlagName("O_TMPFILE", 0o20200000),
  ]
}

/// One C constant: its name as the headers and strace spell it, and its value.
package struct FlagName: Sendable {
  package let name: String
  package let value: UInt64

  package init(_ name: String, _ value: UInt64) {
    self.name = name
    self.value = value
  }
}
