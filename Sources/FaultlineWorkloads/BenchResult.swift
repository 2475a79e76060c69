/// One row of a `faultline bench` run: a workload under one fault design (or the host kernel) at
/// one thread count.
public struct BenchResult: Codable, Sendable, Equatable {
  /// Workload name (`page_fault1`, `ebizzy -mT`, ...).
  public var workload: String
  /// Fault design raw value (`mmap_lock`, `spf`, `seq`, `vma_lock`), or `host` for the kernel.
  public var design: String
  public var threads: Int
  /// The figure, in `unit`: the median of `samples` when the run had rounds.
  public var value: Double
  /// `ns/fault` (lower is better) or a rate such as `faults/s`, `records/s` (higher is better).
  public var unit: String
  /// This row against the mmap_lock row of the same workload and thread count (higher is better):
  /// the median of the per-round ratios when the run had rounds.
  public var vsMmapLock: Double?
  /// This row against the host-kernel row of the same workload and thread count, if measured.
  public var vsHost: Double?
  /// Faults completed without mmap_lock, as a fraction of all faults (speculative designs).
  public var locklessShare: Double?
  /// Abort and fallback counts by counter name (`spf_vma_changed`, `vma_lock_abort`, ...).
  public var aborts: [String: UInt64]
  /// Fault latency percentiles in nanoseconds, when measured.
  public var p50: Double?
  public var p99: Double?
  public var p999: Double?
  /// The raw figure of every round, in round order (a round runs every design once).
  public var samples: [Double]?
  /// The 95% bootstrap interval of the median of `samples`.
  public var valueInterval: Interval?
  /// The 95% bootstrap interval of the median per-round ratio to mmap_lock (`vsMmapLock`).
  public var ratioInterval: Interval?
  /// `faster`, `slower` or `≈` against mmap_lock, from `ratioInterval`.
  public var verdict: Verdict?

  public init(
    workload: String, design: String, threads: Int, value: Double, unit: String, vsMmapLock: Double? = nil,
    vsHost: Double? = nil, locklessShare: Double? = nil, aborts: [String: UInt64] = [:], p50: Double? = nil,
    p99: Double? = nil, p999: Double? = nil, samples: [Double]? = nil, valueInterval: Interval? = nil,
    ratioInterval: Interval? = nil, verdict: Verdict? = nil
  ) {
    self.workload = workload
    self.design = design
    self.threads = threads
    self.value = value
    self.unit = unit
    self.vsMmapLock = vsMmapLock
    self.vsHost = vsHost
    self.locklessShare = locklessShare
    self.aborts = aborts
    self.p50 = p50
    self.p99 = p99
    self.p999 = p999
    self.samples = samples
    self.valueInterval = valueInterval
    self.ratioInterval = ratioInterval
    self.verdict = verdict
  }

  /// Whether a lower value is better (a cost per operation).
  public var lowerIsBetter: Bool { unit.hasPrefix("ns") }
}

/// A whole run: the rows plus the zeroing canary per thread count and when it ran.
public struct BenchRun: Codable, Sendable, Equatable {
  public var rows: [BenchResult]
  /// Nanoseconds per 4 KiB zero, by thread count (the canary).
  public var zeroCanary: [Int: Double]
  /// ISO 8601 time of the run, and a free-form description of the machine.
  public var date: String
  public var machine: String
  /// The seed of the round orders and the bootstrap: `--seed` reruns the same schedule.
  public var seed: UInt64?
  /// Paired rounds per (workload, thread count) cell.
  public var rounds: Int?
  /// CPU model, CPU count and kernel of the machine.
  public var machineInfo: MachineInfo?
  /// `git rev-parse HEAD` where the run started, or `unknown`.
  public var commit: String?
  /// What the reader should know about how the run went (fewer CPUs than threads, say).
  public var notes: [String]?

  public init(
    rows: [BenchResult], zeroCanary: [Int: Double], date: String, machine: String, seed: UInt64? = nil,
    rounds: Int? = nil, machineInfo: MachineInfo? = nil, commit: String? = nil, notes: [String]? = nil
  ) {
    self.rows = rows
    self.zeroCanary = zeroCanary
    self.date = date
    self.machine = machine
    self.seed = seed
    self.rounds = rounds
    self.machineInfo = machineInfo
    self.commit = commit
    self.notes = notes
  }
}

/// The machine a run was on, as /proc/cpuinfo and uname(2) give it.
public struct MachineInfo: Codable, Sendable, Equatable {
  /// /proc/cpuinfo's first `model name` (or `unknown`).
  public var cpuModel: String
  /// CPUs this process may run on.
  public var cpuCount: Int
  /// uname's sysname, release and machine (`Linux 6.8.0-45-generic x86_64`).
  public var kernel: String

  public init(cpuModel: String, cpuCount: Int, kernel: String) {
    self.cpuModel = cpuModel
    self.cpuCount = cpuCount
    self.kernel = kernel
  }
}
