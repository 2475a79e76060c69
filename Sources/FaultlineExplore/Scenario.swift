import Faultline
import Synchronization

/// What the explorer observed in one run of a scenario: the fault's result, the final PTE, the
/// counter deltas and the scenario's side effects. Two runs with the same `key` are the same
/// outcome.
public struct Observation: Sendable, Equatable {
  /// The fault's result: `ok`, `SIGSEGV(MAPERR)`, `SIGSEGV(ACCERR)`, `SIGBUS`.
  public var result = "-"
  /// The faulting address's PTE once every thread finished: `none`, `zero`, `ro`, `rw`.
  public var pte = "-"
  /// Whether the writer's system call (munmap, mprotect, ftruncate) returned before the fault
  /// finished (the writer overtook the fault, or the fault started after it).
  public var writerFirst = false
  /// Non-zero deltas of `Observation.trackedCounters`, by `/proc/vmstat` name.
  public var counters: [String: UInt64] = [:]
  /// Scenario side effects (`umount=EBUSY`, `refs_after_munmap=1`, …), by name.
  public var effects: [String: String] = [:]

  public init() {}

  /// The outcome's one-line description, used as the outcome table's key.
  public var key: String {
    var parts = ["fault=\(result)", "pte=\(pte)", "writer_first=\(writerFirst ? "yes" : "no")"]
    parts += effects.keys.sorted().map { "\($0)=\(effects[$0]!)" }
    parts += counters.keys.sorted().map { "\($0)+\(counters[$0]!)" }
    return parts.joined(separator: " ")
  }

  /// The counters recorded per run.
  public static let trackedCounters: [VMStatItem] =
    [.speculativePgfault] + SPFAbort.allCases.map { VMStatItem(abort: $0) }
    + [.vmaLockSuccess, .vmaLockAbort, .vmaLockRetry, .vmaLockMiss, .faultRaced, .pgmajfault,
       .filemapFillAfterUnmap, .atimeAfterUnmap, .umountBusyInflight,
       .thpFaultAlloc, .thpFaultFallback, .thpSplitPmd, .thpZeroPageAlloc]
}

/// How one run of a scenario is set up.
public struct ScenarioConfig: Sendable {
  public var design: FaultDesign
  /// File scenarios only.
  public var fputMode: FputMode = .synchronous
  /// The scenario's variant (`read`, `write`).
  public var variant: String
  /// A host directory for `HostFS` scenarios (the explorer makes and removes it).
  public var workDir: String = "/tmp"
  /// Break the scenario on purpose (its writer skips a step), so that its checks must fail.
  public var sabotage = false
  /// The machine each run's fresh `Machine` models.
  public var profile: MachineProfile = .host

  public init(design: FaultDesign, variant: String) {
    self.design = design
    self.variant = variant
  }
}

/// One run of a scenario: fresh machine and address space, the bodies of its threads, and its
/// checks.
public protocol ScenarioRun: AnyObject {
  /// One body per thread name of the scenario.
  var bodies: [@Sendable () -> Void] { get }
  /// Called whenever no thread runs (lock-free reads only): checks the invariants that must
  /// hold at every point, appending violations.
  func quiescent(step: Int, violations: inout [String])
  /// Called once every thread finished (`allFinished`), or after an error (then nothing may be
  /// torn down): final checks and teardown, including the frame-leak check.
  func finish(allFinished: Bool, violations: inout [String]) -> Observation
}

/// A named race the explorer runs: its thread names, variants and how to make one run.
public struct Scenario: Sendable {
  public let name: String
  public let summary: String
  /// One short name per logical thread (`F` the fault, `W` the writer, …).
  public let threads: [String]
  public let variants: [String]
  /// Whether `FputMode` matters (file scenarios).
  public let usesFputMode: Bool
  /// Whether the scenario needs a host directory.
  public let needsWorkDir: Bool
  let make: @Sendable (ScenarioConfig, Scheduler) throws -> any ScenarioRun

  /// Every scenario, in the order `explore all` runs them.
  public static let all: [Scenario] = [
    .faultMunmap, .faultMprotect, .faultTruncate, .fileFaultMunmapUmount, .faultFork,
    .hugeFaultMunmap, .hugeFaultMprotect, .hugeFaultDontneed, .hugeFaultFork,
  ]

  public static func named(_ name: String) -> Scenario? { all.first { $0.name == name } }
}

/// State a scenario's threads and the controller share. Every access takes the mutex: a thread
/// woken from a real lock may run at the same time as the scheduled one.
final class Shared<State: Sendable>: Sendable {
  let state: Locked<State>
  init(_ s: State) { state = Locked(s) }
  func with<T>(_ body: (inout State) -> T) -> T { state.withLock { body(&$0) } }
  var value: State { state.withLock { $0 } }
}

/// The label of a fault hook point in schedules and logs.
func label(_ p: FaultHookPoint) -> String {
  switch p {
  case .afterLookup: "afterLookup"
  case .insideFileFault: "insideFileFault"
  case .pagePrepared: "pagePrepared"
  case .beforePTEMapLock: "beforePTEMapLock"
  case .aborted(let r): "aborted(\(r?.name ?? "retry"))"
  }
}

func label(_ p: WriterHookPoint) -> String { "\(p)" }

/// A fault's result as the outcome tables print it.
func describe(_ o: FaultOutcome?) -> String {
  switch o {
  case nil: "none"
  case .ok: "ok"
  case .signal(.sigsegv(.mapErr, _)): "SIGSEGV(MAPERR)"
  case .signal(.sigsegv(.accErr, _)): "SIGSEGV(ACCERR)"
  case .signal(.sigsegv(.pkuErr(let key), _)): "SIGSEGV(PKUERR \(key))"
  case .signal(.sigbus): "SIGBUS"
  case .signal(.outOfMemory): "OOM"
  }
}

/// A PTE as the outcome tables print it.
func describe(_ pte: PTE) -> String {
  if pte.isNone { return "none" }
  if !pte.isPresent { return "protnone" }
  if pte.isSpecial { return "zero" }
  return pte.isWritable ? "rw" : "ro"
}

func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
