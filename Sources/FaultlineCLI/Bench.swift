import ArgumentParser
import Faultline
import FaultlineWorkloads
import Glibc

/// `faultline bench`: the anonymous fault cost per fault design (page_fault1 shape, 1 thread),
/// the ebizzy -mT loop per design and thread count, and a 4 KiB zeroing canary, in one run.
public struct Bench: ParsableCommand {
  public init() {}
  public static let configuration = CommandConfiguration(
    abstract: "Measure page faults per locking design: page_fault1/2/3 and ebizzy -mT, against a zeroing canary.",
    discussion: """
      page_fault1: each round maps --region-mib of private anonymous memory, writes one byte \
      per page and unmaps it (will-it-scale's page_fault1); the figure is ns per fault in the \
      touch loop, 1 thread. ebizzy -mT: every thread loops on mmap 512 KiB, one store per page, \
      munmap, in one shared address space; the figure is records/s summed over threads. \
      page_fault2 and page_fault3: each thread maps its own tmpfs file (--file-region-mib) \
      privately (a copy-on-write fault per page) or shared (a dirtying fault per page); faults/s \
      summed over threads. dontneed: each thread touches its region and drops it with \
      MADV_DONTNEED. mmap1: mmap and munmap of --region-mib, nothing touched (pairs/s); mmap2: \
      the same on a per-thread tmpfs file. \
      pft-1vma and pft-vma-each: threads fault their own slice of one large VMA, or of one VMA \
      each, and drop it with MADV_DONTNEED (the one-VMA case is per-VMA locks' and SPF's worst \
      case: every fault touches the same VMA).

      Each figure is also given as a ratio to mmap_lock from the same run, with the share of \
      faults completed without mmap_lock and the abort counts by reason. The zeroing canary \
      memsets arena frames: every anonymous fault includes one such zero. These 2-vCPU \
      machines are noisy: compare ratios from one run.
      """
  )

  @Option(name: .customLong("memory-mib"), help: "Frame arena size in MiB (pre-faulted).")
  var memoryMiB = 1024

  @Option(name: .customLong("region-mib"), help: "page_fault1 region mapped per round, in MiB.")
  var regionMiB = 128

  @Option(help: "page_fault1 measured rounds (one untimed warm-up round runs first).")
  var rounds = 3

  @Option(help: "Designs to run, comma-separated: \(FaultDesign.allCases.map(\.rawValue).joined(separator: ",")).")
  var designs = FaultDesign.allCases.map(\.rawValue).joined(separator: ",")

  @Option(help: "ebizzy thread counts, comma-separated.")
  var threads = "1,2"

  @Option(help: "Seconds per threaded run (ebizzy, dontneed, page_fault2/3, mmap1, pft).")
  var seconds = 1.0

  @Option(name: .customLong("file-region-mib"), help: "Per-thread region for page_fault2/3 (a tmpfs file), dontneed and pft, in MiB.")
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
    "page_fault1", "ebizzy", "dontneed", "page_fault2", "page_fault3", "mmap1", "mmap2", "pft-1vma",
    "pft-vma-each",
  ]

  public mutating func validate() throws {
    guard memoryMiB >= 16 else { throw ValidationError("--memory-mib must be at least 16") }
    guard regionMiB >= 1 else { throw ValidationError("--region-mib must be at least 1") }
    guard regionMiB * 256 + 1024 < memoryMiB * 256 else {
      throw ValidationError("--region-mib must leave room for page tables in --memory-mib")
    }
    guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1") }
    guard seconds > 0 && seconds <= 3600 else { throw ValidationError("--seconds must be in (0, 3600]") }
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

  public mutating func run() throws {
    let designs = try parsedDesigns()
    let threadCounts = try parsedThreads()
    printErr("faultline bench: pre-faulting a \(memoryMiB) MiB arena…")
    let machine = try Machine(memoryBytes: memoryMiB << 20, prefault: true, profile: try profileOptions.resolve())
    machine.mount(TmpFS(memory: machine.memory), at: "/bench")
    let runner = BenchRunner(
      machine: machine, options: self, threadCounts: threadCounts,
      selected: Set(workloads.split(separator: ",").map(String.init)))
    var rows: [BenchResult] = []
    for design in designs { rows += try runner.runEngine(design) }
    if host { rows += try runner.runHost() }
    printErr("zeroing canary…")
    var canary: [Int: Double] = [:]
    for n in Set(threadCounts + [1]).sorted() {
      canary[n] = zeroCanary(memory: machine.memory, pages: min(8192, machine.memory.frameCount / (2 * n)), rounds: rounds, threads: n)
    }
    let iso = ISO8601DateFormatter().string(from: Date())
    let run = BenchRun(rows: addRatios(rows), zeroCanary: canary, date: iso, machine: machineDescription())
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
