import Faultline

/// A call the replay executes, decoded from its arguments: what `ScriptCall` means to the
/// engine. Calls the engine does not model decode to `nil`.
///
/// Values wider than the engine's parameters are cut the way the kernel cuts them: prot, flags
/// and advice keep their low 32 bits, an fd is `(int)fd`, an offset is the 64-bit pattern.
public enum Operation: Equatable, Sendable {
  case mmap(addr: UInt64, length: UInt64, prot: Int32, flags: Int32, fd: Int32, offset: Int64)
  case munmap(addr: UInt64, length: UInt64)
  case mprotect(addr: UInt64, length: UInt64, prot: Int32)
  case madvise(addr: UInt64, length: UInt64, advice: Int32)
  case msync(addr: UInt64, length: UInt64, flags: Int32)
  case brk(UInt64)
  case mremap(oldAddress: UInt64, oldSize: UInt64, newSize: UInt64, flags: Int32, newAddress: UInt64)
  /// `mlock` (flags 0) and `mlock2`.
  case mlock(addr: UInt64, length: UInt64, flags: Int32)
  case munlock(addr: UInt64, length: UInt64)
  /// The recorded vector as far as strace printed it (`nil` on failure: `NULL` or an address).
  case mincore(addr: UInt64, length: UInt64, vector: [UInt8]?)
  case load(addr: UInt64, length: UInt64)
  case store(addr: UInt64, length: UInt64)
  case maps
  /// `open(PATH, FLAGS[, MODE])` and `openat(DIRFD, PATH, FLAGS[, MODE])`.
  case open(path: String, flags: Int32)
  case ftruncate(fd: Int32, length: UInt64)
  case close(fd: Int32)
  /// `execve`/`execveat`: the pid's next call starts a new program (address space).
  case exec
  /// `clone`/`clone3`/`fork`/`vfork`: the recorded result is the child's pid; `sharesVM` when
  /// the child runs in the same address space (`CLONE_VM`: a thread, or `vfork`).
  case clone(sharesVM: Bool)
  /// `pkey_alloc(flags, access_rights)`; both are `unsigned long`.
  case pkeyAlloc(flags: UInt64, accessRights: UInt64)
  /// `pkey_free(pkey)`.
  case pkeyFree(pkey: Int32)
  /// `pkey_mprotect(addr, len, prot, pkey)`.
  case pkeyMprotect(addr: UInt64, length: UInt64, prot: Int32, pkey: Int32)
  /// The `wrpkru(VALUE) = 0` pseudo-call: the thread's PKRU becomes the low 32 bits of VALUE.
  case wrpkru(UInt32)
  /// `shmget(key, size, shmflg)`; the result is a recorded segment id.
  case shmget(key: Int32, size: UInt64, flags: Int32)
  /// `shmat(shmid, shmaddr, shmflg)`, with a recorded id.
  case shmat(id: Int32, addr: UInt64, flags: Int32)
  /// `shmdt(shmaddr)`.
  case shmdt(addr: UInt64)
  /// `shmctl(shmid, cmd, buf)`, with a recorded id; for `IPC_STAT` the `shm_segsz` and
  /// `shm_nattch` strace printed, when it did.
  case shmctl(id: Int32, cmd: Int32, segsz: UInt64?, nattch: UInt64?)

  /// Why a modelled call's arguments or result do not fit it.
  public struct DecodeError: Error, Sendable {
    public let message: String
  }

  /// The names `decode` knows; any other call is unmodelled.
  public static let modelledNames: Set<String> = [
    "mmap", "munmap", "mprotect", "madvise", "msync", "brk", "mremap", "mlock", "mlock2", "munlock", "mincore",
    "load", "store", "maps", "open", "openat", "ftruncate", "close", "execve", "execveat", "clone", "clone3", "fork", "vfork",
    "pkey_alloc", "pkey_free", "pkey_mprotect", "wrpkru", "shmget", "shmat", "shmdt", "shmctl",
  ]

  /// Decodes `call`, or returns `nil` for a call the engine does not model.
  /// - Throws: a message when a modelled call has the wrong arguments or result form.
  public static func decode(_ call: ScriptCall) throws(DecodeError) -> Operation? {
    guard modelledNames.contains(call.name) else { return nil }
    if call.unfinished { return nil }
    let d = Decoder(call: call)
    let op: Operation
    switch call.name {
    case "mmap":
      try d.count(6)
      op = .mmap(
        addr: try d.address(0), length: try d.integer(1), prot: try d.flags(2, Symbols.prot),
        flags: try d.flags(3, Symbols.map), fd: try d.int32(4), offset: Int64(bitPattern: try d.integer(5)))
    case "munmap":
      try d.count(2)
      op = .munmap(addr: try d.address(0), length: try d.integer(1))
    case "mprotect":
      try d.count(3)
      op = .mprotect(addr: try d.address(0), length: try d.integer(1), prot: try d.flags(2, Symbols.prot))
    case "madvise":
      try d.count(3)
      op = .madvise(addr: try d.address(0), length: try d.integer(1), advice: try d.flags(2, Symbols.madv))
    case "msync":
      try d.count(3)
      op = .msync(addr: try d.address(0), length: try d.integer(1), flags: try d.flags(2, Symbols.ms))
    case "brk":
      try d.count(1)
      op = .brk(try d.address(0))
    case "mremap":
      if call.arguments.count == 4 {
        op = .mremap(
          oldAddress: try d.address(0), oldSize: try d.integer(1), newSize: try d.integer(2),
          flags: try d.flags(3, Symbols.mremap), newAddress: 0)
      } else {
        try d.count(5)
        op = .mremap(
          oldAddress: try d.address(0), oldSize: try d.integer(1), newSize: try d.integer(2),
          flags: try d.flags(3, Symbols.mremap), newAddress: try d.address(4))
      }
    case "mlock":
      try d.count(2)
      op = .mlock(addr: try d.address(0), length: try d.integer(1), flags: 0)
    case "mlock2":
      try d.count(3)
      op = .mlock(addr: try d.address(0), length: try d.integer(1), flags: try d.flags(2, Symbols.mlock))
    case "munlock":
      try d.count(2)
      op = .munlock(addr: try d.address(0), length: try d.integer(1))
    case "mincore":
      try d.count(3)
      op = .mincore(addr: try d.address(0), length: try d.integer(1), vector: try d.byteVector(2))
    case "load", "store":
      try d.count(2)
      let (a, n) = (try d.address(0), try d.integer(1))
      op = call.name == "load" ? .load(addr: a, length: n) : .store(addr: a, length: n)
    case "maps":
      try d.count(0)
      op = .maps
    case "open", "openat":
      // openat's directory fd is left aside: a traced program's open takes the recorded result
      // (`ReplayExecutor`), and an op script's paths are absolute.
      let at = call.name == "openat" ? 1 : 0
      guard call.arguments.count == at + 2 || call.arguments.count == at + 3 else {
        throw DecodeError(message: "\(call.name) takes \(at + 2) or \(at + 3) arguments, not \(call.arguments.count)")
      }
      guard case .string(let path, false) = call.arguments[at] else {
        throw DecodeError(message: "\(call.name): argument \(at + 1) must be a complete quoted path")
      }
      op = .open(path: path, flags: try d.flags(at + 1, Symbols.open))
    case "ftruncate":
      try d.count(2)
      op = .ftruncate(fd: try d.int32(0), length: try d.integer(1))
    case "close":
      try d.count(1)
      op = .close(fd: try d.int32(0))
    case "pkey_alloc":
      try d.count(2)
      op = .pkeyAlloc(flags: try d.flagBits(0, [:]), accessRights: try d.flagBits(1, Symbols.pkeyAccess))
    case "pkey_free":
      try d.count(1)
      op = .pkeyFree(pkey: try d.int32(0))
    case "pkey_mprotect":
      try d.count(4)
      op = .pkeyMprotect(
        addr: try d.address(0), length: try d.integer(1), prot: try d.flags(2, Symbols.prot), pkey: try d.int32(3))
    case "wrpkru":
      try d.count(1)
      op = .wrpkru(UInt32(truncatingIfNeeded: try d.integer(0)))
    case "shmget":
      try d.count(3)
      op = .shmget(key: try d.flags(0, Symbols.ipcKey), size: try d.integer(1), flags: try d.flags(2, Symbols.shmget))
    case "shmat":
      try d.count(3)
      op = .shmat(id: try d.int32(0), addr: try d.address(1), flags: try d.flags(2, Symbols.shmat))
    case "shmdt":
      try d.count(1)
      op = .shmdt(addr: try d.address(0))
    case "shmctl":
      try d.count(3)
      var segsz: UInt64?, nattch: UInt64?
      if case .raw(let text) = call.arguments[2] {
        segsz = Self.field("shm_segsz", in: text)
        nattch = Self.field("shm_nattch", in: text)
      }
      op = .shmctl(id: try d.int32(0), cmd: try d.flags(1, Symbols.shmctl), segsz: segsz, nattch: nattch)
    case "execve", "execveat":
      return .exec
    case "vfork":
      return .clone(sharesVM: true)
    case "fork":
      return .clone(sharesVM: false)
    default:  // clone, clone3
      let text = call.arguments.map(ScriptPrinter.argument).joined(separator: ", ")
      return .clone(sharesVM: text.contains("CLONE_VM"))
    }
    try d.checkResult()
    return op
  }

  /// The number after `name=` in a structure strace printed (`shm_nattch=1`), or `nil`.
  static func field(_ name: String, in text: String) -> UInt64? {
    let key = name + "="
    for part in text.split(whereSeparator: { $0 == "," || $0 == "{" || $0 == " " }) where part.hasPrefix(key) {
      return UInt64(part.dropFirst(key.count).prefix { $0.isNumber })
    }
    return nil
  }

  /// Reads a call's arguments by position, with messages that name the argument.
  private struct Decoder {
    let call: ScriptCall

    func count(_ n: Int) throws(DecodeError) {
      if call.arguments.count != n {
        throw DecodeError(message: "\(call.name) takes \(n) argument\(n == 1 ? "" : "s"), not \(call.arguments.count)")
      }
    }

    func fail(_ i: Int, _ what: String) -> DecodeError {
      DecodeError(message: "\(call.name): argument \(i + 1) must be \(what)")
    }

    /// Argument `i`, a number or flags with strace's comments read as the value they name
    /// (`CallSyntax.uncommented`).
    func argument(_ i: Int) -> CallArgument {
      guard case .raw(let text) = call.arguments[i] else { return call.arguments[i] }
      return CallSyntax.uncommented(text) ?? call.arguments[i]
    }

    /// A number or `NULL`.
    func address(_ i: Int) throws(DecodeError) -> UInt64 {
      switch argument(i) {
      case .null: return 0
      case .number(let n): return n.bits
      default: throw fail(i, "an address or NULL")
      }
    }

    func integer(_ i: Int) throws(DecodeError) -> UInt64 {
      guard case .number(let n) = argument(i) else { throw fail(i, "a number") }
      return n.bits
    }

    func int32(_ i: Int) throws(DecodeError) -> Int32 { Int32(truncatingIfNeeded: try integer(i)) }

    /// Symbolic flags from `table`, or a number, cut to an `int`.
    func flags(_ i: Int, _ table: [String: UInt64]) throws(DecodeError) -> Int32 {
      Int32(truncatingIfNeeded: try flagBits(i, table))
    }

    /// Symbolic flags from `table`, or a number, for an `unsigned long` argument.
    func flagBits(_ i: Int, _ table: [String: UInt64]) throws(DecodeError) -> UInt64 {
      switch argument(i) {
      case .number(let n):
        return n.bits
      case .flags(let atoms):
        switch Symbols.resolve(atoms, in: table) {
        case .success(let v): return v
        case .failure(let e): throw DecodeError(message: "\(call.name): unknown flag \(e.name) in argument \(i + 1)")
        }
      default:
        throw fail(i, "flags or a number")
      }
    }

    /// mincore's vector: `[1, 0, …]`, or `nil` for `NULL`/an address (a failed call).
    func byteVector(_ i: Int) throws(DecodeError) -> [UInt8]? {
      switch call.arguments[i] {
      case .null, .number: return nil
      case .array(let items, _):
        var out: [UInt8] = []
        for item in items {
          guard case .number(let n) = item, !n.negative, let b = UInt8(exactly: n.magnitude) else {
            throw fail(i, "an array of bytes")
          }
          out.append(b)
        }
        return out
      default:
        throw fail(i, "an array of bytes, an address or NULL")
      }
    }

    /// The result forms the call may have.
    func checkResult() throws(DecodeError) {
      switch (call.name, call.result) {
      case ("load", .access), ("store", .access), ("maps", .maps): return
      case ("load", _), ("store", _):
        throw DecodeError(message: "\(call.name): the result must be ok, SIGSEGV or SIGBUS")
      case (_, .value), (_, .unknown): return
      case (_, .error(let name, _)):
        if Symbols.errno(named: name) == nil { throw DecodeError(message: "\(call.name): unknown errno \(name)") }
      default:
        throw DecodeError(message: "\(call.name): the result must be a number, '-1 ERRNO (message)' or '?'")
      }
    }
  }
}
