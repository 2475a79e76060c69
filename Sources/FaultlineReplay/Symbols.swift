import Faultline

/// The symbolic constants strace prints for the memory calls, with Linux x86-64 values, and the
/// errno names. One table per argument kind: a name is looked up only where it can appear.
public enum Symbols {
  /// `PROT_*` (mmap, mprotect).
  public static let prot: [String: UInt64] = [
    "PROT_NONE": 0, "PROT_READ": 0x1, "PROT_WRITE": 0x2, "PROT_EXEC": 0x4, "PROT_SEM": 0x8,
    "PROT_GROWSDOWN": 0x0100_0000, "PROT_GROWSUP": 0x0200_0000,
  ]

  /// `MAP_*` (mmap), including the `MAP_HUGE_*` size encodings strace prints.
  public static let map: [String: UInt64] = [
    "MAP_FILE": 0, "MAP_SHARED": 0x01, "MAP_PRIVATE": 0x02, "MAP_SHARED_VALIDATE": 0x03, "MAP_DROPPABLE": 0x08,
    "MAP_FIXED": 0x10, "MAP_ANONYMOUS": 0x20, "MAP_ANON": 0x20, "MAP_32BIT": 0x40, "MAP_GROWSDOWN": 0x100,
    "MAP_DENYWRITE": 0x800, "MAP_EXECUTABLE": 0x1000, "MAP_LOCKED": 0x2000, "MAP_NORESERVE": 0x4000,
    "MAP_POPULATE": 0x8000, "MAP_NONBLOCK": 0x10000, "MAP_STACK": 0x20000, "MAP_HUGETLB": 0x40000,
    "MAP_SYNC": 0x80000, "MAP_FIXED_NOREPLACE": 0x100000, "MAP_UNINITIALIZED": 0x400_0000,
    "MAP_HUGE_64KB": 16 << 26, "MAP_HUGE_512KB": 19 << 26, "MAP_HUGE_1MB": 20 << 26, "MAP_HUGE_2MB": 21 << 26,
    "MAP_HUGE_8MB": 23 << 26, "MAP_HUGE_16MB": 24 << 26, "MAP_HUGE_32MB": 25 << 26, "MAP_HUGE_256MB": 28 << 26,
    "MAP_HUGE_512MB": 29 << 26, "MAP_HUGE_1GB": 30 << 26, "MAP_HUGE_2GB": 31 << 26, "MAP_HUGE_16GB": 34 << 26,
  ]

  /// `MADV_*` (madvise).
  public static let madv: [String: UInt64] = [
    "MADV_NORMAL": 0, "MADV_RANDOM": 1, "MADV_SEQUENTIAL": 2, "MADV_WILLNEED": 3, "MADV_DONTNEED": 4,
    "MADV_FREE": 8, "MADV_REMOVE": 9, "MADV_DONTFORK": 10, "MADV_DOFORK": 11, "MADV_MERGEABLE": 12,
    "MADV_UNMERGEABLE": 13, "MADV_HUGEPAGE": 14, "MADV_NOHUGEPAGE": 15, "MADV_DONTDUMP": 16, "MADV_DODUMP": 17,
    "MADV_WIPEONFORK": 18, "MADV_KEEPONFORK": 19, "MADV_COLD": 20, "MADV_PAGEOUT": 21, "MADV_POPULATE_READ": 22,
    "MADV_POPULATE_WRITE": 23, "MADV_DONTNEED_LOCKED": 24, "MADV_COLLAPSE": 25, "MADV_HWPOISON": 100,
    "MADV_SOFT_OFFLINE": 101, "MADV_GUARD_INSTALL": 102, "MADV_GUARD_REMOVE": 103,
  ]

  /// `MS_*` (msync).
  public static let ms: [String: UInt64] = ["MS_ASYNC": 1, "MS_INVALIDATE": 2, "MS_SYNC": 4]

  /// `MREMAP_*` (mremap).
  public static let mremap: [String: UInt64] = ["MREMAP_MAYMOVE": 1, "MREMAP_FIXED": 2, "MREMAP_DONTUNMAP": 4]

  /// `MLOCK_*` (mlock2).
  public static let mlock: [String: UInt64] = ["MLOCK_ONFAULT": 1]

  /// `PKEY_*` (pkey_alloc's access rights).
  public static let pkeyAccess: [String: UInt64] = ["PKEY_DISABLE_ACCESS": 0x1, "PKEY_DISABLE_WRITE": 0x2]

  /// `si_code` names strace prints for SIGSEGV and SIGBUS (`asm-generic/siginfo.h`), by signal.
  public static let siCode: [String: [String: Int32]] = [
    "SIGSEGV": [
      "SEGV_MAPERR": 1, "SEGV_ACCERR": 2, "SEGV_BNDERR": 3, "SEGV_PKUERR": 4, "SEGV_ACCADI": 5, "SEGV_ADIDERR": 6,
      "SEGV_ADIPERR": 7, "SEGV_MTEAERR": 8, "SEGV_MTESERR": 9, "SEGV_CPERR": 10, "SI_KERNEL": 0x80,
    ],
    "SIGBUS": [
      "BUS_ADRALN": 1, "BUS_ADRERR": 2, "BUS_OBJERR": 3, "BUS_MCEERR_AR": 4, "BUS_MCEERR_AO": 5, "SI_KERNEL": 0x80,
    ],
  ]

  /// `O_*` (open), octal values from `asm-generic/fcntl.h`.
  public static let open: [String: UInt64] = [
    "O_RDONLY": 0, "O_WRONLY": 0o1, "O_RDWR": 0o2, "O_ACCMODE": 0o3, "O_CREAT": 0o100, "O_EXCL": 0o200,
    "O_NOCTTY": 0o400, "O_TRUNC": 0o1000, "O_APPEND": 0o2000, "O_NONBLOCK": 0o4000, "O_DSYNC": 0o10000,
    "O_ASYNC": 0o20000, "O_DIRECT": 0o40000, "O_LARGEFILE": 0o100000, "O_DIRECTORY": 0o200000,
    "O_NOFOLLOW": 0o400000, "O_NOATIME": 0o1000000, "O_CLOEXEC": 0o2000000, "O_SYNC": 0o4010000,
    "O_PATH": 0o10000000, "O_TMPFILE": 0o20200000,
  ]

  /// Linux's errno names and numbers (`asm-generic/errno-base.h`, `errno.h`), plus the
  /// aliases strace may print.
  public static let errnoNames: [(String, Int32)] = [
    ("EPERM", 1), ("ENOENT", 2), ("ESRCH", 3), ("EINTR", 4), ("EIO", 5), ("ENXIO", 6), ("E2BIG", 7),
    ("ENOEXEC", 8), ("EBADF", 9), ("ECHILD", 10), ("EAGAIN", 11), ("ENOMEM", 12), ("EACCES", 13),
    ("EFAULT", 14), ("ENOTBLK", 15), ("EBUSY", 16), ("EEXIST", 17), ("EXDEV", 18), ("ENODEV", 19),
    ("ENOTDIR", 20), ("EISDIR", 21), ("EINVAL", 22), ("ENFILE", 23), ("EMFILE", 24), ("ENOTTY", 25),
    ("ETXTBSY", 26), ("EFBIG", 27), ("ENOSPC", 28), ("ESPIPE", 29), ("EROFS", 30), ("EMLINK", 31),
    ("EPIPE", 32), ("EDOM", 33), ("ERANGE", 34), ("EDEADLK", 35), ("ENAMETOOLONG", 36), ("ENOLCK", 37),
    ("ENOSYS", 38), ("ENOTEMPTY", 39), ("ELOOP", 40), ("ENOMSG", 42), ("EIDRM", 43), ("ECHRNG", 44),
    ("EL2NSYNC", 45), ("EL3HLT", 46), ("EL3RST", 47), ("ELNRNG", 48), ("EUNATCH", 49), ("ENOCSI", 50),
    ("EL2HLT", 51), ("EBADE", 52), ("EBADR", 53), ("EXFULL", 54), ("ENOANO", 55), ("EBADRQC", 56),
    ("EBADSLT", 57), ("EBFONT", 59), ("ENOSTR", 60), ("ENODATA", 61), ("ETIME", 62), ("ENOSR", 63),
    ("ENONET", 64), ("ENOPKG", 65), ("EREMOTE", 66), ("ENOLINK", 67), ("EADV", 68), ("ESRMNT", 69),
    ("ECOMM", 70), ("EPROTO", 71), ("EMULTIHOP", 72), ("EDOTDOT", 73), ("EBADMSG", 74), ("EOVERFLOW", 75),
    ("ENOTUNIQ", 76), ("EBADFD", 77), ("EREMCHG", 78), ("ELIBACC", 79), ("ELIBBAD", 80), ("ELIBSCN", 81),
    ("ELIBMAX", 82), ("ELIBEXEC", 83), ("EILSEQ", 84), ("ERESTART", 85), ("ESTRPIPE", 86), ("EUSERS", 87),
    ("ENOTSOCK", 88), ("EDESTADDRREQ", 89), ("EMSGSIZE", 90), ("EPROTOTYPE", 91), ("ENOPROTOOPT", 92),
    ("EPROTONOSUPPORT", 93), ("ESOCKTNOSUPPORT", 94), ("EOPNOTSUPP", 95), ("EPFNOSUPPORT", 96),
    ("EAFNOSUPPORT", 97), ("EADDRINUSE", 98), ("EADDRNOTAVAIL", 99), ("ENETDOWN", 100), ("ENETUNREACH", 101),
    ("ENETRESET", 102), ("ECONNABORTED", 103), ("ECONNRESET", 104), ("ENOBUFS", 105), ("EISCONN", 106),
    ("ENOTCONN", 107), ("ESHUTDOWN", 108), ("ETOOMANYREFS", 109), ("ETIMEDOUT", 110), ("ECONNREFUSED", 111),
    ("EHOSTDOWN", 112), ("EHOSTUNREACH", 113), ("EALREADY", 114), ("EINPROGRESS", 115), ("ESTALE", 116),
    ("EUCLEAN", 117), ("ENOTNAM", 118), ("ENAVAIL", 119), ("EISNAM", 120), ("EREMOTEIO", 121),
    ("EDQUOT", 122), ("ENOMEDIUM", 123), ("EMEDIUMTYPE", 124), ("ECANCELED", 125), ("ENOKEY", 126),
    ("EKEYEXPIRED", 127), ("EKEYREVOKED", 128), ("EKEYREJECTED", 129), ("EOWNERDEAD", 130),
    ("ENOTRECOVERABLE", 131), ("ERFKILL", 132), ("EHWPOISON", 133),
  ]

  private static let errnoByName: [String: Int32] = {
    var d = Dictionary(uniqueKeysWithValues: errnoNames)
    d["EWOULDBLOCK"] = 11
    d["EDEADLOCK"] = 35
    d["ENOTSUP"] = 95
    return d
  }()

  private static let errnoByNumber: [Int32: String] = Dictionary(
    uniqueKeysWithValues: errnoNames.map { ($0.1, $0.0) })

  /// The errno a name stands for, or `nil`.
  public static func errno(named name: String) -> Errno? { errnoByName[name].map { Errno(rawValue: $0) } }

  /// The name strace prints for an errno (`EINVAL`), or `E<number>` for one it has no name for.
  public static func name(of errno: Errno) -> String { errnoByNumber[errno.rawValue] ?? "E\(errno.rawValue)" }

  /// The message strace prints in parentheses (glibc's `strerror`).
  public static func message(of errno: Errno) -> String { messages[errno.rawValue] ?? "Unknown error \(errno.rawValue)" }

  /// `strerror` for the errnos the memory calls return; others print their number.
  private static let messages: [Int32: String] = [
    1: "Operation not permitted", 2: "No such file or directory", 4: "Interrupted system call",
    5: "Input/output error", 9: "Bad file descriptor", 11: "Resource temporarily unavailable",
    12: "Cannot allocate memory", 13: "Permission denied", 14: "Bad address", 16: "Device or resource busy",
    17: "File exists", 19: "No such device", 20: "Not a directory", 21: "Is a directory", 22: "Invalid argument",
    23: "Too many open files in system", 24: "Too many open files", 26: "Text file busy", 27: "File too large",
    28: "No space left on device", 30: "Read-only file system", 38: "Function not implemented",
    75: "Value too large for defined data type", 95: "Operation not supported",
  ]

  /// Resolves a flag expression against `table`: names must be in it, numbers are or-ed in.
  /// Returns `nil` and the offending name when one is not.
  static func resolve(_ atoms: [FlagAtom], in table: [String: UInt64]) -> Result<UInt64, UnknownSymbol> {
    var v: UInt64 = 0
    for atom in atoms {
      switch atom {
      case .name(let n):
        guard let bits = table[n] else { return .failure(UnknownSymbol(name: n)) }
        v |= bits
      case .number(let n):
        v |= n.bits
      }
    }
    return .success(v)
  }
}

/// A flag name that is not in the table for its argument.
struct UnknownSymbol: Error {
  let name: String
}
