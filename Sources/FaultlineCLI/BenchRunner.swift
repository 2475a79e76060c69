import ArgumentParser
import Faultline
import FaultlineWorkloads
import Glibc

/// Runs the selected workloads for one design (or the host kernel) and returns its rows.
struct BenchRunner {
  let machine: Machine
  let options: Bench
  let threadCounts: [Int]
  let selected: Set<String>

  /// The engine under `design`, on `machine`'s profile.
  func runEngine(_ design: FaultDesign) throws -> [BenchResult] {
    var rows: [BenchResult] = []
    var config = AddressSpaceConfig(profile: machine.profile)
    config.design = design
    config.fputMode = FputMode(rawValue: options.fputMode)!
    let mm = try AddressSpace(machine: machine, config: config)
    defer {
      mm.destroy()
      machine.drainDeferredFrees()
    }
    let region = UInt64(options.regionMiB) << 20
    // --isolated: thread i gets its own address space (will-it-scale's _processes).
    let spaces: [AddressSpace]? =
      options.isolated ? try (0..<(threadCounts.max() ?? 1)).map { _ in try AddressSpace(machine: machine, config: config) } : nil
    defer { spaces?.forEach { $0.destroy() } }
    func measure(_ workload: String, _ threads: Int, _ unit: String, _ body: () throws -> Double) rethrows {
      printErr("\(workload), \(design), \(threads) thread(s)\(options.isolated ? ", isolated" : "")…")
      let before = machine.vmstat.snapshot
      let value = try body()
      rows.append(result(workload, design.rawValue, threads, value, unit, before, machine.vmstat.snapshot, design))
    }
    if selected.contains("page_fault1") {
      let cpu = try CPU(mm: mm)
      _ = try anonymousFaultLoop(cpu: cpu, regionBytes: region, rounds: 1)
      machine.drainDeferredFrees()
      try measure("page_fault1", 1, "ns/fault") {
        try anonymousFaultLoop(cpu: cpu, regionBytes: region, rounds: options.rounds).touchNanosecondsPerPage
      }
      machine.drainDeferredFrees()
      let lat = try anonymousFaultLatency(cpu: cpu, regionBytes: region)
      rows[rows.count - 1].p50 = lat.p50
      rows[rows.count - 1].p99 = lat.p99
      rows[rows.count - 1].p999 = lat.p999
    }
    for n in threadCounts where selected.contains("ebizzy") {
      try measure("ebizzy -mT", n, "records/s") { try ebizzy(mm: mm, threads: n, seconds: options.seconds, isolated: spaces).recordsPerSecond }
    }
    for n in threadCounts where selected.contains("dontneed") {
      try measure("dontneed", n, "faults/s") {
        try dontneedLoop(mm: mm, threads: n, seconds: options.seconds, regionBytes: UInt64(options.fileRegionMiB) << 20, isolated: spaces)
      }
    }
    for n in threadCounts where selected.contains("mmap1") {
      try measure("mmap1", n, "pairs/s") {
        try mmapLoop(mm: mm, threads: n, seconds: options.seconds, regionBytes: UInt64(options.regionMiB) << 20, isolated: spaces)
      }
    }
    for n in threadCounts where selected.contains("mmap2") {
      try measure("mmap2", n, "pairs/s") {
        try fileMmapLoop(
          mm: mm, directory: "/bench", threads: n, seconds: options.seconds,
          regionBytes: UInt64(options.regionMiB) << 20, isolated: spaces)
      }
    }
    for (name, shared) in [("pft-1vma", true), ("pft-vma-each", false)] where selected.contains(name) {
      for n in threadCounts {
        try measure(name, n, "faults/s") {
          try pftLoop(mm: mm, threads: n, seconds: options.seconds, sliceBytes: UInt64(options.fileRegionMiB) << 20, sharedVMA: shared)
        }
      }
    }
    for (name, shared) in [("page_fault2", false), ("page_fault3", true)] where selected.contains(name) {
      for n in threadCounts {
        try measure(name, n, "faults/s") {
          try fileFaultLoop(
            mm: mm, directory: "/bench", threads: n, seconds: options.seconds, shared: shared,
            regionBytes: UInt64(options.fileRegionMiB) << 20, isolated: spaces)
        }
      }
    }
    return rows
  }

  /// The same loop shapes on the host kernel, through Glibc.
  func runHost() throws -> [BenchResult] {
    var rows: [BenchResult] = []
    func measure(_ workload: String, _ threads: Int, _ unit: String, _ body: () throws -> Double) rethrows {
      printErr("\(workload), host kernel, \(threads) thread(s)…")
      let value = try body()
      rows.append(BenchResult(workload: workload, design: "host", threads: threads, value: value, unit: unit))
    }
    let region = UInt64(options.regionMiB) << 20
    if selected.contains("page_fault1") {
      _ = try hostAnonymousFaultLoop(regionBytes: region, rounds: 1)
      try measure("page_fault1", 1, "ns/fault") {
        try hostAnonymousFaultLoop(regionBytes: region, rounds: options.rounds).touchNanosecondsPerPage
      }
      let lat = try hostAnonymousFaultLatency(regionBytes: region)
      rows[rows.count - 1].p50 = lat.p50
      rows[rows.count - 1].p99 = lat.p99
      rows[rows.count - 1].p999 = lat.p999
    }
    for n in threadCounts where selected.contains("ebizzy") {
      try measure("ebizzy -mT", n, "records/s") { try hostEbizzy(threads: n, seconds: options.seconds).recordsPerSecond }
    }
    for n in threadCounts where selected.contains("dontneed") {
      try measure("dontneed", n, "faults/s") {
        try hostDontneedLoop(threads: n, seconds: options.seconds, regionBytes: UInt64(options.fileRegionMiB) << 20)
      }
    }
    for n in threadCounts where selected.contains("mmap1") {
      try measure("mmap1", n, "pairs/s") {
        try hostMmapLoop(threads: n, seconds: options.seconds, regionBytes: UInt64(options.regionMiB) << 20)
      }
    }
    for (name, shared) in [("pft-1vma", true), ("pft-vma-each", false)] where selected.contains(name) {
      for n in threadCounts {
        try measure(name, n, "faults/s") {
          try hostPftLoop(threads: n, seconds: options.seconds, sliceBytes: UInt64(options.fileRegionMiB) << 20, sharedVMA: shared)
        }
      }
    }
    let files = selected.contains("page_fault2") || selected.contains("page_fault3") || selected.contains("mmap2")
    if files {
      var template = Array("/tmp/faultline-bench-XXXXXX".utf8CString)
      guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
        throw ValidationError("cannot create a temporary directory for the host file workloads")
      }
      let dir = String(cString: made)
      defer { rmdir(dir) }
      for n in threadCounts where selected.contains("mmap2") {
        try measure("mmap2", n, "pairs/s") {
          try hostFileMmapLoop(directory: dir, threads: n, seconds: options.seconds, regionBytes: UInt64(options.regionMiB) << 20)
        }
      }
      for (name, shared) in [("page_fault2", false), ("page_fault3", true)] where selected.contains(name) {
        for n in threadCounts {
          try measure(name, n, "faults/s") {
            try hostFileFaultLoop(
              directory: dir, threads: n, seconds: options.seconds, shared: shared,
              regionBytes: UInt64(options.fileRegionMiB) << 20)
          }
        }
      }
    }
    return rows
  }

  func result(
    _ workload: String, _ design: String, _ threads: Int, _ value: Double, _ unit: String,
    _ before: [VMStatItem: UInt64], _ after: [VMStatItem: UInt64], _ d: FaultDesign
  ) -> BenchResult {
    func delta(_ item: VMStatItem) -> UInt64 { (after[item] ?? 0) &- (before[item] ?? 0) }
    let faults = Double(delta(.pgfault))
    let lockless: UInt64? =
      switch d {
      case .mmapLock: nil
      case .speculative, .sequenced: delta(.speculativePgfault)
      case .perVMALock: delta(.vmaLockSuccess)
      }
    var aborts: [String: UInt64] = [:]
    for reason in SPFAbort.allCases where delta(VMStatItem(abort: reason)) > 0 {
      aborts[reason.name] = delta(VMStatItem(abort: reason))
    }
    for item in [VMStatItem.vmaLockAbort, .vmaLockRetry, .vmaLockMiss] where delta(item) > 0 {
      aborts[item.name] = delta(item)
    }
    return BenchResult(
      workload: workload, design: design, threads: threads, value: value, unit: unit,
      locklessShare: faults > 0 ? lockless.map { Double($0) / faults } : nil, aborts: aborts)
  }
}

/// Fills in each row's ratio to mmap_lock and to the host kernel (higher is better).
func addRatios(_ rows: [BenchResult]) -> [BenchResult] {
  rows.map { r in
    var r = r
    func ratio(_ base: BenchResult?) -> Double? {
      guard let base, base.value > 0, r.value > 0 else { return nil }
      return r.lowerIsBetter ? base.value / r.value : r.value / base.value
    }
    r.vsMmapLock = ratio(rows.first { $0.workload == r.workload && $0.threads == r.threads && $0.design == "mmap_lock" })
    r.vsHost = ratio(rows.first { $0.workload == r.workload && $0.threads == r.threads && $0.design == "host" })
    return r
  }
}

/// The terminal table: one row per workload, design and thread count.
func renderTable(_ run: BenchRun) -> String {
  var out = "workload     design    threads        value  unit        vs mmap_lock  vs host  lockless  aborts\n"
  for r in run.rows {
    out += pad(r.workload, 13) + pad(r.design, 10) + lpad(String(r.threads), 7)
    out += lpad(fmt(r.value, 0, r.lowerIsBetter ? 1 : 0), 13) + "  " + pad(r.unit, 12)
    out += lpad(r.vsMmapLock.map { fmt($0, 0, 2) } ?? "-", 12)
    out += lpad(r.vsHost.map { fmt($0, 0, 2) } ?? "-", 9)
    out += lpad(r.locklessShare.map { fmt(100 * $0, 0, 1) + "%" } ?? "-", 10)
    out += "  " + (r.aborts.isEmpty ? "-" : r.aborts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
    out += "\n"
  }
  let timed = run.rows.filter { $0.p50 != nil }
  if !timed.isEmpty {
    out += "\nfault latency (page_fault1, one timed round), ns: "
    out += timed.map { "\($0.design) p50 \(fmt($0.p50!, 0, 0)) p99 \(fmt($0.p99!, 0, 0)) p999 \(fmt($0.p999!, 0, 0))" }.joined(separator: "; ")
    out += "\n"
  }
  out += "\nzeroing canary (ns per 4 KiB frame, per thread):"
  for (n, v) in run.zeroCanary.sorted(by: { $0.key < $1.key }) { out += " \(n) thread(s) \(fmt(v, 0, 1));" }
  if let pf = run.rows.first(where: { $0.workload == "page_fault1" && $0.design == "mmap_lock" }),
    let z = run.zeroCanary[1]
  {
    out += "\npage_fault1 under mmap_lock: \(fmt(pf.value, 0, 1)) ns/fault, \(fmt(pf.value - z, 0, 1)) ns beyond the zero"
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
