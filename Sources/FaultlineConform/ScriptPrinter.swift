/// Writes ops and their results in the replay format of DESIGN.md section 6: strace's syntax
/// plus the `load`, `store`, `maps` and `wrpkru` pseudo-calls.
public enum ScriptPrinter {
  /// The script of `ops` with their (host) `results`: one line per call; a `maps() =` result is
  /// followed by its lines and a blank line; a signal also gets strace's `--- SIG… {…} ---` line.
  public static func script(_ ops: [ConformOp], _ results: [ConformResult]) -> String {
    var out = ""
    for (op, r) in zip(ops, results) { out += line(op, r) }
    return out
  }

  /// One call with its result (with a trailing newline; several lines for maps and signals).
  public static func line(_ op: ConformOp, _ r: ConformResult) -> String {
    switch (op, r) {
    case (.maps, .maps(let lines)):
      return "maps() = \n" + lines.map { $0 + "\n" }.joined() + "\n"
    case (.mincore(let addr, let length), .vector(let v)):
      return "mincore(0x\(hex(addr)), \(length), [" + v.map { String($0) }.joined(separator: ", ") + "]) = 0\n"
    case (_, .access(let s?, let at, _)):
      return "\(call(op)) = \(s.name)\n--- \(s.name) {si_signo=\(s.name), si_code=\(s.codeName), si_addr=0x\(hex(at))} ---\n"
    default:
      return "\(call(op)) = \(resultText(op, r))\n"
    }
  }

  /// The call without its result: `mmap(0x…, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)`.
  public static func call(_ op: ConformOp) -> String {
    switch op {
    case .mmap(let addr, let length, let prot, let flags):
      return "mmap(\(addr == 0 ? "NULL" : "0x" + hex(addr)), \(length), \(protText(prot)), \(mapFlagsText(flags)), -1, 0)"
    case .munmap(let addr, let length): return "munmap(0x\(hex(addr)), \(length))"
    case .mprotect(let addr, let length, let prot): return "mprotect(0x\(hex(addr)), \(length), \(protText(prot)))"
    case .madvise(let addr, let length, let advice): return "madvise(0x\(hex(addr)), \(length), \(adviceText(advice)))"
    case .mremap(let old, let oldSize, let newSize, let flags, let newAddress):
      var s = "mremap(0x\(hex(old)), \(oldSize), \(newSize), \(mremapFlagsText(flags))"
      if flags & 2 != 0 { s += ", 0x\(hex(newAddress))" }
      return s + ")"
    case .mlock(let addr, let length): return "mlock(0x\(hex(addr)), \(length))"
    case .mlock2(let addr, let length, let flags):
      return "mlock2(0x\(hex(addr)), \(length), \(flags == 1 ? "MLOCK_ONFAULT" : flags == 0 ? "0" : "0x" + hex(UInt64(UInt32(bitPattern: flags)))))"
    case .munlock(let addr, let length): return "munlock(0x\(hex(addr)), \(length))"
    case .mincore(let addr, let length): return "mincore(0x\(hex(addr)), \(length), VEC)"
    case .load(let addr, let length): return "load(0x\(hex(addr)), \(length))"
    case .store(let addr, let length, _): return "store(0x\(hex(addr)), \(length))"
    case .maps: return "maps()"
    case .pkeyAlloc(let flags, let rights):
      return "pkey_alloc(\(flags == 0 ? "0" : "0x" + hex(flags)), \(pkeyRightsText(rights)))"
    case .pkeyFree(let key): return "pkey_free(\(key))"
    case .pkeyMprotect(let addr, let length, let prot, let key):
      return "pkey_mprotect(0x\(hex(addr)), \(length), \(protText(prot)), \(key))"
    case .wrpkru(let value): return "wrpkru(0x\(hex(UInt64(value))))"
    }
  }

  /// A result as strace writes it after ` = `.
  public static func resultText(_ op: ConformOp, _ r: ConformResult) -> String {
    switch r {
    case .returned(let v):
      switch op {
      case .mmap, .mremap: return "0x" + hex(v)
      default: return String(Int64(bitPattern: v))
      }
    case .failed(let e): return "-1 \(ErrnoNames.name(e)) (\(ErrnoNames.message(e)))"
    case .access(let s, _, _): return s?.name ?? "ok"
    case .vector(let v): return "0 [" + v.map { String($0) }.joined(separator: ", ") + "]"
    case .maps(let lines): return "\(lines.count) maps lines"
    }
  }

  static func protText(_ prot: Int32) -> String {
    flagsText(prot, [(0x1, "PROT_READ"), (0x2, "PROT_WRITE"), (0x4, "PROT_EXEC"), (0x8, "PROT_SEM"),
                     (0x0100_0000, "PROT_GROWSDOWN"), (0x0200_0000, "PROT_GROWSUP")], zero: "PROT_NONE")
  }

  /// `pkey_alloc`'s access rights as strace prints them (`0` for none).
  static func pkeyRightsText(_ rights: UInt64) -> String {
    var parts: [String] = []
    if rights & 1 != 0 { parts.append("PKEY_DISABLE_ACCESS") }
    if rights & 2 != 0 { parts.append("PKEY_DISABLE_WRITE") }
    if rights & ~3 != 0 { parts.append("0x" + hex(rights & ~3)) }
    return parts.isEmpty ? "0" : parts.joined(separator: "|")
  }

  static func mapFlagsText(_ flags: Int32) -> String {
    let types: [Int32: String] = [1: "MAP_SHARED", 2: "MAP_PRIVATE", 3: "MAP_SHARED_VALIDATE", 8: "MAP_DROPPABLE"]
    var parts: [String] = []
    let type = flags & 0xF
    if let t = types[type] { parts.append(t) } else if type != 0 { parts.append("0x" + hex(UInt64(type))) }
    let rest = flagsText(flags & ~0xF, [
      (0x10, "MAP_FIXED"), (0x20, "MAP_ANONYMOUS"), (0x40, "MAP_32BIT"), (0x100, "MAP_GROWSDOWN"),
      (0x800, "MAP_DENYWRITE"), (0x1000, "MAP_EXECUTABLE"), (0x2000, "MAP_LOCKED"), (0x4000, "MAP_NORESERVE"),
      (0x8000, "MAP_POPULATE"), (0x10000, "MAP_NONBLOCK"), (0x20000, "MAP_STACK"), (0x40000, "MAP_HUGETLB"),
      (0x80000, "MAP_SYNC"), (0x100000, "MAP_FIXED_NOREPLACE"), (0x4000000, "MAP_UNINITIALIZED"),
    ], zero: "")
    if !rest.isEmpty { parts.append(rest) }
    return parts.isEmpty ? "0" : parts.joined(separator: "|")
  }

  static func mremapFlagsText(_ flags: Int32) -> String {
    flagsText(flags, [(1, "MREMAP_MAYMOVE"), (2, "MREMAP_FIXED"), (4, "MREMAP_DONTUNMAP")], zero: "0")
  }

  static let adviceNames: [Int32: String] = [
    0: "MADV_NORMAL", 1: "MADV_RANDOM", 2: "MADV_SEQUENTIAL", 3: "MADV_WILLNEED", 4: "MADV_DONTNEED",
    8: "MADV_FREE", 9: "MADV_REMOVE", 10: "MADV_DONTFORK", 11: "MADV_DOFORK", 12: "MADV_MERGEABLE",
    13: "MADV_UNMERGEABLE", 14: "MADV_HUGEPAGE", 15: "MADV_NOHUGEPAGE", 16: "MADV_DONTDUMP", 17: "MADV_DODUMP",
    18: "MADV_WIPEONFORK", 19: "MADV_KEEPONFORK", 20: "MADV_COLD", 21: "MADV_PAGEOUT", 22: "MADV_POPULATE_READ",
    23: "MADV_POPULATE_WRITE", 24: "MADV_DONTNEED_LOCKED", 25: "MADV_COLLAPSE", 100: "MADV_HWPOISON",
    101: "MADV_SOFT_OFFLINE", 102: "MADV_GUARD_INSTALL", 103: "MADV_GUARD_REMOVE",
  ]

  static func adviceText(_ advice: Int32) -> String {
    adviceNames[advice] ?? (advice < 0 ? String(advice) : "0x" + hex(UInt64(advice)) + " /* MADV_??? */")
  }

  static func flagsText(_ value: Int32, _ names: [(Int32, String)], zero: String) -> String {
    if value == 0 { return zero }
    var parts: [String] = []
    var rest = value
    for (bit, name) in names where value & bit == bit {
      parts.append(name)
      rest &= ~bit
    }
    if rest != 0 { parts.append("0x" + hex(UInt64(UInt32(bitPattern: rest)))) }
    return parts.joined(separator: "|")
  }
}

/// errno names and strace's messages for the values the mm calls return.
enum ErrnoNames {
  static let table: [Int32: (String, String)] = [
    1: ("EPERM", "Operation not permitted"), 2: ("ENOENT", "No such file or directory"),
    4: ("EINTR", "Interrupted system call"), 9: ("EBADF", "Bad file descriptor"),
    11: ("EAGAIN", "Resource temporarily unavailable"), 12: ("ENOMEM", "Cannot allocate memory"),
    13: ("EACCES", "Permission denied"), 14: ("EFAULT", "Bad address"), 16: ("EBUSY", "Device or resource busy"),
    17: ("EEXIST", "File exists"), 19: ("ENODEV", "No such device"), 22: ("EINVAL", "Invalid argument"),
    38: ("ENOSYS", "Function not implemented"), 75: ("EOVERFLOW", "Value too large for defined data type"),
    28: ("ENOSPC", "No space left on device"), 95: ("EOPNOTSUPP", "Operation not supported"),
  ]
  static func name(_ e: Int32) -> String { table[e]?.0 ?? "E\(e)" }
  static func message(_ e: Int32) -> String { table[e]?.1 ?? "errno \(e)" }
}
