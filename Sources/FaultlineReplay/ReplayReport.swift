import Faultline

/// How a replay runs.
public struct ReplayOptions: Sendable {
  /// `mmap_base` for every address space; `nil` takes it from the script: the end of the first
  /// hint-less `mmap` the kernel placed (see `ReplayExecutor`).
  public var mapsBase: UInt64?
  /// The fault design of every address space.
  public var design: FaultDesign = .mmapLock
  /// The engine's frame arena.
  public var memoryBytes: Int = 1 << 30
  /// The machine the engine models (`faultline replay --profile`).
  public var profile: MachineProfile = .host
  /// Loads and stores longer than this are skipped (the fuzzer bounds its work with it).
  public var maxAccessBytes: UInt64 = .max
  /// Called with one line per call when set (`--verbose`).
  public var log: (@Sendable (String) -> Void)?

  public init(mapsBase: UInt64? = nil, design: FaultDesign = .mmapLock) {
    self.mapsBase = mapsBase
    self.design = design
  }
}

/// A call whose result differs from the recorded one.
public struct ReplayMismatch: Equatable, Sendable, CustomStringConvertible {
  /// The script line of the call.
  public var line: Int
  /// The call as printed (maps lines left out).
  public var call: String
  public var expected: String
  public var got: String

  /// `LINE: expected X, got Y in CALL`.
  public var description: String { "\(line): expected \(expected), got \(got) in \(call)" }
}

/// What a replay did.
public struct ReplayReport: Sendable {
  /// Calls run on the engine (matched, mismatched, or with no recorded result to check).
  public var executed = 0
  public var matched = 0
  /// Calls run whose recorded result was `?`: nothing to compare.
  public var unchecked = 0
  public var mismatches: [ReplayMismatch] = []
  /// Calls not run, by reason (`"arch_prctl: not modelled"`, …).
  public var skippedByReason: [String: Int] = [:]
  /// File mappings of files the script never opened, replayed as anonymous memory.
  public var standIns = 0
  /// Ranges of kernel-made memory (the ELF, ld.so, the stack) mapped on first use.
  public var inferred = 0
  /// Address spaces the replay created (one per program the log runs, and one per fork).
  public var processes = 0
  /// Address spaces copied by `fork` (traced `fork`/`clone` without `CLONE_VM`).
  public var forks = 0
  /// Distinct pids in the log's calls (lines without a pid are not counted).
  public var pids = 0
  /// Traced process calls (`execve`, `execveat`, `clone`, `clone3`, `fork`, `vfork`): what tells
  /// programs, threads and forked children apart.
  public var processCalls = 0
  /// The `mmap_base` of each address space, in creation order.
  public var mapsBases: [UInt64] = []
  /// Lines that could not be read, with why: skipped, the replay went on without them.
  public var unreadableLines: [ReplayParseError] = []

  /// Every call not run.
  public var skipped: Int { skippedByReason.values.reduce(0, +) }
  /// Calls skipped because the engine does not model them at all.
  public var skippedUnmodelled: Int {
    skippedByReason.filter { $0.key.hasSuffix(": not modelled") }.values.reduce(0, +)
  }
  public var mismatched: Int { mismatches.count }

  mutating func skip(_ reason: String) { skippedByReason[reason, default: 0] += 1 }

  /// The summary the command prints.
  public var summary: String {
    var s = "\(executed) calls executed: \(matched) matched, \(mismatched) mismatched"
    if unchecked > 0 { s += ", \(unchecked) with no recorded result" }
    s += "; \(skipped) skipped (\(skippedUnmodelled) not modelled)"
    if !unreadableLines.isEmpty {
      s += "; \(unreadableLines.count) unreadable line\(unreadableLines.count == 1 ? "" : "s") skipped"
    }
    s += "; \(standIns) file mappings replayed as anonymous memory, \(inferred) kernel-made ranges inferred"
    s += "; \(processes) address space\(processes == 1 ? "" : "s")"
    if pids > 1 && processCalls == 0 {
      s += "; \(pids) pids but no process calls: children's calls were replayed in one address space;"
        + " record with -e trace=memory,process"
    }
    return s
  }
}
