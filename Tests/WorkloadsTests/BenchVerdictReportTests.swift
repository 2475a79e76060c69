import Foundation
import FaultlineWorkloads
import Testing

/// The verdict half of the bench outputs: raw samples and provenance in JSON and CSV, the summary
/// wording, and the HTML's error bars and ratio matrix, on constructed runs.
@Suite struct BenchVerdictReportTests {
  /// page_fault1 at 1 thread: spf significantly slower, vma_lock not significant; ebizzy at
  /// 2 threads: nothing significant; a host row that is never a finding.
  static func pairedRun() -> BenchRun {
    func row(_ w: String, _ d: String, _ t: Int, _ unit: String, _ samples: [Double]) -> BenchResult {
      BenchResult(workload: w, design: d, threads: t, value: 0, unit: unit, samples: samples)
    }
    let rows = addRoundStatistics([
      row("page_fault1", "mmap_lock", 1, "ns/fault", [1000, 1100, 900, 1050, 950]),
      row("page_fault1", "spf", 1, "ns/fault", [1200, 1300, 1100, 1250, 1150]),
      row("page_fault1", "vma_lock", 1, "ns/fault", [990, 1120, 880, 1060, 960]),
      row("page_fault1", "host", 1, "ns/fault", [300, 310, 290, 305, 295]),
      row("ebizzy -mT", "mmap_lock", 2, "records/s", [500, 520, 480, 510, 490]),
      row("ebizzy -mT", "spf", 2, "records/s", [510, 500, 490, 530, 480]),
      row("ebizzy -mT", "vma_lock", 2, "records/s", [495, 525, 470, 515, 500]),
    ], seed: 2024)
    return BenchRun(
      rows: rows, zeroCanary: [1: 300], date: "2025-06-01T00:00:00Z", machine: "2 CPUs, 8 GiB",
      seed: UInt64.max - 12, rounds: 5,
      machineInfo: MachineInfo(cpuModel: "AMD EPYC 7B13, rev \"B\"", cpuCount: 2, kernel: "Linux 6.8.0 x86_64"),
      commit: "0123456789abcdef0123456789abcdef01234567", notes: ["2 CPUs for up to 4 threads"])
  }

  @Test func theConstructedRunHasTheIntendedVerdicts() {
    let run = Self.pairedRun()
    #expect(run.rows.map { $0.verdict } == [nil, .slower, .similar, .faster, nil, .similar, .similar])
  }

  @Test func summaryNamesSignificantDesignsWithRatioAndInterval() {
    let run = Self.pairedRun()
    let spf = run.rows[1]
    let lo = String(format: "%.2f", spf.ratioInterval!.low), hi = String(format: "%.2f", spf.ratioInterval!.high)
    #expect(benchSummary(run) == [
      "Against mmap_lock (median ratio over 5 paired rounds, 95% interval; above 1 is better):",
      "  page_fault1, 1 thread: spf slower \(String(format: "%.2f", spf.vsMmapLock!))x [\(lo), \(hi)]",
      "  ebizzy -mT, 2 threads: no significant difference",
    ])
    #expect(spf.vsMmapLock! < 1 && spf.ratioInterval!.high < 1)
  }

  @Test func ratioBoundsJustPastOneDoNotReadAsOne() {
    #expect(ratioText(1.0034) == "1.003")
    #expect(ratioText(0.9981) == "0.998")
    #expect(ratioText(0.99972) == "0.9997")
    #expect(ratioText(1) == "1.00")
    #expect(ratioText(0.854) == "0.85")
  }

  @Test func summaryIsEmptyWithoutPairedRounds() {
    #expect(benchSummary(ReportWriterTests.sampleRun()).isEmpty)
    var noBase = Self.pairedRun()
    noBase.rows.removeAll { $0.design == "mmap_lock" }
    #expect(benchSummary(noBase).isEmpty)
  }

  @Test func jsonKeepsRawSamplesSeedMachineAndCommit() throws {
    let run = Self.pairedRun()
    let json = try renderJSON(run)
    for key in ["\"samples\"", "\"seed\"", "\"machineInfo\"", "\"cpuModel\"", "\"kernel\"", "\"commit\"", "\"ratioInterval\""] {
      #expect(json.contains(key), "JSON lacks \(key)")
    }
    let back = try decodeBenchRunJSON(json)
    #expect(back == run)
    #expect(back.seed == UInt64.max - 12)
    #expect(back.rows[1].samples == [1200, 1300, 1100, 1250, 1150])
    // A file from before paired rounds still reads.
    let old = try decodeBenchRunJSON(renderJSON(ReportWriterTests.sampleRun()))
    #expect(old.seed == nil && old.rows[0].samples == nil)
  }

  @Test func csvRoundTripsRowsRawSamplesAndProvenance() throws {
    let run = Self.pairedRun()
    let csv = renderCSV(run)
    #expect(csv.contains("1200.0;1300.0;1100.0;1250.0;1150.0"))
    let back = try decodeBenchCSV(csv)
    #expect(back.rows == run.rows)
    #expect(back.seed == run.seed)
    #expect(back.machineInfo == run.machineInfo)
    #expect(back.commit == run.commit)
    // The original twelve columns read too, quoting included.
    let old = ReportWriterTests.sampleRun()
    let header12 = "workload,design,threads,value,unit,vs_mmap_lock,vs_host,lockless_share,p50_ns,p99_ns,p999_ns,aborts"
    let twelve = renderCSV(old).split(separator: "\n").map { line -> String in
      line.hasPrefix("workload,") ? header12 : String(line.dropLast(16))
    }.joined(separator: "\n") + "\n"
    #expect(try decodeBenchCSV(twelve).rows == old.rows)
  }

  @Test func csvDecodingReportsTheBadLine() {
    let csv = benchCSVHeader + "\nw,spf,1,notanumber,faults/s" + String(repeating: ",", count: 23) + "\n"
    #expect(throws: BenchCSVError.self) { try decodeBenchCSV(csv) }
    do {
      _ = try decodeBenchCSV(csv)
    } catch {
      #expect(error.line == 2)
    }
  }

  @Test func htmlOpensWithTheSummaryAndHasErrorBarsAndTheMatrix() throws {
    let run = Self.pairedRun()
    let html = renderHTML(run)
    let summary = try #require(html.range(of: "<section class=\"summary\">"))
    let table = try #require(html.range(of: "<table class=\"results\">"))
    #expect(summary.lowerBound < table.lowerBound)
    #expect(html.contains("<li>page_fault1, 1 thread: spf slower "))
    #expect(html.contains("<li>ebizzy -mT, 2 threads: no significant difference</li>"))
    // One error bar per plotted point with an interval: every row here.
    #expect(ReportWriterTests.count("<g class=\"error-bar\"", in: html) == run.rows.count)
    // The matrix: spf and vma_lock by the two cells; colour only where significant.
    #expect(ReportWriterTests.count("<svg class=\"matrix\"", in: html) == 1)
    #expect(ReportWriterTests.count("<rect class=\"cell ", in: html) == 4)
    #expect(ReportWriterTests.count("<rect class=\"cell slower\"", in: html) == 1)
    #expect(ReportWriterTests.count("<rect class=\"cell similar\"", in: html) == 3)
    #expect(html.contains("<pattern id=\"hatch\""))
    let similarCell = try #require(html.range(of: "<rect class=\"cell similar\""))
    #expect(html[similarCell.lowerBound...].prefix(400).contains("fill=\"url(#hatch)\""))
    // Provenance and notes.
    #expect(html.contains("0123456789abcdef0123456789abcdef01234567"))
    #expect(html.contains("AMD EPYC 7B13, rev &quot;B&quot;"))
    #expect(html.contains("<p class=\"note\">2 CPUs for up to 4 threads</p>"))
    // The old report has neither.
    let plain = renderHTML(ReportWriterTests.sampleRun())
    #expect(!plain.contains("class=\"summary\"") && !plain.contains("class=\"matrix\"") && !plain.contains("<g class=\"error-bar\""))
  }

  /// page_fault1-thp rows: one whose THP counters are pending (the engine today), one with them
  /// (the host).
  static func hugeRun() -> BenchRun {
    BenchRun(
      rows: [
        BenchResult(
          workload: "page_fault1-thp", design: "mmap_lock", threads: 2, value: 123_456.5, unit: "pages/s",
          hugePages: HugePageFigures(nsPer4KiB: 812.25, nsPer2MiB: 415_872, extents: 96, thpFaultAlloc: nil, thpFaultFallback: nil)),
        BenchResult(
          workload: "page_fault1-thp", design: "host", threads: 2, value: 7_654_321, unit: "pages/s",
          hugePages: HugePageFigures(nsPer4KiB: 101.5, nsPer2MiB: 51_968, extents: 2048, thpFaultAlloc: 2040, thpFaultFallback: 8)),
      ], zeroCanary: [:], date: "2025-06-01T00:00:00Z", machine: "m")
  }

  @Test func hugePageFiguresRoundTripThroughJSONAndCSV() throws {
    let run = Self.hugeRun()
    let json = try renderJSON(run)
    #expect(json.contains("\"hugePages\"") && json.contains("\"nsPer4KiB\"") && json.contains("\"thpFaultAlloc\""))
    #expect(try decodeBenchRunJSON(json) == run)
    let csv = renderCSV(run)
    #expect(csv.split(separator: "\n")[2].hasSuffix(",101.5,51968.0,2048,2040,8"))
    #expect(csv.split(separator: "\n")[1].hasSuffix(",812.25,415872.0,96,,"))
    #expect(try decodeBenchCSV(csv).rows == run.rows)
  }

  @Test func htmlHasTheHugePageTableOnlyWhenMeasured() {
    let html = renderHTML(Self.hugeRun())
    #expect(ReportWriterTests.count("<table class=\"huge\">", in: html) == 1)
    #expect(html.contains("<td class=\"n\">96</td><td class=\"n\">pending</td><td class=\"n\">pending</td>"))
    #expect(html.contains("<td class=\"n\">2048</td><td class=\"n\">2040</td><td class=\"n\">8</td>"))
    #expect(!renderHTML(Self.pairedRun()).contains("class=\"huge\""))
  }
}
