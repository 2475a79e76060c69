import ArgumentParser
import Faultline
import FaultlineWorkloads
import Glibc

/// `faultline bench`: the anonymous fault cost per fault design (page_fault1 shape, 1 thread),
/// the ebizzy -mT loop per design and thread count, and a 4 KiB zeroing canary, in one run.
public struct Bench: ParsableCommand {
  public init() {}
  public static let configuration = CommandConfiguration(
    abstract: "Measure page faults per locking design: page_fault1/2/3, page_fault1-thp and ebizzy -mT, against a zeroing canary.",
    discussion: """
      page_fault1: each pass maps --region-mib of private anonymous memory, writes one byte \
      per page and unmaps it (will-it-scale's page_fault1), passes repeating for --seconds; the \
      figure is ns per fault in the touch loop, 1 thread. page_fault1-thp: page_fault1 on \
      transparent huge pages: each thread maps --file-region-mib (rounded up to whole 2 MiB) at a \
      2 MiB-aligned address, madvise(MADV_HUGEPAGE), writes one byte per 4 KiB page and unmaps it; \
      where THP applies, the first write of each 2 MiB faults in a huge page and the next 511 \
      hit it. Its figure is 4 KiB pages written per second summed over threads (pages/s, \
      will-it-scale's count whatever the fault size), and below the table the touch time per \
      4 KiB page (comparable with page_fault1's ns per fault) and per 2 MiB extent (one huge \
      fault), with thp_fault_alloc and thp_fault_fallback over the measured rounds against the \
      2 MiB extents written, so the row says whether its faults were huge. The host runs it \
      under its own THP setting (/sys/kernel/mm/transparent_hugepage/enabled; its counters are \
      system-wide), the engine under --profile's. ebizzy -mT: every thread loops on mmap 512 KiB, one store per page, \
      munmap, in one shared address space; the figure is records/s summed over threads. \
      page_fault2 and page_fault3: each thread maps its own tmpfs file (--file-region-mib) \
      privately (a copy-on-write fault per page) or shared (a dirtying fault per page); faults/s \
      summed over threads. dontneed: each thread touches its region and drops it with \
      MADV_DONTNEED. mmap1: mmap and munmap of --region-mib, nothing touched (pairs/s); mmap2: \
      the same on a per-thread tmpfs file. \
      pft-1vma and pft-vma-each: threads fault their own slice of one large VMA, or of one VMA \
      each, and drop it with MADV_DONTNEED (the one-VMA case is per-VMA locks' and SPF's worst \
      case: every fault touches the same VMA).

      Paired, interleaved rounds: for each (workload, thread count) cell the run makes --rounds \
      rounds; in each round every design (and the host with --host) runs the cell once, in a \
      fresh random order drawn from --seed, after a --warmup of the same loop. Every figure is \
      the median over rounds, and each design's ratio to mmap_lock is taken within each round \
      (so a slow phase of the machine hits both sides of a ratio) and summarised by its median \
      and a 95% interval: the percentile bootstrap of the median over rounds (2000 resamples, \
      seeded), chosen because it assumes nothing about the shape of timing noise, which is \
      skewed by rare stalls. Ratios are oriented so that above 1 is better, for ns/fault as \
      for rates. The verdict is faster or slower when the whole interval is above or below \
      1.00, and ≈ when it contains 1.00 (no significant difference). Worker threads are pinned \
      to CPUs, and the output says when there are fewer CPUs than threads.

      The table also gives the share of faults completed without mmap_lock and the abort \
      counts by reason. The zeroing canary memsets arena frames: every anonymous fault \
      includes one such zero. JSON and CSV keep every round's raw sample, the seed, the \
      machine and the commit. --quick is a smoke run of about 20 seconds.
      """
  )

  @Option(name: .customLong("memory-mib"), help: "Frame arena size in MiB (pre-faulted).")
  var memoryMiB = 1024

  @Option(name: .customLong("region-mib"), help: "page_fault1 region mapped per pass, in MiB.")
  var regionMiB = 128

  @Option(help: "Paired rounds per (workload, thread count) cell, at least 2 (default \(Bench.defaultSchedule.rounds); --quick \(Bench.quickSchedule.rounds)).")
  var rounds: Int?

  @Option(help: "Seconds each design measures each cell per round (default \(Bench.defaultSchedule.seconds); --quick \(Bench.quickSchedule.seconds)).")
  var seconds: Double?

  @Option(help: "Seconds of untimed warm-up before each measurement (default \(Bench.defaultSchedule.warmup); --quick \(Bench.quickSchedule.warmup)).")
  var warmup: Double?

  @Option(help: "Seed of the round orders and the bootstrap (default: drawn at random and printed).")
  var seed: UInt64?

  @Flag(help: "A smoke run of about 20 seconds: fewer, shorter rounds.")
  var quick = false

  @Option(help: "Designs to run, comma-separated: \(FaultDesign.allCases.map(\.rawValue).joined(separator: ",")).")
  var designs = FaultDesign.allCases.map(\.rawValue).joined(separator: ",")

  @Option(help: "ebizzy thread counts, comma-separated.")
  var threads = "1,2"

  @Option(name: .customLong("file-region-mib"), help: "Per-thread region for page_fault2/3 (a tmpfs file), dontneed, pft and page_fault1-thp (rounded up to 2 MiB), in MiB.")
  var fileRegionMiB = 16

  @Option(help: "When a mapped file is released under SPF: synchronous (the fault takes its own file reference) or deferred (the VMA's last reference).")
  var fputMode: String = FputMode.synchronous.rawValue

  @Option(help: "Workloads to run, comma-separated: \(Bench.allWorkloads.joined(separator: ",")).")
  var workloads = Bench.allWorkloads.joined(separator: ",")

  @Flag(help: "Also run the same loops on the host kernel, for engine/kernel ratios.")
  var host = false

  @Flag(help: "Give each thread its own address space (will-it-scale's _processes); pft keeps one.")
  var isolated = false

  @OptionGroup var profileOptions: ProfileOptions

  @Option(help: "Write the results as JSON to this file.")
  var json: String?

  @Option(help: "Write the results as CSV to this file.")
  var csv: String?

  @Option(help: "Write an HTML report with SVG charts (plus JSON and CSV) into this directory.")
  var report: String?

  static let allWorkloads = [
    "page_fault1", "page_fault1-thp", "ebizzy", "dontneed", "page_fault2", "page_fault3", "mmap1", "mmap2", "pft-1vma",
    "pft-vma-each",
  ]

  public mutating func validate() throws {
    guard memoryMiB >= 16 else { throw ValidationError("--memory-mib must be at least 16") }
    guard regionMiB >= 1 else { throw ValidationError("--region-mib must be at least 1") }
    guard regionMiB * 256 + 1024 < memoryMiB * 256 else {
      throw ValidationError("--region-mib must leave room for page tables in --memory-mib")
    }
    if let rounds { guard rounds >= 2 && rounds <= 10_000 else { throw ValidationError("--rounds must be in [2, 10000]") } }
    if let seconds { guard seconds > 0 && seconds <= 3600 else { throw ValidationError("--seconds must be in (0, 3600]") } }
    if let warmup { guard warmup >= 0 && warmup <= 3600 else { throw ValidationError("--warmup must be in [0, 3600]") } }
    _ = try parsedDesigns()
    _ = try parsedThreads()
    guard FputMode(rawValue: fputMode) != nil else {
      throw ValidationError("--fput-mode must be synchronous or deferred")
    }
    let known = Set(Bench.allWorkloads)
    for w in workloads.split(separator: ",") where !known.contains(String(w)) {
      throw ValidationError("unknown workload '\(w)'; expected \(known.sorted().joined(separator: ","))")
    }
  }

  func parsedDesigns() throws -> [FaultDesign] {
    try designs.split(separator: ",").map {
      guard let d = FaultDesign(rawValue: String($0)) else {
        throw ValidationError("unknown design '\($0)'; expected \(FaultDesign.allCases.map(\.rawValue))")
      }
      return d
    }
  }

  func parsedThreads() throws -> [Int] {
    try threads.split(separator: ",").map {
      guard let n = Int($0), n >= 1, n <= 512 else { throw ValidationError("bad thread count '\($0)'") }
      return n
    }
  }

  /// The default run: 19 cells × 4 designs × 9 rounds × (0.02 s + 0.08 s), plus set-up and
  /// page_fault1's whole 128 MiB passes: 82 s measured on 2 CPUs at load 11 (54 s with 7 rounds
  /// and 17 cells on a quieter machine), under the 90 s budget.
  static let defaultSchedule = BenchSchedule(rounds: 9, seconds: 0.08, warmup: 0.02, seed: 0)
  /// --quick: about 14 s measured on 2 busy CPUs, under the 20 s budget.
  static let quickSchedule = BenchSchedule(rounds: 3, seconds: 0.03, warmup: 0.01, seed: 0)

  /// The schedule from the options: explicit values win over --quick's and the defaults; without
  /// --seed, the seed comes from the clock.
  func resolvedSchedule() -> BenchSchedule {
    let base = quick ? Bench.quickSchedule : Bench.defaultSchedule
    return BenchSchedule(
      rounds: rounds ?? base.rounds, seconds: seconds ?? base.seconds, warmup: warmup ?? base.warmup,
      seed: seed ?? (nowNanoseconds() &* 0x9E37_79B9_7F4A_7C15))
  }

  public mutating func run() throws {
    let designs = try parsedDesigns()
    let threadCounts = try parsedThreads()
    let schedule = resolvedSchedule()
    printErr("faultline bench: seed \(schedule.seed), \(schedule.rounds) rounds; pre-faulting a \(memoryMiB) MiB arena…")
    let machine = try Machine(memoryBytes: memoryMiB << 20, prefault: true, profile: try profileOptions.resolve())
    machine.mount(TmpFS(memory: machine.memory), at: "/bench")
    let runner = BenchRunner(
      machine: machine, options: self, schedule: schedule, threadCounts: threadCounts,
      selected: Set(workloads.split(separator: ",").map(String.init)))
    // One address space per design (and per thread with --isolated), alive for the whole run so
    // that the designs can take turns within each round.
    var config = AddressSpaceConfig(profile: machine.profile)
    config.fputMode = FputMode(rawValue: fputMode)!
    var participants: [BenchParticipant] = []
    var spaces: [AddressSpace] = []
    defer {
      for mm in spaces { mm.destroy() }
      machine.drainDeferredFrees()
    }
    for design in designs {
      config.design = design
      let mm = try AddressSpace(machine: machine, config: config)
      let isolated = isolated ? try (0..<(threadCounts.max() ?? 1)).map { _ in try AddressSpace(machine: machine, config: config) } : nil
      spaces += [mm] + (isolated ?? [])
      participants.append(.engine(design, mm: mm, isolated: isolated))
    }
    var hostDir: String?
    if host {
      var template = Array("/tmp/faultline-bench-XXXXXX".utf8CString)
      guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
        throw ValidationError("cannot create a temporary directory for the host file workloads")
      }
      hostDir = String(cString: made)
      participants.append(.host(directory: hostDir!))
    }
    defer { if let hostDir { rmdir(hostDir) } }
    let rows = try runner.run(participants)
    printErr("zeroing canary…")
    var canary: [Int: Double] = [:]
    for n in Set(threadCounts + [1]).sorted() {
      canary[n] = zeroCanary(memory: machine.memory, pages: min(8192, machine.memory.frameCount / (2 * n)), rounds: quick ? 1 : 3, threads: n)
    }
    var notes: [String] = []
    let cpus = onlineCPUs()
    if let most = threadCounts.max(), most > cpus {
      notes.append("\(cpus) CPUs for up to \(most) threads: workers are pinned round-robin and share CPUs, so those cells also measure time-slicing")
    }
    let run = BenchRun(
      rows: addRoundStatistics(rows, seed: schedule.seed), zeroCanary: canary,
      date: ISO8601DateFormatter().string(from: Date()), machine: machineDescription(), seed: schedule.seed,
      rounds: schedule.rounds, machineInfo: MachineInfo.current(), commit: currentCommit(), notes: notes.isEmpty ? nil : notes)
    print(renderTable(run))
    try writeOutputs(run)
  }

  func writeOutputs(_ run: BenchRun) throws {
    if let json { try renderJSON(run).write(toFile: json, atomically: true, encoding: .utf8) }
    if let csv { try renderCSV(run).write(toFile: csv, atomically: true, encoding: .utf8) }
    if let report {
      let page = try writeReport(run, to: report)
      printErr("report: \(page)")
    }
  }
}

/// CPUs and memory of the machine the run was on.
func machineDescription() -> String {
  // In Swift `>>` binds tighter than `*`: the product is parenthesised.
  "\(sysconf(Int32(_SC_NPROCESSORS_ONLN))) CPUs, \((sysconf(Int32(_SC_PHYS_PAGES)) * sysconf(Int32(_SC_PAGESIZE))) >> 30) GiB"
}

import Foundation
