import Foundation
import ArgumentParser
import Faultline
import FaultlineWorkloads
import Glibc

/// One (workload, thread count) cell of the bench: every participant runs it once per round.
struct BenchCell: Equatable {
  /// The option name (`ebizzy`) and the name rows carry (`ebizzy -mT`).
  let key: String
  let workload: String
  let threads: Int
  let unit: String
}

/// What runs a cell: the engine under one design (with its own address spaces), or the host kernel.
enum BenchParticipant {
  case engine(FaultDesign, mm: AddressSpace, isolated: [AddressSpace]?)
  case host(directory: String)

  var name: String {
    switch self {
    case .engine(let d, _, _): d.rawValue
    case .host: "host"
    }
  }

  var isHost: Bool { if case .host = self { true } else { false } }
}

/// One measurement: the cell's figure in its unit, and for page_fault1-thp the loop's tallies.
struct BenchSample {
  var value: Double
  var huge: HugeFaultLoopResult? = nil
}

/// page_fault1-thp's figures for one participant of one cell, gathered over its measured rounds.
struct HugeTally {
  var nsPer4KiB: [Double] = []
  var pages = 0
  /// The THP fault counters' deltas, by name; a counter the participant lacks stays absent.
  var counters: [String: UInt64] = [:]

  mutating func add(_ loop: HugeFaultLoopResult, before: [String: UInt64], after: [String: UInt64]) {
    nsPer4KiB.append(loop.nanosecondsPer4KiB)
    pages += loop.pages
    for (name, v) in after { counters[name, default: 0] &+= v &- (before[name] ?? 0) }
  }

  /// The row's figures: nil when nothing was measured.
  var figures: HugePageFigures? {
    guard !nsPer4KiB.isEmpty else { return nil }
    let ns = median(nsPer4KiB)
    let perExtent = hugePageBytes / Page.size
    return HugePageFigures(
      nsPer4KiB: ns, nsPer2MiB: ns * Double(perExtent), extents: UInt64(pages) / perExtent,
      thpFaultAlloc: counters["thp_fault_alloc"], thpFaultFallback: counters["thp_fault_fallback"])
  }
}

/// How long and how often to measure: resolved from `--rounds`, `--seconds`, `--warmup`, `--seed`
/// and `--quick`.
struct BenchSchedule {
  var rounds: Int
  var seconds: Double
  var warmup: Double
  var seed: UInt64
}

/// Runs the selected cells in paired, interleaved rounds (DESIGN.md section 5): for each cell,
/// `rounds` times, every participant once in a fresh seeded random order, each after a short
/// warm-up; returns one row per (cell, participant) holding every round's raw sample.
struct BenchRunner {
  let machine: Machine
  let options: Bench
  let schedule: BenchSchedule
  let threadCounts: [Int]
  let selected: Set<String>

  /// The selected cells, in table order.
  func cells() -> [BenchCell] {
    var out: [BenchCell] = []
    if selected.contains("page_fault1") { out.append(BenchCell(key: "page_fault1", workload: "page_fault1", threads: 1, unit: "ns/fault")) }
    let threaded: [(String, String, String)] = [
      ("page_fault1-thp", "page_fault1-thp", "pages/s"),
      ("ebizzy", "ebizzy -mT", "records/s"), ("dontneed", "dontneed", "faults/s"), ("mmap1", "mmap1", "pairs/s"),
      ("mmap2", "mmap2", "pairs/s"), ("pft-1vma", "pft-1vma", "faults/s"), ("pft-vma-each", "pft-vma-each", "faults/s"),
      ("page_fault2", "page_fault2", "faults/s"), ("page_fault3", "page_fault3", "faults/s"),
    ]
    for (key, name, unit) in threaded where selected.contains(key) {
      for n in threadCounts { out.append(BenchCell(key: key, workload: name, threads: n, unit: unit)) }
    }
    return out
  }

  /// Every cell, every round, every participant; rows come back in participant order per cell.
  func run(_ participants: [BenchParticipant]) throws -> [BenchResult] {
    var rows: [BenchResult] = []
    for (c, cell) in cells().enumerated() {
      let orders = interleavedOrders(
        participants: participants.count, rounds: schedule.rounds, seed: schedule.seed, stream: UInt64(c))
      var samples = [[Double]](repeating: [], count: participants.count)
      var counters = [[VMStatItem: UInt64]](repeating: [:], count: participants.count)
      var huge = [HugeTally](repeating: HugeTally(), count: participants.count)
      for (r, order) in orders.enumerated() {
        printErr("\(cell.workload), \(cell.threads) thread(s)\(options.isolated ? ", isolated" : ""): round \(r + 1)/\(orders.count)…")
        for p in order {
          _ = try sample(cell, participants[p], seconds: schedule.warmup, warmup: true)
          machine.drainDeferredFrees()
          let before = machine.vmstat.snapshot
          let hostBefore = participants[p].isHost ? hostVMStat(thpFaultCounterNames) : [:]
          let measured = try sample(cell, participants[p], seconds: schedule.seconds, warmup: false)
          let hostAfter = participants[p].isHost ? hostVMStat(thpFaultCounterNames) : [:]
          let after = machine.vmstat.snapshot
          machine.drainDeferredFrees()
          samples[p].append(measured.value)
          for (item, v) in after { counters[p][item, default: 0] &+= v &- (before[item] ?? 0) }
          if let loop = measured.huge {
            let (was, now) =
              participants[p].isHost
              ? (hostBefore, hostAfter)
              : (engineVMStat(before, thpFaultCounterNames), engineVMStat(after, thpFaultCounterNames))
            huge[p].add(loop, before: was, after: now)
          }
        }
      }
      for (p, participant) in participants.enumerated() {
        var row = result(cell, participant, counters[p])
        row.samples = samples[p]
        row.value = median(samples[p])
        row.hugePages = huge[p].figures
        if cell.key == "page_fault1" {
          let lat = try latency(participant)
          (row.p50, row.p99, row.p999) = (lat.p50, lat.p99, lat.p999)
        }
        rows.append(row)
      }
    }
    return rows
  }

  /// One measurement of `cell` by `participant` for about `seconds`: the cell's figure in its unit.
  /// A warm-up of page_fault1 maps a smaller region, so that it stays short. page_fault1-thp maps
  /// --file-region-mib rounded up to whole 2 MiB extents per thread and pass.
  func sample(_ cell: BenchCell, _ participant: BenchParticipant, seconds: Double, warmup: Bool) throws -> BenchSample {
    if cell.key == "page_fault1-thp" {
      let region = hugeFaultRegion(UInt64(options.fileRegionMiB) << 20)
      let loop =
        switch participant {
        case .engine(_, let mm, let spaces):
          try hugeAnonymousFaultLoop(mm: mm, threads: cell.threads, seconds: seconds, regionBytes: region, isolated: spaces)
        case .host: try hostHugeAnonymousFaultLoop(threads: cell.threads, seconds: seconds, regionBytes: region)
        }
      return BenchSample(value: loop.rate, huge: loop)
    }
    return BenchSample(value: try figure(cell, participant, seconds: seconds, warmup: warmup))
  }

  /// `sample`'s figure for every workload but page_fault1-thp.
  private func figure(_ cell: BenchCell, _ participant: BenchParticipant, seconds: Double, warmup: Bool) throws -> Double {
    let n = cell.threads
    let region = UInt64(options.regionMiB) << 20
    let fileRegion = UInt64(options.fileRegionMiB) << 20
    let pf1Region = warmup ? min(region, 8 << 20) : region
    switch participant {
    case .engine(_, let mm, let spaces):
      switch cell.key {
      case "page_fault1":
        return try onPinnedThread {
          let cpu = try CPU(mm: mm)
          return try timeBoxed(seconds) { try anonymousFaultLoop(cpu: cpu, regionBytes: pf1Region, rounds: 1) }
        }
      case "ebizzy": return try ebizzy(mm: mm, threads: n, seconds: seconds, isolated: spaces).recordsPerSecond
      case "dontneed": return try dontneedLoop(mm: mm, threads: n, seconds: seconds, regionBytes: fileRegion, isolated: spaces)
      case "mmap1": return try mmapLoop(mm: mm, threads: n, seconds: seconds, regionBytes: region, isolated: spaces)
      case "mmap2":
        return try fileMmapLoop(mm: mm, directory: "/bench", threads: n, seconds: seconds, regionBytes: region, isolated: spaces)
      case "pft-1vma", "pft-vma-each":
        return try pftLoop(mm: mm, threads: n, seconds: seconds, sliceBytes: fileRegion, sharedVMA: cell.key == "pft-1vma")
      default:
        return try fileFaultLoop(
          mm: mm, directory: "/bench", threads: n, seconds: seconds, shared: cell.key == "page_fault3",
          regionBytes: fileRegion, isolated: spaces)
      }
    case .host(let dir):
      switch cell.key {
      case "page_fault1":
        return try onPinnedThread { try timeBoxed(seconds) { try hostAnonymousFaultLoop(regionBytes: pf1Region, rounds: 1) } }
      case "ebizzy": return try hostEbizzy(threads: n, seconds: seconds).recordsPerSecond
      case "dontneed": return try hostDontneedLoop(threads: n, seconds: seconds, regionBytes: fileRegion)
      case "mmap1": return try hostMmapLoop(threads: n, seconds: seconds, regionBytes: region)
      case "mmap2": return try hostFileMmapLoop(directory: dir, threads: n, seconds: seconds, regionBytes: region)
      case "pft-1vma", "pft-vma-each":
        return try hostPftLoop(threads: n, seconds: seconds, sliceBytes: fileRegion, sharedVMA: cell.key == "pft-1vma")
      default:
        return try hostFileFaultLoop(directory: dir, threads: n, seconds: seconds, shared: cell.key == "page_fault3", regionBytes: fileRegion)
      }
    }
  }

  /// page_fault1's latency percentiles, once per participant after its rounds.
  func latency(_ participant: BenchParticipant) throws -> LatencyPercentiles {
    let region = UInt64(options.regionMiB) << 20
    switch participant {
    case .engine(_, let mm, _):
      defer { machine.drainDeferredFrees() }
      return try onPinnedThread { try anonymousFaultLatency(cpu: try CPU(mm: mm), regionBytes: region) }
    case .host:
      return try onPinnedThread { try hostAnonymousFaultLatency(regionBytes: region) }
    }
  }

  /// The row for one participant of one cell, with the counters summed over its measured samples.
  func result(_ cell: BenchCell, _ participant: BenchParticipant, _ delta: [VMStatItem: UInt64]) -> BenchResult {
    guard case .engine(let d, _, _) = participant else {
      return BenchResult(workload: cell.workload, design: "host", threads: cell.threads, value: 0, unit: cell.unit)
    }
    func count(_ item: VMStatItem) -> UInt64 { delta[item] ?? 0 }
    let faults = Double(count(.pgfault))
    let lockless: UInt64? =
      switch d {
      case .mmapLock: nil
      case .speculative, .sequenced: count(.speculativePgfault)
      case .perVMALock: count(.vmaLockSuccess)
      }
    var aborts: [String: UInt64] = [:]
    for reason in SPFAbort.allCases where count(VMStatItem(abort: reason)) > 0 {
      aborts[reason.name] = count(VMStatItem(abort: reason))
    }
    for item in [VMStatItem.vmaLockAbort, .vmaLockRetry, .vmaLockMiss] where count(item) > 0 {
      aborts[item.name] = count(item)
    }
    return BenchResult(
      workload: cell.workload, design: d.rawValue, threads: cell.threads, value: 0, unit: cell.unit,
      locklessShare: faults > 0 ? lockless.map { Double($0) / faults } : nil, aborts: aborts)
  }
}

/// Repeats a page_fault1 pass until `seconds` have passed (at least once); ns per fault in the
/// touch loops.
private func timeBoxed(_ seconds: Double, _ pass: () throws -> FaultLoopResult) rethrows -> Double {
  var pages = 0
  var ns: UInt64 = 0
  let t0 = nowNanoseconds()
  repeat {
    let r = try pass()
    pages += r.pages
    ns += r.touchNanoseconds
  } while Double(nowNanoseconds() - t0) < seconds * 1e9
  return Double(ns) / Double(max(pages, 1))
}
