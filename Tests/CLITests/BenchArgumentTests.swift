import ArgumentParser
import Faultline
import FaultlineWorkloads
import Testing

@testable import FaultlineCLI

/// `faultline bench` argument parsing and validation (no benchmark is run).
@Suite struct BenchArgumentTests {
  @Test func defaultsSelectEveryDesignWorkloadAndOneAndTwoThreads() throws {
    let b = try Bench.parse([])
    #expect(try b.parsedDesigns() == FaultDesign.allCases)
    #expect(try b.parsedThreads() == [1, 2])
    #expect(b.workloads.split(separator: ",").map(String.init) == Bench.allWorkloads)
    #expect(b.host == false && b.json == nil && b.csv == nil && b.report == nil)
    #expect(b.fputMode == "synchronous")
  }

  @Test func listsAndOptionsParse() throws {
    let b = try Bench.parse([
      "--designs", "spf,vma_lock", "--threads", "1,2,4", "--seconds", "0.5", "--workloads", "ebizzy,pft-1vma",
      "--host", "--json", "/tmp/x.json", "--csv", "/tmp/x.csv", "--report", "/tmp/r", "--fput-mode", "deferred",
      "--memory-mib", "256", "--region-mib", "16",
    ])
    #expect(try b.parsedDesigns() == [.speculative, .perVMALock])
    #expect(try b.parsedThreads() == [1, 2, 4])
    #expect(b.seconds == 0.5 && b.host && b.json == "/tmp/x.json" && b.csv == "/tmp/x.csv" && b.report == "/tmp/r")
    #expect(b.fputMode == "deferred" && b.memoryMiB == 256 && b.regionMiB == 16)
  }

  @Test(arguments: [
    ["--designs", "bogus"],
    ["--threads", "0"],
    ["--threads", "1,x"],
    ["--threads", "100000"],
    ["--seconds", "0"],
    ["--seconds", "-1"],
    ["--rounds", "0"],
    ["--rounds", "1"],
    ["--warmup", "-1"],
    ["--seed", "-3"],
    ["--memory-mib", "8"],
    ["--region-mib", "0"],
    ["--memory-mib", "64", "--region-mib", "64"],
    ["--fput-mode", "sometimes"],
    ["--workloads", "page_fault9"],
    ["--workloads", "page_fault1-THP"],
    ["--workloads", "page_fault1,thp"],
    ["--no-such-option"],
  ])
  func badArgumentsAreRejectedWithAMessage(_ args: [String]) {
    do {
      _ = try Bench.parse(args)
      Issue.record("\(args) was accepted")
    } catch {
      #expect(!Bench.message(for: error).isEmpty)
    }
  }

  @Test func scheduleDefaultsQuickAndExplicitValues() throws {
    let d = try Bench.parse([]).resolvedSchedule()
    #expect(d.rounds >= 5 && d.rounds == Bench.defaultSchedule.rounds)
    #expect(d.seconds == Bench.defaultSchedule.seconds && d.warmup == Bench.defaultSchedule.warmup)
    let q = try Bench.parse(["--quick"]).resolvedSchedule()
    #expect(q.rounds < d.rounds && q.seconds < d.seconds)
    let e = try Bench.parse(["--quick", "--rounds", "9", "--seconds", "0.2", "--warmup", "0", "--seed", "77"]).resolvedSchedule()
    #expect(e.rounds == 9 && e.seconds == 0.2 && e.warmup == 0 && e.seed == 77)
    #expect(try Bench.parse(["--seed", "18446744073709551615"]).resolvedSchedule().seed == UInt64.max)
  }

  @Test func tableOpensWithProvenanceNotesAndSummary() throws {
    let row = { (d: String, s: [Double]) in
      BenchResult(workload: "page_fault1", design: d, threads: 1, value: 0, unit: "ns/fault", samples: s)
    }
    let run = BenchRun(
      rows: addRoundStatistics([row("mmap_lock", [100, 110, 90, 105, 95]), row("spf", [80, 88, 72, 84, 76])], seed: 1),
      zeroCanary: [1: 50], date: "d", machine: "m", seed: 5, rounds: 5,
      machineInfo: MachineInfo(cpuModel: "cpu", cpuCount: 2, kernel: "Linux"), commit: "abc", notes: ["few CPUs"])
    let table = renderTable(run)
    let lines = table.split(separator: "\n").map(String.init)
    #expect(lines[0] == "seed 5 (--seed 5 repeats the schedule); 5 paired rounds per cell; cpu, 2 CPUs, Linux; commit abc")
    #expect(lines[1] == "note: few CPUs")
    #expect(lines[2].hasPrefix("Against mmap_lock"))
    #expect(lines[3] == "  page_fault1, 1 thread: spf faster 1.25x [1.25, 1.25]")
    #expect(lines[4].hasPrefix("workload") && lines[4].contains("95% interval") && lines[4].contains("verdict"))
    #expect(lines[6].contains("1.25-1.25") && lines[6].contains("faster"))
  }

  @Test func helpExplainsTheWorkloads() {
    let help = Bench.helpMessage()
    for w in [
      "page_fault1", "ebizzy", "page_fault2", "pft", "mmap1", "dontneed", "--host", "--report", "--quick", "--seed",
      "--rounds", "bootstrap", "≈", "page_fault1-thp", "MADV_HUGEPAGE", "thp_fault_alloc", "thp_fault_fallback",
    ] {
      #expect(help.contains(w), "help does not mention \(w)")
    }
  }

  /// page_fault1-thp is a default workload and, selected alone, makes one cell per thread count
  /// (it is threaded, unlike page_fault1), whose rate is pages written per second.
  @Test func pageFault1THPSelectsOneCellPerThreadCount() throws {
    #expect(try Bench.parse([]).workloads.split(separator: ",").contains("page_fault1-thp"))
    let b = try Bench.parse(["--workloads", "page_fault1-thp,page_fault1", "--threads", "1,2,4", "--file-region-mib", "3"])
    let machine = try Machine(memoryBytes: 16 << 20)
    let runner = BenchRunner(
      machine: machine, options: b, schedule: b.resolvedSchedule(), threadCounts: try b.parsedThreads(),
      selected: Set(b.workloads.split(separator: ",").map(String.init)))
    #expect(runner.cells() == [
      BenchCell(key: "page_fault1", workload: "page_fault1", threads: 1, unit: "ns/fault"),
      BenchCell(key: "page_fault1-thp", workload: "page_fault1-thp", threads: 1, unit: "pages/s"),
      BenchCell(key: "page_fault1-thp", workload: "page_fault1-thp", threads: 2, unit: "pages/s"),
      BenchCell(key: "page_fault1-thp", workload: "page_fault1-thp", threads: 4, unit: "pages/s"),
    ])
    #expect(b.fileRegionMiB == 3 && hugeFaultRegion(UInt64(b.fileRegionMiB) << 20) == 4 << 20)
  }

  /// A tally with the THP counters gives their deltas over the measured rounds; one without
  /// them (the engine before its THP fault path) leaves them nil, shown as pending.
  @Test func hugeTallyCountsDeltasOrSaysPending() {
    let loop = HugeFaultLoopResult(pages: 2048, seconds: 1, touchNanoseconds: 204_800)
    var host = HugeTally()
    host.add(loop, before: ["thp_fault_alloc": 10, "thp_fault_fallback": 1], after: ["thp_fault_alloc": 14, "thp_fault_fallback": 1])
    host.add(loop, before: ["thp_fault_alloc": 20, "thp_fault_fallback": 1], after: ["thp_fault_alloc": 24, "thp_fault_fallback": 1])
    #expect(host.figures == HugePageFigures(nsPer4KiB: 100, nsPer2MiB: 51_200, extents: 8, thpFaultAlloc: 8, thpFaultFallback: 0))
    #expect(host.figures!.hugeText == "huge 8/8 extents, fallback 0")
    var engine = HugeTally()
    engine.add(loop, before: [:], after: [:])
    #expect(engine.figures!.thpFaultAlloc == nil && engine.figures!.thpFaultFallback == nil)
    #expect(engine.figures!.hugeText == "huge pending (no thp_fault_alloc counter)")
    #expect(HugeTally().figures == nil)
  }

  /// The table lists page_fault1-thp's per-size figures under the main table, against the same
  /// participant's page_fault1 ns per fault.
  @Test func tableShowsHugePageFiguresAgainstPageFault1() {
    let figures = { (ns: Double, alloc: UInt64?) in
      HugePageFigures(nsPer4KiB: ns, nsPer2MiB: ns * 512, extents: 400, thpFaultAlloc: alloc, thpFaultFallback: alloc.map { _ in 0 })
    }
    let run = BenchRun(
      rows: [
        BenchResult(workload: "page_fault1", design: "host", threads: 1, value: 2000, unit: "ns/fault"),
        BenchResult(workload: "page_fault1-thp", design: "mmap_lock", threads: 1, value: 1e6, unit: "pages/s", hugePages: figures(900, nil)),
        BenchResult(workload: "page_fault1-thp", design: "host", threads: 1, value: 7e6, unit: "pages/s", hugePages: figures(500, 400)),
      ], zeroCanary: [:], date: "d", machine: "m")
    let lines = renderTable(run).split(separator: "\n").map(String.init)
    #expect(lines.contains { $0.hasPrefix("page_fault1-thp  mmap_lock") && $0.contains("pages/s") })
    let mmapLock = lines.first { $0.hasPrefix("  mmap_lock") }
    #expect(mmapLock?.contains("900.0 |    460800 |") == true && mmapLock?.hasSuffix("-  huge pending (no thp_fault_alloc counter)") == true)
    let host = lines.first { $0.hasPrefix("  host") }
    #expect(host?.contains("500.0 |    256000 |   4.00x  huge 400/400 extents, fallback 0") == true)
  }

  @Test func toolLevelCommandDefaultsToBench() throws {
    let command = try FaultlineCommand.parseAsRoot([])
    #expect(command is Bench)
  }
}
