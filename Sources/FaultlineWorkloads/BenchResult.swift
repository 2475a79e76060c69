/// One row of a `faultline bench` run: a workload under one fault design (or the host kernel) at
/// one thread count.
public struct BenchResult: Codable, Sendable, Equatable {
  /// Workload name (`page_fault1`, `ebizzy -mT`, ...).
  public var workload: String
  /// Fault design raw value (`mmap_lock`, `spf`, `seq`, `vma_lock`), or `host` for the kernel.
  public var design: String
  public var threads: Int
  /// The figure, in `unit`.
  public var value: Double
  /// `ns/fault` (lower is better) or a rate such as `faults/s`, `records/s` (higher is better).
  public var unit: String
  /// This row against the mmap_lock row of the same workload and thread count (higher is better).
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

  public init(
    workload: String, design: String, threads: Int, value: Double, unit: String, vsMmapLock: Double? = nil,
    vsHost: Double? = nil, locklessShare: Double? = nil, aborts: [String: UInt64] = [:], p50: Double? = nil,
    p99: Double? = nil, p999: Double? = nil
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

  public init(rows: [BenchResult], zeroCanary: [Int: Double], date: String, machine: String) {
    self.rows = rows
    self.zeroCanary = zeroCanary
    self.date = date
    self.machine = machine
  }
}
