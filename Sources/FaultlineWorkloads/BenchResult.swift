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
  /// page_fault1-thp's per-size figures and how many of its faults were huge.
  public var hugePages: HugePageFigures?

  public init(
    workload: String, design: String, threads: Int, value: Double, unit: String, vsMmapLock: Double? = nil,
    vsHost: Double? = nil, locklessShare: Double? = nil, aborts: [String: UInt64] = [:], p50: Double? = nil,
    p99: Double? = nil, p999: Double? = nil, samples: [Double]? = nil, valueInterval: Interval? = nil,
    ratioInterval: Interval? = nil, verdict: Verdict? = nil, hugePages: HugePageFigures? = nil
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
    self.hugePages = hugePages
  }

  /// Whether a lower value is better (a cost per operation).
  public var lowerIsBetter: Bool { unit.hasPrefix("ns") }
}

/// What page_fault1-thp measured beyond its rate, for one row: the touch time per 4 KiB page
/// (comparable with page_fault1's ns per fault) and per 2 MiB extent (one huge fault where THP
/// applied), each the median over rounds, and the THP fault counters over the measured rounds
/// against the extents written, so that a reader sees whether the faults were huge.
public struct HugePageFigures: Codable, Sendable, Equatable {
  /// Touch time per 4 KiB page written, summed over threads (ns): median over rounds.
  public var nsPer4KiB: Double
  /// Touch time per 2 MiB extent written (ns): 512 × `nsPer4KiB`.
  public var nsPer2MiB: Double
  /// 2 MiB extents written in the measured rounds: the most huge faults there could have been.
  public var extents: UInt64
  /// `thp_fault_alloc` over the measured rounds: huge pages faulted in. Nil where the
  /// participant has no such counter (the engine before its THP fault path). The host's
  /// counters are system-wide.
  public var thpFaultAlloc: UInt64?
  /// `thp_fault_fallback` over the measured rounds: THP-eligible faults that got 4 KiB pages.
  public var thpFaultFallback: UInt64?

  public init(nsPer4KiB: Double, nsPer2MiB: Double, extents: UInt64, thpFaultAlloc: UInt64?, thpFaultFallback: UInt64?) {
    self.nsPer4KiB = nsPer4KiB
    self.nsPer2MiB = nsPer2MiB
    self.extents = extents
    self.thpFaultAlloc = thpFaultAlloc
    self.thpFaultFallback = thpFaultFallback
  }

  /// `huge 400/400 extents, fallback 0`, or `huge pending (no thp_fault_alloc counter)`.
  public var hugeText: String {
    guard let alloc = thpFaultAlloc else { return "huge pending (no thp_fault_alloc counter)" }
    return "huge \(alloc)/\(extents) extents, fallback \(thpFaultFallback.map { String($0) } ?? "-")"
  }
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
