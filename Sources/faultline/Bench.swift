import ArgumentParser
import Faultline
import FaultlineWorkloads
import Glibc

/// `faultline bench`: the anonymous fault cost per fault design (page_fault1 shape, 1 thread),
/// the ebizzy -mT loop per design and thread count, and a 4 KiB zeroing canary, in one run.
struct Bench: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Measure page faults per locking design: page_fault1/2/3 and ebizzy -mT, against a zeroing canary.",
    discussion: """
      page_fault1: each round maps --region-mib of private anonymous memory, writes one byte \
      per page and unmaps it (will-it-scale's page_fault1); the figure is ns per fault in the \
      touch loop, 1 thread. ebizzy -mT: every thread loops on mmap 512 KiB, one store per page, \
      munmap, in one shared address space; the figure is records/s summed over threads. \
      page_fault2 and page_fault3: each thread maps its own tmpfs file (--file-region-mib) \
      privately (a copy-on-write fault per page) or shared (a dirtying fault per page); faults/s \
      summed over threads.

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

  @Option(help: "Seconds per ebizzy and page_fault2/3 run.")
  var seconds = 2.0

  @Option(name: .customLong("file-region-mib"), help: "page_fault2/3 file size per thread, in MiB (tmpfs).")
  var fileRegionMiB = 16

  @Flag(help: "Skip the file workloads (page_fault2, page_fault3).")
  var noFiles = false

  @Option(help: "When a mapped file is released under SPF: synchronous (the fault takes its own file reference) or deferred (the VMA's last reference).")
  var fputMode: String = FputMode.synchronous.rawValue

  @Option(help: "Workloads to run, comma-separated: page_fault1,ebizzy,page_fault2,page_fault3.")
  var workloads = "page_fault1,ebizzy,page_fault2,page_fault3"

  mutating func validate() throws {
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
    let known: Set<String> = ["page_fault1", "ebizzy", "page_fault2", "page_fault3"]
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

  mutating func run() throws {
    let designs = try parsedDesigns()
    let threadCounts = try parsedThreads()
    printErr("faultline bench: pre-faulting a \(memoryMiB) MiB arena…")
    let machine = try Machine(memoryBytes: memoryMiB << 20, prefault: true)
    let region = UInt64(regionMiB) << 20
    var rows: [Row] = []
    machine.mount(TmpFS(memory: machine.memory), at: "/bench")

    for design in designs {
      var config = AddressSpaceConfig()
      config.design = design
      config.fputMode = FputMode(rawValue: fputMode)!
      let selected = Set(workloads.split(separator: ",").map(String.init))
      let mm = try AddressSpace(machine: machine, config: config)
      if selected.contains("page_fault1") {
        let cpu = try CPU(mm: mm)
        printErr("page_fault1, \(design), 1 thread, \(rounds) x \(regionMiB) MiB…")
        _ = try anonymousFaultLoop(cpu: cpu, regionBytes: region, rounds: 1)
        machine.drainDeferredFrees()
        let before = machine.vmstat.snapshot
        let r = try anonymousFaultLoop(cpu: cpu, regionBytes: region, rounds: rounds)
        rows.append(Row(
          workload: "page_fault1", design: design, threads: 1, value: r.touchNanosecondsPerPage,
          unit: "ns/fault", delta: delta(before, machine.vmstat.snapshot)))
      }
      for n in threadCounts where selected.contains("ebizzy") {
        printErr("ebizzy -mT, \(design), \(n) thread(s), \(seconds) s…")
        let before = machine.vmstat.snapshot
        let e = try ebizzy(mm: mm, threads: n, seconds: seconds)
        rows.append(Row(
          workload: "ebizzy -mT", design: design, threads: n, value: e.recordsPerSecond, unit: "records/s",
          delta: delta(before, machine.vmstat.snapshot)))
      }
      if !noFiles {
        for (name, shared) in [("page_fault2", false), ("page_fault3", true)] where selected.contains(name) {
          for n in threadCounts {
            printErr("\(name), \(design), \(n) thread(s), \(seconds) s…")
            let before = machine.vmstat.snapshot
            let rate = try fileFaultLoop(
              mm: mm, directory: "/bench", threads: n, seconds: seconds, shared: shared,
              regionBytes: UInt64(fileRegionMiB) << 20)
            rows.append(Row(
              workload: name, design: design, threads: n, value: rate, unit: "faults/s",
              delta: delta(before, machine.vmstat.snapshot)))
          }
        }
      }
      mm.destroy()
      machine.drainDeferredFrees()
    }
    printErr("zeroing canary…")
    let zero = zeroCanary(memory: machine.memory, pages: Int(region / 4096), rounds: rounds)
    print(render(rows, zero: zero))
  }
}

struct Row {
  var workload: String
  var design: FaultDesign
  var threads: Int
  var value: Double
  var unit: String
  var delta: [VMStatItem: UInt64]
}

func delta(_ a: [VMStatItem: UInt64], _ b: [VMStatItem: UInt64]) -> [VMStatItem: UInt64] {
  var d: [VMStatItem: UInt64] = [:]
  for (k, v) in b { d[k] = v &- (a[k] ?? 0) }
  return d
}

/// The table: one row per workload, design and thread count.
func render(_ rows: [Row], zero: Double) -> String {
  var out = "workload     design    threads        value  unit        vs mmap_lock  lockless  aborts\n"
  for r in rows {
    let base = rows.first { $0.workload == r.workload && $0.threads == r.threads && $0.design == .mmapLock }
    // For a cost, a lower value is better: the ratio is mmap_lock's cost over this one's.
    let ratio = base.map { r.unit == "ns/fault" ? $0.value / r.value : r.value / $0.value }
    let faults = Double(r.delta[.pgfault] ?? 0)
    let lockless: UInt64
    switch r.design {
    case .mmapLock: lockless = 0
    case .speculative, .sequenced: lockless = r.delta[.speculativePgfault] ?? 0
    case .perVMALock: lockless = r.delta[.vmaLockSuccess] ?? 0
    }
    var aborts: [String] = []
    for reason in SPFAbort.allCases {
      if let n = r.delta[VMStatItem(abort: reason)], n > 0 { aborts.append("\(reason.name)=\(n)") }
    }
    for item in [VMStatItem.vmaLockAbort, .vmaLockRetry, .vmaLockMiss] {
      if let n = r.delta[item], n > 0 { aborts.append("\(item.name)=\(n)") }
    }
    out += pad(r.workload, 13) + pad(r.design.rawValue, 10) + lpad(String(r.threads), 7)
    out += lpad(fmt(r.value, 0, r.unit == "ns/fault" ? 1 : 0), 13) + "  " + pad(r.unit, 12)
    out += lpad(ratio.map { fmt($0, 0, 2) } ?? "-", 12)
    out += lpad(r.design == .mmapLock ? "-" : fmt(100 * Double(lockless) / max(faults, 1), 0, 1) + "%", 10)
    out += "  " + (aborts.isEmpty ? "-" : aborts.joined(separator: " ")) + "\n"
  }
  out += "\nzeroing canary: \(fmt(zero, 0, 1)) ns per 4 KiB frame"
  if let pf = rows.first(where: { $0.workload == "page_fault1" && $0.design == .mmapLock }) {
    out += " (page_fault1 under mmap_lock costs \(fmt(pf.value / zero, 0, 2))x a zero)"
  }
  return out
}

func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s + " " : s + String(repeating: " ", count: w - s.count) }
func lpad(_ s: String, _ w: Int) -> String { s.count >= w ? s : String(repeating: " ", count: w - s.count) + s }

func fmt(_ v: Double, _ width: Int, _ decimals: Int = 1) -> String {
  let s = decimals == 0 ? String(Int(v.rounded())) : String(format: "%.\(decimals)f", v)
  return lpad(s, width)
}

func printErr(_ s: String) {
  var line = s + "\n"
  line.withUTF8 { b in _ = Glibc.write(2, b.baseAddress, b.count) }
}

import Foundation
