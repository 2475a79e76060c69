/// The model of a replay script: the lines of an `strace -f` log (or a hand-written op script in
/// the same syntax), one call per entry, each with the result the kernel recorded.
///
/// Noise strace prints around calls (exit and signal lines, timings, comments, blank lines) is
/// not part of the model, except the signal line right after a load or store that ended with
/// that signal: it is the access's `si_code` and `si_addr` (`ScriptCall.signal`). An
/// `<unfinished ...>` / `<... resumed>` pair is one call, placed at the line where it started.
/// `ScriptPrinter` prints a script back in the same syntax.
public struct ReplayScript: Equatable, Sendable {
  /// The calls, in file order.
  public var entries: [ScriptEntry]

  public init(entries: [ScriptEntry] = []) { self.entries = entries }

  /// The calls without their line numbers (what a round trip through the printer preserves).
  public var calls: [ScriptCall] { entries.map(\.call) }
}

/// One call and the 1-based line it starts on.
public struct ScriptEntry: Equatable, Sendable {
  public var line: Int
  public var call: ScriptCall

  public init(line: Int, call: ScriptCall) {
    self.line = line
    self.call = call
  }
}

/// A system call (or pseudo-call) and its recorded result: `[pid  N] name(args) = result`.
public struct ScriptCall: Equatable, Sendable {
  /// The `[pid  N] ` (or `N  `) prefix strace -f prints; `nil` when the line has none.
  public var pid: Int32?
  /// The call's name as strace prints it (`mmap`, `munmap`, `load`, …).
  public var name: String
  public var arguments: [CallArgument]
  public var result: RecordedResult
  /// The call never completed in the log (`<unfinished ...>` with no `<... resumed>`): its
  /// arguments may be cut short and it has no result.
  public var unfinished: Bool
  /// A load or store's signal line (`--- SIGSEGV {…} ---` on the next line), when it has one.
  public var signal: SignalRecord?
  /// The bytes a load read, when the script records them: `load(ADDR, LEN) = ok 5a5a00`, hex
  /// digits after `ok`, the first bytes at ADDR (all LEN of them, or fewer).
  public var loadedBytes: [UInt8]?
  /// The command strace `-Y` prints with the pid (`19577<ls> mmap(`, `[pid 19577<ls>]`).
  public var comm: String?
  /// What `-y`/`-yy` printed after an fd argument, by argument index: `3</usr/lib/libc.so.6>`
  /// gives `/usr/lib/libc.so.6`, `3<TCP:[1521176]>` gives `TCP:[1521176]`, a deleted file
  /// `/memfd:name (deleted)`; strace's escapes are kept. The argument itself is the number.
  public var fdPaths: [Int: String]
  /// What strace printed in angle brackets after the result: the new fd's path (`-y`:
  /// `openat(…) = 3</etc/ld.so.cache>`) or the child's command (`-Y`: `clone(…) = 30980<sh>`).
  public var resultAnnotation: String?

  public init(
    pid: Int32? = nil, name: String, arguments: [CallArgument], result: RecordedResult, unfinished: Bool = false,
    signal: SignalRecord? = nil, comm: String? = nil, fdPaths: [Int: String] = [:], resultAnnotation: String? = nil,
    loadedBytes: [UInt8]? = nil
  ) {
    self.loadedBytes = loadedBytes
    self.pid = pid
    self.name = name
    self.arguments = arguments
    self.result = result
    self.unfinished = unfinished
    self.signal = signal
    self.comm = comm
    self.fdPaths = fdPaths
    self.resultAnnotation = resultAnnotation
  }
}

/// strace's line for a delivered signal, `--- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_PKUERR,
/// si_addr=0x7f…} ---`, as far as a load or store is checked against it. Other fields
/// (`si_pkey`) are not kept.
public struct SignalRecord: Equatable, Sendable {
  /// `SIGSEGV` or `SIGBUS`.
  public var signal: String
  /// `si_code` as written: a name (`SEGV_MAPERR`, `SEGV_ACCERR`, `SEGV_PKUERR`, `BUS_ADRERR`) or
  /// a number.
  public var code: String
  /// `si_addr` (`NULL` is 0).
  public var address: UInt64

  public init(signal: String, code: String, address: UInt64) {
    self.signal = signal
    self.code = code
    self.address = address
  }
}

/// How a number was written, so the printer writes it back the same way.
public enum NumberStyle: Equatable, Sendable {
  case decimal
  /// `0x…`, lower-case digits.
  case hex
  /// A leading `0` (file modes: `0644`).
  case octal
}

/// An integer argument or result: a magnitude and a sign, as written.
public struct Number: Equatable, Sendable {
  public var magnitude: UInt64
  public var negative: Bool
  public var style: NumberStyle

  public init(_ magnitude: UInt64, negative: Bool = false, style: NumberStyle = .decimal) {
    self.magnitude = magnitude
    self.negative = negative && magnitude != 0
    self.style = style
  }

  /// A hex number (addresses).
  public static func hex(_ v: UInt64) -> Number { Number(v, style: .hex) }

  /// The value as the kernel sees a 64-bit register: negative numbers wrap (`-1` is all ones).
  public var bits: UInt64 { negative ? 0 &- magnitude : magnitude }
}

/// One part of an `A|B|0x10` flag expression.
public enum FlagAtom: Equatable, Sendable {
  case name(String)
  case number(Number)
}

/// An argument as strace prints it.
public indirect enum CallArgument: Equatable, Sendable {
  /// `NULL`.
  case null
  case number(Number)
  /// Symbolic flags or a single symbolic constant: `PROT_READ|PROT_WRITE`, `MADV_DONTNEED`.
  case flags([FlagAtom])
  /// A quoted string; `truncated` when strace cut it short (`"abc"...`).
  case string(String, truncated: Bool)
  /// `[a, b, …]`; `truncated` when strace ended it with `...`.
  case array([CallArgument], truncated: Bool)
  /// Anything else (structures, named arguments of calls Faultline does not model), verbatim.
  case raw(String)
}

/// What a load or store pseudo-call delivered.
public enum AccessOutcome: String, Equatable, Sendable, CaseIterable {
  case ok
  case sigsegv = "SIGSEGV"
  case sigbus = "SIGBUS"
}

/// The result recorded after ` = `.
public enum RecordedResult: Equatable, Sendable {
  /// A return value: `= 0x7ffff7fc0000`, `= 0`, `= 3`.
  case value(Number)
  /// `= -1 EINVAL (Invalid argument)`: the errno's name and strace's message (`nil` when absent).
  case error(name: String, message: String?)
  /// `= ?`, with whatever strace wrote after it (`ERESTARTSYS (To be restarted)`), if anything.
  case unknown(String?)
  /// The result of a load or store pseudo-call.
  case access(AccessOutcome)
  /// The lines of a `maps()` pseudo-call, as written (up to the blank line).
  case maps([String])
  /// A result of a call Faultline does not model, kept verbatim (`= 1 ([{fd=3, …}])`).
  case raw(String)
  /// No result (an unfinished call).
  case none
}
