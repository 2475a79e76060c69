import Faultline

/// The symbolic constants strace prints for the memory calls, with Linux x86-64 values, and the
/// errno names. One table per argument kind: a name is looked up only where it can appear.
public enum Symbols {
  /// `PROT_*` (mmap, mprotect).
  public static let prot: [String: UInt64] = table(FlagNames.prot)

  /// `MAP_*` (mmap), including the `MAP_HUGE_*` size encodings strace prints.
  public static let map: [String: UInt64] = table(FlagNames.mapTypes, FlagNames.mapFlags, FlagNames.mapInputOnly)

  /// `MADV_*` (madvise).
  public static let madv: [String: UInt64] = table(FlagNames.madvise)

  /// `MS_*` (msync).
  public static let ms: [String: UInt64] = table(FlagNames.msync)

  /// `MREMAP_*` (mremap).
  public static let mremap: [String: UInt64] = table(FlagNames.mremap)

  /// `MLOCK_*` (mlock2).
  public static let mlock: [String: UInt64] = table(FlagNames.mlock2)

  /// `IPC_PRIVATE` (shmget's key).
  public static let ipcKey: [String: UInt64] = table(FlagNames.ipcKey)

  /// `IPC_CREAT`, `IPC_EXCL`, `SHM_HUGETLB`, `SHM_NORESERVE` (shmget).
  public static let shmget: [String: UInt64] = table(FlagNames.shmget)

  /// `SHM_*` (shmat).
  public static let shmat: [String: UInt64] = table(FlagNames.shmat)

  /// `IPC_*`/`SHM_*` commands (shmctl).
  public static let shmctl: [String: UInt64] = table(FlagNames.shmctl)

  /// `PKEY_*` (pkey_alloc's access rights).
  public static let pkeyAccess: [String: UInt64] = table(FlagNames.pkeyAccess)

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

  /// `O_*` (open).
  public static let open: [String: UInt64] = table(FlagNames.open)

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

  /// A name → value lookup of Faultline's name tables (`FlagNames`), for the parser.
  static func table(_ families: [FlagName]...) -> [String: UInt64] {
    Dictionary(uniqueKeysWithValues: families.joined().map { ($0.name, $0.value) })
  }

  /// `value` as strace prints a set of flags: the names of `names` whose bits it holds, in order,
  /// then a hex number for the bits left over; a zero is the name `names` gives 0, else `0`.
  package static func flags(_ value: UInt64, _ names: [FlagName]) -> [FlagAtom] {
    if value == 0 { return [names.first { $0.value == 0 }.map { .name($0.name) } ?? .number(Number(0))] }
    var atoms: [FlagAtom] = []
    var rest = value
    for flag in names where flag.value != 0 && value & flag.value == flag.value {
      atoms.append(.name(flag.name))
      rest &= ~flag.value
    }
    if rest != 0 { atoms.append(.number(.hex(rest))) }
    return atoms
  }

  /// mmap's flags as strace prints them: the `MAP_TYPE` field's name (or its number), then the
  /// other bits as `flags` writes them; `0` when there are none.
  package static func mmapFlags(_ value: UInt64) -> [FlagAtom] {
    var atoms: [FlagAtom] = []
    let type = value & FlagNames.mapTypeMask
    if let name = name(of: type, in: FlagNames.mapTypes) {
      atoms.append(.name(name))
    } else if type != 0 {
      atoms.append(.number(.hex(type)))
    }
    let rest = value & ~FlagNames.mapTypeMask
    if rest != 0 { atoms += flags(rest, FlagNames.mapFlags) }
    return atoms.isEmpty ? [.number(Number(0))] : atoms
  }

  /// The name of `value` in a table of values (`MADV_*`, the `MAP_TYPE` field), or `nil`.
  package static func name(of value: UInt64, in names: [FlagName]) -> String? {
    names.first { $0.value == value }?.name
  }

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
