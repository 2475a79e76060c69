import Foundation
import FaultlineWorkloads
import Testing

/// JSON, CSV and HTML report writers for `faultline bench`.
@Suite struct ReportWriterTests {
  /// Two workloads; page_fault1 has no host row, ebizzy has one. Only spf rows carry aborts.
  static func sampleRun() -> BenchRun {
    var rows: [BenchResult] = []
    for d in ["mmap_lock", "spf", "vma_lock"] {
      rows.append(BenchResult(
        workload: "page_fault1", design: d, threads: 1, value: d == "mmap_lock" ? 900 : 600, unit: "ns/fault",
        vsMmapLock: d == "mmap_lock" ? 1 : 1.5, locklessShare: d == "mmap_lock" ? nil : 0.98,
        aborts: d == "spf" ? ["spf_vma_changed": 12, "spf_no_vma": 3] : [:], p50: 500, p99: 2000, p999: 9000))
    }
    for d in ["mmap_lock", "spf", "host"] {
      for t in [1, 2, 4] {
        rows.append(BenchResult(
          workload: "ebizzy -mT", design: d, threads: t, value: Double(t) * (d == "spf" ? 15000 : 10000),
          unit: "records/s", vsMmapLock: d == "host" ? nil : (d == "spf" ? 1.5 : 1), vsHost: d == "host" ? 1 : 0.8,
          aborts: d == "spf" && t > 1 ? ["spf_vma_changed": UInt64(t * 7)] : [:]))
      }
    }
    return BenchRun(rows: rows, zeroCanary: [1: 310.5, 2: 355.25, 4: 420], date: "2025-01-02T03:04:05Z", machine: "test box, 2 vCPU")
  }

  /// The markup of each `<svg class="chart" …>…</svg>` element, keyed by its data-workload.
  static func charts(_ html: String) -> [(workload: String, body: String)] {
    var out: [(String, String)] = []
    var rest = html[...]
    while let start = rest.range(of: "<svg class=\"chart\" data-workload=\"") {
      let afterAttr = rest[start.upperBound...]
      let q = afterAttr.firstIndex(of: "\"")!
      let name = String(afterAttr[..<q])
      let end = afterAttr.range(of: "</svg>")!
      out.append((name, String(rest[start.lowerBound..<end.upperBound])))
      rest = rest[end.upperBound...]
    }
    return out
  }

  static func count(_ needle: String, in hay: String) -> Int { hay.components(separatedBy: needle).count - 1 }

  @Test func jsonRoundTrips() throws {
    var run = Self.sampleRun()
    run.rows[0].vsHost = .infinity  // non-finite figures must not fail the report
    let json = try renderJSON(run)
    #expect(json.contains("\"zeroCanary\""))
    #expect(json.contains("\n  "))  // pretty printed
    let decoded = try decodeBenchRunJSON(json)
    #expect(decoded == run)
    // Plain JSONDecoder reads it too when no non-finite figures are present.
    let plain = Self.sampleRun()
    let back = try JSONDecoder().decode(BenchRun.self, from: Data(try renderJSON(plain).utf8))
    #expect(back == plain)
  }

  @Test func csvHasHeaderAndOneLinePerRow() {
    let run = Self.sampleRun()
    let lines = renderCSV(run).split(separator: "\n", omittingEmptySubsequences: false)
    let header =
      "workload,design,threads,value,unit,vs_mmap_lock,vs_host,lockless_share,p50_ns,p99_ns,p999_ns,aborts,value_low,value_high,ratio_low,ratio_high,verdict,samples,seed,cpu_model,cpus,kernel,commit,"
      + "ns_per_4k,ns_per_2m,thp_extents,thp_fault_alloc,thp_fault_fallback"
    #expect(lines.first.map(String.init) == header)
    #expect(lines.last == "")  // trailing newline
    #expect(lines.count == run.rows.count + 2)
    // spf page_fault1: aborts sorted by name, empty vs_host.
    #expect(lines[2] == "page_fault1,spf,1,600.0,ns/fault,1.5,,0.98,500.0,2000.0,9000.0,spf_no_vma=3;spf_vma_changed=12,,,,,,,,,,,,,,,,")
    #expect(lines[1].hasSuffix(",900.0,ns/fault,1.0,,,500.0,2000.0,9000.0,,,,,,,,,,,,,,,,,"))
  }

  @Test func csvQuotesCommasAndQuotes() {
    let run = BenchRun(
      rows: [BenchResult(workload: "pft, one \"big\" VMA", design: "spf", threads: 2, value: 1, unit: "faults/s")],
      zeroCanary: [:], date: "d", machine: "m")
    let lines = renderCSV(run).split(separator: "\n")
    #expect(lines.count == 2)
    #expect(lines[1] == "\"pft, one \"\"big\"\" VMA\",spf,2,1.0,faults/s,,,,,,,,,,,,,,,,,,,,,,,")
  }

  @Test func htmlHasOneChartPerWorkloadWithAxesAndSeries() {
    let run = Self.sampleRun()
    let html = renderHTML(run)
    #expect(html.hasPrefix("<!DOCTYPE html>"))
    #expect(!html.contains("<script"))
    #expect(!html.contains("src="))
    #expect(!html.contains("<link"))
    let charts = Self.charts(html)
    #expect(Self.count("<svg class=\"chart\"", in: html) == 2)
    #expect(charts.map(\.workload) == ["page_fault1", "ebizzy -mT"])
    for (w, body) in charts {
      #expect(Self.count("<line class=\"axis x\"", in: body) == 1)
      #expect(Self.count("<line class=\"axis y\"", in: body) == 1)
      let designs = Set(run.rows.filter { $0.workload == w }.map(\.design))
      #expect(Self.count("<polyline class=\"series\"", in: body) == designs.count)
      for d in designs {
        #expect(body.contains("<polyline class=\"series\" data-design=\"\(d)\""))
        #expect(body.contains("class=\"legend-entry\" data-design=\"\(d)\""))
      }
      let unit = run.rows.first { $0.workload == w }!.unit
      #expect(body.contains(">\(unit)</text>"))
      #expect(body.contains(">threads</text>"))
    }
    // ebizzy: three points per series, one marker each.
    let ebizzy = charts.first { $0.workload == "ebizzy -mT" }!.body
    #expect(Self.count("<circle class=\"point\"", in: ebizzy) == 9)
    // The run's metadata, the latency table and the canary.
    #expect(html.contains("2025-01-02T03:04:05Z"))
    #expect(html.contains("test box, 2 vCPU"))
    #expect(html.contains("class=\"latency\""))
    #expect(html.contains("class=\"canary\""))
    #expect(html.contains("355.2") || html.contains("355.3"))
  }

  @Test func abortBarsOnlyWhenAbortsExist() {
    let run = Self.sampleRun()
    let html = renderHTML(run)
    #expect(html.contains("<svg class=\"chart aborts\""))
    // spf page_fault1 (1 thread) and spf ebizzy at 2 and 4 threads.
    #expect(Self.count("<g class=\"bar\"", in: html) == 3)
    #expect(Self.count("<rect class=\"segment\"", in: html) == 4)
    #expect(html.contains("data-reason=\"spf_no_vma\""))

    var clean = run
    for i in clean.rows.indices { clean.rows[i].aborts = [:] }
    clean.rows[0].aborts = ["spf_vma_changed": 0]  // zero counts draw nothing
    let cleanHTML = renderHTML(clean)
    #expect(!cleanHTML.contains("class=\"chart aborts\""))
    #expect(!cleanHTML.contains("<g class=\"bar\""))
    #expect(!cleanHTML.contains("<rect class=\"segment\""))
  }

  @Test func noLatencyTableWithoutPercentiles() {
    var run = Self.sampleRun()
    for i in run.rows.indices { run.rows[i].p50 = nil; run.rows[i].p99 = nil; run.rows[i].p999 = nil }
    #expect(!renderHTML(run).contains("class=\"latency\""))
  }

  @Test func htmlEscapesText() {
    let run = BenchRun(
      rows: [
        BenchResult(workload: "a<b&c", design: "spf\"x", threads: 1, value: 5, unit: "faults/s",
                    aborts: ["<r>": 2]),
        BenchResult(workload: "a<b&c", design: "spf\"x", threads: 2, value: 9, unit: "faults/s"),
      ],
      zeroCanary: [1: 1], date: "<now>", machine: "m&m's")
    let html = renderHTML(run)
    #expect(html.contains("a&lt;b&amp;c"))
    #expect(!html.contains("a<b&c"))
    #expect(html.contains("<svg class=\"chart\" data-workload=\"a&lt;b&amp;c\""))
    #expect(html.contains("data-design=\"spf&quot;x\""))
    #expect(html.contains("&lt;r&gt;"))
    #expect(html.contains("&lt;now&gt;"))
    #expect(html.contains("m&amp;m&#39;s"))
  }

  @Test func edgeCasesRender() throws {
    // Empty run, a single thread count, zero and non-finite values: no crash, valid charts.
    let empty = BenchRun(rows: [], zeroCanary: [:], date: "", machine: "")
    #expect(!renderHTML(empty).contains("<svg"))
    #expect(renderCSV(empty).split(separator: "\n").count == 1)
    _ = try renderJSON(empty)
    let odd = BenchRun(
      rows: [
        BenchResult(workload: "w", design: "spf", threads: 3, value: 0, unit: "faults/s"),
        BenchResult(workload: "w", design: "seq", threads: 3, value: .nan, unit: "faults/s", vsMmapLock: .infinity),
      ],
      zeroCanary: [:], date: "d", machine: "m")
    let html = renderHTML(odd)
    #expect(Self.count("<polyline class=\"series\"", in: html) == 2)
    #expect(!html.contains("nan,") && !html.contains("inf,"))
    #expect(try decodeBenchRunJSON(renderJSON(odd)).rows[1].vsMmapLock == .infinity)
  }

  @Test func writeReportWritesThreeFiles() throws {
    let base = FileManager.default.temporaryDirectory.appendingPathComponent("faultline-report-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: base) }
    let dir = base.appendingPathComponent("nested/report").path
    let run = Self.sampleRun()
    let index = try writeReport(run, to: dir)
    #expect(index == dir + "/index.html")
    for name in ["index.html", "results.json", "results.csv"] {
      #expect(FileManager.default.fileExists(atPath: dir + "/" + name))
    }
    #expect(try String(contentsOfFile: index, encoding: .utf8) == renderHTML(run))
    #expect(try String(contentsOfFile: dir + "/results.csv", encoding: .utf8) == renderCSV(run))
    #expect(try decodeBenchRunJSON(String(contentsOfFile: dir + "/results.json", encoding: .utf8)) == run)
    // Writing again into the existing directory overwrites.
    _ = try writeReport(run, to: dir)
  }

  @Test func writeReportThrowsWhenPathIsAFile() throws {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("faultline-report-file-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: file) }
    try "x".write(to: file, atomically: true, encoding: .utf8)
    #expect(throws: (any Error).self) { try writeReport(Self.sampleRun(), to: file.path) }
  }
}
