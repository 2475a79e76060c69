import Faultline

/// A call whose result differs from the recorded one.
public struct ReplayMismatch: Equatable, Sendable, CustomStringConvertible {
  /// The script line of the call.
  public var line: Int
  /// The call as printed (maps lines left out).
  public var call: String
  public var expected: String
  public var got: String
  /// The line of the root mismatch this one follows from (a call on a range where the
  /// engine's layout had left the recorded one: `ReplayDivergence`); `nil` for a root.
  public var rootLine: Int?
  /// The replay flag for state the log cannot carry that could explain it, if any.
  public var hint: String?

  /// `LINE: expected X, got Y in CALL`, then `(a consequence of line N)` and `; HINT`.
  public var description: String {
    var s = "\(line): expected \(expected), got \(got) in \(call)"
    if let rootLine { s += " (a consequence of line \(rootLine))" }
    if let hint { s += "; \(hint)" }
    return s
  }
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
  /// File mappings of files the script never made, replayed on stand-in files (`StandInFile`).
  public var standIns = 0
  /// Opens of files the script never made, answered with a stand-in as the log recorded.
  public var standInFiles = 0
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
  /// The engine's frame arena, in bytes (`ReplayExecutor.arenaBytes`).
  public var arenaBytes = 0
  /// Address spaces with the legacy bottom-up layout (`ReplayOptions.legacyLayout`).
  public var legacyLayouts = 0
  /// The `mmap_base` of each address space, in creation order (`TASK_UNMAPPED_BASE` for the
  /// legacy layout).
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
  /// Mismatches that follow from an earlier one (`ReplayMismatch.rootLine`).
  public var consequences: Int { mismatches.filter { $0.rootLine != nil }.count }

  mutating func skip(_ reason: String) { skippedByReason[reason, default: 0] += 1 }

  /// The summary the command prints.
  public var summary: String {
    var s = "\(executed) calls executed: \(matched) matched, \(mismatched) mismatched"
    if consequences > 0 { s += " (\(mismatched - consequences) at the root, \(consequences) consequences)" }
    if unchecked > 0 { s += ", \(unchecked) with no recorded result" }
    s += "; \(skipped) skipped (\(skippedUnmodelled) not modelled)"
    if !unreadableLines.isEmpty {
      s += "; \(unreadableLines.count) unreadable line\(unreadableLines.count == 1 ? "" : "s") skipped"
    }
    s += "; \(standIns) file mappings on stand-in files"
    if standInFiles > 0 { s += " (\(standInFiles) opened as recorded)" }
    s += ", \(inferred) kernel-made ranges inferred"
    s += "; \(processes) address space\(processes == 1 ? "" : "s")"
    if legacyLayouts > 0 { s += " (\(legacyLayouts) with the legacy layout)" }
    if pids > 1 && processCalls == 0 {
      s += "; \(pids) pids but no process calls: children's calls were replayed in one address space;"
        + " record with -e trace=memory,process"
    }
    return s
  }
}
