/// Conformance sequences in the replay format of DESIGN.md section 6 (strace's syntax plus the
/// `load`, `store`, `maps` and `wrpkru` pseudo-calls): each op and its result become a
/// `ScriptCall`, printed by FaultlineReplay's `ScriptPrinter` with the names of Faultline's
/// `FlagNames`, so that what `faultline conform` prints `faultline replay` reads back.

import Faultline
import FaultlineReplay

extension ScriptPrinter {
  /// The script of `ops` with their (host) `results`: one line per call; a `maps() =` result is
  /// followed by its lines and a blank line; a signal also gets strace's `--- SIG… {…} ---` line.
  public static func script(_ ops: [ConformOp], _ results: [ConformResult]) -> String {
    print(ReplayScript(ops, results))
  }
}

extension ReplayScript {
  /// The calls of `ops` with their `results`, numbered by the line each starts on in print.
  public init(_ ops: [ConformOp], _ results: [ConformResult]) {
    var entries: [ScriptEntry] = []
    var line = 1
    for (op, r) in zip(ops, results) {
      let call = op.scriptCall(r)
      entries.append(ScriptEntry(line: line, call: call))
      line += 1 + (call.signal == nil ? 0 : 1)
      if case .maps(let lines) = call.result { line += lines.count + 1 }
    }
    self.init(entries: entries)
  }
}

extension ConformOp {
  /// The call without its result, for messages: `mmap(0x…, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)`
  /// (mincore's vector is `VEC`).
  public var callText: String {
    name + "(" + arguments(vector: nil).map(ScriptPrinter.argument).joined(separator: ", ") + ")"
  }

  /// A result as a message writes it after ` = `: as the script does, but for mincore's vector
  /// (`0 [1, 0]`) and maps (`3 maps lines`).
  func resultText(_ r: ConformResult) -> String {
    switch r {
    case .vector(let v): "0 [" + v.map { String($0) }.joined(separator: ", ") + "]"
    case .maps(let lines): "\(lines.count) maps lines"
    default: ScriptPrinter.result(recorded(r))
    }
  }

  /// The op with its result as the replay model holds it.
  func scriptCall(_ r: ConformResult) -> ScriptCall {
    var vector: [UInt8]?
    if case .mincore = self, case .vector(let v) = r { vector = v }
    var call = ScriptCall(name: name, arguments: arguments(vector: vector), result: recorded(r))
    if case .access(let s?, let at, _) = r { call.signal = SignalRecord(signal: s.name, code: s.codeName, address: at) }
    return call
  }

  /// The result after ` = `; a result of another op's kind (not produced by a run) is written as
  /// a message writes it.
  func recorded(_ r: ConformResult) -> RecordedResult {
    switch (self, r) {
    case (.maps, .maps(let lines)): return .maps(lines)
    case (.mincore, .vector): return .value(Number(0))
    case (.mmap, .returned(let v)), (.mremap, .returned(let v)), (.shmat, .returned(let v)): return .value(.hex(v))
    case (.brk, .returned(let v)): return .value(.hex(Self.heapBase &+ v))
    case (_, .returned(let v)): return .value(signed(Int64(bitPattern: v)))
    case (_, .failed(let e)):
      let errno = Errno(rawValue: e)
      return .error(name: Symbols.name(of: errno), message: Symbols.message(of: errno))
    case (_, .access(let s, _, _)):
      switch s {
      case nil: return .access(.ok)
      case .sigsegv: return .access(.sigsegv)
      case .sigbus: return .access(.sigbus)
      }
    case (_, .vector), (_, .maps): return .raw(resultText(r))
    }
  }

  /// Where a script puts the initial break: the engine's `start_brk`, so that the script
  /// replays on the engine as it ran there (the host child's heap is elsewhere; its results are
  /// relative to its own initial break).
  static let heapBase = AddressSpaceConfig(profile: .reference).startBrk

  /// The arguments as strace prints them; mincore's vector is `VEC` when `vector` is `nil`.
  func arguments(vector: [UInt8]?) -> [CallArgument] {
    switch self {
    case .mmap(let addr, let length, let prot, let flags):
      return [
        addr == 0 ? .null : .number(.hex(addr)), .number(Number(length)), protArgument(prot),
        .flags(Symbols.mmapFlags(bits(flags))), .number(signed(-1)), .number(Number(0)),
      ]
    case .munmap(let addr, let length), .mlock(let addr, let length), .munlock(let addr, let length),
      .load(let addr, let length), .store(let addr, let length, _):
      return [.number(.hex(addr)), .number(Number(length))]
    case .mprotect(let addr, let length, let prot):
      return [.number(.hex(addr)), .number(Number(length)), protArgument(prot)]
    case .madvise(let addr, let length, let advice):
      let a: CallArgument =
        if let name = Symbols.name(of: bits(advice), in: FlagNames.madvise) {
          .flags([.name(name)])
        } else if advice < 0 {
          .number(signed(Int64(advice)))
        } else {
          .raw("0x" + hex(bits(advice)) + " /* MADV_??? */")
        }
      return [.number(.hex(addr)), .number(Number(length)), a]
    case .mremap(let old, let oldSize, let newSize, let flags, let newAddress):
      var args: [CallArgument] = [
        .number(.hex(old)), .number(Number(oldSize)), .number(Number(newSize)),
        .flags(Symbols.flags(bits(flags), FlagNames.mremap)),
      ]
      if flags & 2 != 0 { args.append(.number(.hex(newAddress))) }
      return args
    case .mlock2(let addr, let length, let flags):
      let f: CallArgument =
        if flags == 0 {
          .number(Number(0))
        } else if let name = Symbols.name(of: bits(flags), in: FlagNames.mlock2) {
          .flags([.name(name)])
        } else {
          .number(.hex(bits(flags)))
        }
      return [.number(.hex(addr)), .number(Number(length)), f]
    case .mincore(let addr, let length):
      let vec: CallArgument = vector.map { .array($0.map { .number(Number(UInt64($0))) }, truncated: false) } ?? .raw("VEC")
      return [.number(.hex(addr)), .number(Number(length)), vec]
    case .maps:
      return []
    case .pkeyAlloc(let flags, let rights):
      return [.number(flags == 0 ? Number(0) : .hex(flags)), .flags(Symbols.flags(rights, FlagNames.pkeyAccess))]
    case .pkeyFree(let key):
      return [.number(signed(Int64(key)))]
    case .pkeyMprotect(let addr, let length, let prot, let key):
      return [.number(.hex(addr)), .number(Number(length)), protArgument(prot), .number(signed(Int64(key)))]
    case .wrpkru(let value):
      return [.number(.hex(UInt64(value)))]
    case .shmget(let key, let size, let flags, _):
      let k: CallArgument = key == 0 ? .flags([.name("IPC_PRIVATE")]) : .number(.hex(bits(key)))
      return [k, .number(Number(size)), .flags(shmFlagsAtoms(bits(flags)))]
    case .shmat(let slot, let addr, let flags):
      let f: CallArgument = flags == 0 ? .number(Number(0)) : .flags(Symbols.flags(bits(flags), FlagNames.shmat))
      return [.number(signed(Int64(slot))), addr == 0 ? .null : .number(.hex(addr)), f]
    case .shmdt(let addr):
      return [.number(.hex(addr))]
    case .shmctl(let slot, let cmd):
      let c: CallArgument =
        if let name = Symbols.name(of: bits(cmd), in: FlagNames.shmctl) { .flags([.name(name)]) } else { .number(signed(Int64(cmd))) }
      return [.number(signed(Int64(slot))), c, .null]
    case .brk(let addr, let relative):
      return [!relative && addr == 0 ? .null : .number(.hex(relative ? Self.heapBase &+ addr : addr))]
    case .heapMunmap(let offset, let length):
      return [.number(.hex(Self.heapBase &+ offset)), .number(Number(length))]
    case .mseal(let addr, let length, let flags):
      return [.number(.hex(addr)), .number(Number(length)), .number(flags == 0 ? Number(0) : .hex(flags))]
    case .mlockall(let flags):
      return [.flags(Symbols.flags(bits(flags), FlagNames.mlockall))]
    case .munlockall:
      return []
    }
  }
}

/// shmget's flags as strace prints them: the names, then the permission bits in octal.
private func shmFlagsAtoms(_ v: UInt64) -> [FlagAtom] {
  var atoms = Symbols.flags(v & ~0o777, FlagNames.shmget).filter { $0 != .number(Number(0)) }
  if v & 0o777 != 0 || atoms.isEmpty { atoms.append(.number(Number(v & 0o777, style: .octal))) }
  return atoms
}

private func protArgument(_ prot: Int32) -> CallArgument { .flags(Symbols.flags(bits(prot), FlagNames.prot)) }

/// A 32-bit argument's bits as the tables hold them (no sign extension).
private func bits(_ v: Int32) -> UInt64 { UInt64(UInt32(bitPattern: v)) }

private func signed(_ v: Int64) -> Number { Number(v.magnitude, negative: v < 0) }
