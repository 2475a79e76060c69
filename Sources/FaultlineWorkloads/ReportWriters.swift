import Foundation

// Report writers for `faultline bench` (DESIGN.md section 5): JSON, CSV and a self-contained
// HTML page with inline SVG charts. All output is deterministic for a given BenchRun.

// MARK: - JSON

/// Non-finite figures (a ratio against a zero rate, say) are written as the strings `"Infinity"`,
/// `"-Infinity"` and `"NaN"` rather than failing the whole report.
private let nonFiniteEncoding = JSONEncoder.NonConformingFloatEncodingStrategy.convertToString(
  positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
private let nonFiniteDecoding = JSONDecoder.NonConformingFloatDecodingStrategy.convertFromString(
  positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")

/// The run as pretty-printed JSON with sorted keys. `zeroCanary` is an object keyed by the thread
/// count as a string. Non-finite numbers are written as `"Infinity"`, `"-Infinity"`, `"NaN"`.
public func renderJSON(_ run: BenchRun) throws -> String {
  let encoder = JSONEncoder()
  encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
  encoder.nonConformingFloatEncodingStrategy = nonFiniteEncoding
  let data = try encoder.encode(run)
  return String(decoding: data, as: UTF8.self) + "\n"
}

/// Reads back what `renderJSON` wrote.
public func decodeBenchRunJSON(_ json: String) throws -> BenchRun {
  let decoder = JSONDecoder()
  decoder.nonConformingFloatDecodingStrategy = nonFiniteDecoding
  return try decoder.decode(BenchRun.self, from: Data(json.utf8))
}

// MARK: - HTML

/// Escapes text for HTML element content and attribute values.
public func htmlEscape(_ s: String) -> String {
  var out = ""
  out.reserveCapacity(s.utf8.count)
  for c in s {
    switch c {
    case "&": out += "&amp;"
    case "<": out += "&lt;"
    case ">": out += "&gt;"
    case "\"": out += "&quot;"
    case "'": out += "&#39;"
    default: out.append(c)
    }
  }
  return out
}

/// One self-contained HTML page: the run's date, machine, seed and commit, the summary of what it
/// found (`benchSummary`), the table of all rows, one SVG line chart per workload (value against
/// threads, one series per design, error bars for the 95% interval), the workload × design ratio
/// matrix, a stacked bar chart of abort counts, a latency table when measured, page_fault1-thp's
/// per-size figures (`<table class="huge">`) when measured, and the zeroing canary. No scripts, no external resources.
///
/// Stable markup: the summary is `<section class="summary">` with one `<li>` per cell; each
/// workload chart is `<svg class="chart" data-workload="…">` with `<line class="axis x">`,
/// `<line class="axis y">`, one `<polyline class="series" data-design="…">` per design and one
/// `<g class="error-bar">` per point with an interval; the matrix is `<svg class="matrix">` with
/// one `<rect class="cell …">` per (cell, design) (see `ratioMatrix`); the abort chart is
/// `<svg class="chart aborts">` with one `<g class="bar" …>` per (design, workload, threads)
/// that has aborts.
public func renderHTML(_ run: BenchRun) -> String {
  var h = """
    <!DOCTYPE html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Faultline bench report</title>
    <style>\(reportCSS)</style>
    </head>
    <body>
    <h1>Faultline bench report</h1>
    <p class="meta">Run: <span class="date">\(htmlEscape(run.date))</span> &middot; Machine: <span class="machine">\(htmlEscape(run.machine))</span> &middot; \(run.rows.count) rows</p>

    """
  h += provenanceHTML(run)

  // What the run found, ahead of everything else.
  let summary = benchSummary(run)
  if !summary.isEmpty {
    h += "<section class=\"summary\">\n<h2>Summary</h2>\n<p>\(htmlEscape(summary[0]))</p>\n<ul>\n"
    for line in summary.dropFirst() {
      h += "<li>\(htmlEscape(line.trimmingCharacters(in: .whitespaces)))</li>\n"
    }
    h += "</ul>\n</section>\n"
  }

  // Results table.
  h += "<h2>Results</h2>\n"
  if run.rows.isEmpty {
    h += "<p class=\"empty\">No results.</p>\n"
  } else {
    h += "<table class=\"results\">\n<thead><tr>"
    for c in [
      "workload", "design", "threads", "value", "unit", "vs mmap_lock", "95% interval", "verdict", "vs host",
      "lockless", "aborts",
    ] {
      h += "<th>\(c)</th>"
    }
    h += "</tr></thead>\n<tbody>\n"
    for r in run.rows {
      let aborts = r.aborts.filter { $0.value > 0 }.sorted { $0.key < $1.key }
        .map { "\(htmlEscape($0.key))=\($0.value)" }.joined(separator: " ")
      h += "<tr data-design=\"\(htmlEscape(r.design))\">"
      h += "<td>\(htmlEscape(r.workload))</td><td>\(htmlEscape(r.design))</td><td class=\"n\">\(r.threads)</td>"
      h += "<td class=\"n\">\(formatValue(r.value))</td><td>\(htmlEscape(r.unit))</td>"
      h += "<td class=\"n\">\(r.vsMmapLock.map { formatFixed($0, 2) + "&times;" } ?? "&ndash;")</td>"
      h += "<td class=\"n\">\(r.ratioInterval.map { ratioText($0.low) + "&ndash;" + ratioText($0.high) } ?? "&ndash;")</td>"
      h += "<td class=\"verdict\">\(r.verdict.map { htmlEscape($0.rawValue) } ?? "&ndash;")</td>"
      h += "<td class=\"n\">\(r.vsHost.map { formatFixed($0, 2) + "&times;" } ?? "&ndash;")</td>"
      h += "<td class=\"n\">\(r.locklessShare.map { formatFixed(100 * $0, 1) + "%" } ?? "&ndash;")</td>"
      h += "<td class=\"aborts\">\(aborts.isEmpty ? "&ndash;" : aborts)</td></tr>\n"
    }
    h += "</tbody>\n</table>\n"
  }

  // Line charts, one per workload, in order of first appearance.
  let workloads = orderedUnique(run.rows.map(\.workload))
  if !workloads.isEmpty {
    h += "<h2>Scaling by workload</h2>\n<div class=\"charts\">\n"
    for w in workloads {
      h += "<figure>\n" + lineChart(workload: w, rows: run.rows.filter { $0.workload == w }) + "</figure>\n"
    }
    h += "</div>\n"
  }

  // Ratio matrix.
  if run.rows.contains(where: { $0.verdict != nil }) {
    h += "<h2>Against mmap_lock</h2>\n<figure>\n" + ratioMatrix(run.rows) + "</figure>\n"
  }

  // Abort chart.
  h += "<h2>Aborts and fallbacks</h2>\n"
  let abortRows = run.rows.filter { $0.aborts.values.contains { $0 > 0 } }
  if abortRows.isEmpty {
    h += "<p class=\"empty\">No aborts recorded.</p>\n"
  } else {
    h += "<figure>\n" + abortChart(abortRows) + "</figure>\n"
  }

  // Latency.
  let latencyRows = run.rows.filter { $0.p50 != nil || $0.p99 != nil || $0.p999 != nil }
  if !latencyRows.isEmpty {
    h += "<h2>Fault latency</h2>\n<table class=\"latency\">\n<thead><tr>"
    h += "<th>workload</th><th>design</th><th>threads</th><th>p50 (ns)</th><th>p99 (ns)</th><th>p99.9 (ns)</th>"
    h += "</tr></thead>\n<tbody>\n"
    for r in latencyRows {
      h += "<tr><td>\(htmlEscape(r.workload))</td><td>\(htmlEscape(r.design))</td><td class=\"n\">\(r.threads)</td>"
      for p in [r.p50, r.p99, r.p999] { h += "<td class=\"n\">\(p.map(formatValue) ?? "&ndash;")</td>" }
      h += "</tr>\n"
    }
    h += "</tbody>\n</table>\n"
  }

  // page_fault1-thp's per-size figures.
  let hugeRows = run.rows.filter { $0.hugePages != nil }
  if !hugeRows.isEmpty {
    h += "<h2>Huge pages (page_fault1-thp)</h2>\n<p>Touch time per 4 KiB page written (comparable with "
    h += "page_fault1&rsquo;s ns per fault) and per 2 MiB extent (one huge fault where THP applied), and the "
    h += "THP fault counters over the measured rounds against the 2 MiB extents written.</p>\n"
    h += "<table class=\"huge\">\n<thead><tr><th>design</th><th>threads</th><th>ns per 4 KiB</th>"
    h += "<th>ns per 2 MiB</th><th>2 MiB extents</th><th>thp_fault_alloc</th><th>thp_fault_fallback</th>"
    h += "</tr></thead>\n<tbody>\n"
    for r in hugeRows {
      let g = r.hugePages!
      h += "<tr data-design=\"\(htmlEscape(r.design))\"><td>\(htmlEscape(r.design))</td><td class=\"n\">\(r.threads)</td>"
      h += "<td class=\"n\">\(formatFixed(g.nsPer4KiB, 1))</td><td class=\"n\">\(formatValue(g.nsPer2MiB))</td>"
      h += "<td class=\"n\">\(g.extents)</td>"
      h += "<td class=\"n\">\(g.thpFaultAlloc.map { String($0) } ?? "pending")</td>"
      h += "<td class=\"n\">\(g.thpFaultFallback.map { String($0) } ?? "pending")</td></tr>\n"
    }
    h += "</tbody>\n</table>\n"
  }

  // Zeroing canary.
  h += "<h2>Zeroing canary</h2>\n"
  if run.zeroCanary.isEmpty {
    h += "<p class=\"empty\">Not measured.</p>\n"
  } else {
    h += "<p>Nanoseconds to zero one 4 KiB frame; every anonymous fault includes one such zero.</p>\n"
    h += "<table class=\"canary\">\n<thead><tr><th>threads</th><th>ns per 4 KiB zero</th></tr></thead>\n<tbody>\n"
    for (t, ns) in run.zeroCanary.sorted(by: { $0.key < $1.key }) {
      h += "<tr><td class=\"n\">\(t)</td><td class=\"n\">\(formatFixed(ns, 1))</td></tr>\n"
    }
    h += "</tbody>\n</table>\n"
  }

  h += "</body>\n</html>\n"
  return h
}

/// Writes `index.html`, `results.json` and `results.csv` into `directory` (created with its
/// parents if needed) and returns the path of `index.html`.
@discardableResult
public func writeReport(_ run: BenchRun, to directory: String) throws -> String {
  let fm = FileManager.default
  try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
  let dir = URL(fileURLWithPath: directory, isDirectory: true)
  let index = dir.appendingPathComponent("index.html")
  try renderJSON(run).write(to: dir.appendingPathComponent("results.json"), atomically: true, encoding: .utf8)
  try renderCSV(run).write(to: dir.appendingPathComponent("results.csv"), atomically: true, encoding: .utf8)
  try renderHTML(run).write(to: index, atomically: true, encoding: .utf8)
  return index.path
}

// MARK: - Charts

private let reportCSS = """
  body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px;color:#1d1d1f;background:#fff;max-width:1200px}
  h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
  .meta{color:#555;margin:0 0 8px}.empty{color:#777;font-style:italic}
  table{border-collapse:collapse;font-size:13px}th,td{padding:3px 10px;border-bottom:1px solid #e5e5e5;text-align:left}
  th{background:#f4f4f6;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
  td.aborts{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
  .charts{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0}
  svg.chart{background:#fff;border:1px solid #e0e0e0;border-radius:4px}
  svg text{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;fill:#333}
  .axis{stroke:#333;stroke-width:1}.grid{stroke:#eee;stroke-width:1}
  .tick{font-size:11px}.axis-title{font-size:12px;font-weight:600}.title{font-size:14px;font-weight:600}
  .legend text{font-size:12px}.series{fill:none;stroke-width:2}.error-bar line{stroke-width:1.5}
  .summary ul{margin:4px 0;padding-left:20px}.summary li{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px}
  .provenance{color:#555;font-size:12px;margin:0 0 8px}.note{color:#a15c00}
  svg.matrix{background:#fff;border:1px solid #e0e0e0;border-radius:4px}.matrix text{font-size:12px}
  """

/// Colours for the known designs; others take the fallback palette in order.
private let designColours: [String: String] = [
  "mmap_lock": "#d62728", "spf": "#1f77b4", "seq": "#2ca02c", "vma_lock": "#9467bd", "host": "#7f7f7f",
]
private let fallbackPalette = ["#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#393b79"]
private let reasonPalette = [
  "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
]

func colour(forDesign d: String, among designs: [String]) -> String {
  if let c = designColours[d] { return c }
  let unknown = designs.filter { designColours[$0] == nil }
  let i = unknown.firstIndex(of: d) ?? 0
  return fallbackPalette[i % fallbackPalette.count]
}

private func lineChart(workload: String, rows: [BenchResult]) -> String {
  let width = 560.0, height = 340.0
  let left = 72.0, right = 130.0, top = 34.0, bottom = 52.0
  let plotW = width - left - right, plotH = height - top - bottom
  let designs = orderedUnique(rows.map(\.design))
  let threads = Array(Set(rows.map(\.threads))).sorted()
  let units = orderedUnique(rows.map(\.unit))
  let unit = units.joined(separator: " / ")
  let finite = (rows.map(\.value) + rows.compactMap { $0.valueInterval?.high }).filter(\.isFinite)
  let (yMax, yTicks) = niceTicks(max: max(finite.max() ?? 0, 0))
  let minT = Double(threads.first ?? 1), maxT = Double(threads.last ?? 1)
  func x(_ t: Int) -> Double {
    maxT > minT ? left + (Double(t) - minT) / (maxT - minT) * plotW : left + plotW / 2
  }
  func y(_ v: Double) -> Double { top + plotH - min(max(v, 0), yMax) / yMax * plotH }

  let hint = rows.first.map { $0.lowerIsBetter ? "lower is better" : "higher is better" } ?? ""
  var s = "<svg class=\"chart\" data-workload=\"\(htmlEscape(workload))\" xmlns=\"http://www.w3.org/2000/svg\" "
  s += "width=\"\(f(width))\" height=\"\(f(height))\" viewBox=\"0 0 \(f(width)) \(f(height))\" role=\"img\">\n"
  s += "<title>\(htmlEscape(workload)): \(htmlEscape(unit)) by threads</title>\n"
  s += "<text class=\"title\" x=\"\(f(left))\" y=\"20\">\(htmlEscape(workload))"
  s += "<tspan class=\"tick\" dx=\"8\">(\(hint))</tspan></text>\n"
  // Grid and y ticks.
  for v in yTicks {
    let yy = y(v)
    s += "<line class=\"grid\" x1=\"\(f(left))\" y1=\"\(f(yy))\" x2=\"\(f(left + plotW))\" y2=\"\(f(yy))\"/>"
    s += "<text class=\"tick y\" x=\"\(f(left - 6))\" y=\"\(f(yy + 4))\" text-anchor=\"end\">\(formatTick(v))</text>\n"
  }
  // X ticks.
  for t in threads {
    let xx = x(t)
    s += "<line class=\"tick-mark\" x1=\"\(f(xx))\" y1=\"\(f(top + plotH))\" x2=\"\(f(xx))\" y2=\"\(f(top + plotH + 5))\" stroke=\"#333\"/>"
    s += "<text class=\"tick x\" x=\"\(f(xx))\" y=\"\(f(top + plotH + 18))\" text-anchor=\"middle\">\(t)</text>\n"
  }
  // Axes.
  s += "<line class=\"axis x\" x1=\"\(f(left))\" y1=\"\(f(top + plotH))\" x2=\"\(f(left + plotW))\" y2=\"\(f(top + plotH))\"/>\n"
  s += "<line class=\"axis y\" x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(top + plotH))\"/>\n"
  s += "<text class=\"axis-title x\" x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 12))\" text-anchor=\"middle\">threads</text>\n"
  s += "<text class=\"axis-title y\" transform=\"translate(16 \(f(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">\(htmlEscape(unit))</text>\n"
  // Series.
  for (k, d) in designs.enumerated() {
    let c = colour(forDesign: d, among: designs)
    // Error bars sit a few pixels apart, so that designs at one thread count stay legible.
    let barShift = (Double(k) - Double(designs.count - 1) / 2) * 5
    let pts = rows.filter { $0.design == d && $0.value.isFinite }.sorted { $0.threads < $1.threads }
    let coords = pts.map { "\(f(x($0.threads))),\(f(y($0.value)))" }.joined(separator: " ")
    s += "<g class=\"series-group\" data-design=\"\(htmlEscape(d))\">\n"
    s += "<polyline class=\"series\" data-design=\"\(htmlEscape(d))\" points=\"\(coords)\" stroke=\"\(c)\"/>\n"
    for p in pts {
      if let i = p.valueInterval, i.low.isFinite, i.high.isFinite {
        let xx = x(p.threads) + barShift, y0 = y(i.low), y1 = y(i.high)
        s += "<g class=\"error-bar\" data-design=\"\(htmlEscape(d))\" stroke=\"\(c)\">"
        s += "<line x1=\"\(f(xx))\" y1=\"\(f(y0))\" x2=\"\(f(xx))\" y2=\"\(f(y1))\"/>"
        s += "<line x1=\"\(f(xx - 4))\" y1=\"\(f(y0))\" x2=\"\(f(xx + 4))\" y2=\"\(f(y0))\"/>"
        s += "<line x1=\"\(f(xx - 4))\" y1=\"\(f(y1))\" x2=\"\(f(xx + 4))\" y2=\"\(f(y1))\"/>"
        s += "<title>95% interval: \(formatValue(i.low))&ndash;\(formatValue(i.high))</title></g>\n"
      }
      s += "<circle class=\"point\" cx=\"\(f(x(p.threads)))\" cy=\"\(f(y(p.value)))\" r=\"3.5\" fill=\"\(c)\">"
      s += "<title>\(htmlEscape(d)), \(p.threads) threads: \(formatValue(p.value)) \(htmlEscape(p.unit))</title></circle>\n"
    }
    s += "</g>\n"
  }
  // Legend.
  s += "<g class=\"legend\">\n"
  for (i, d) in designs.enumerated() {
    let ly = top + 8 + Double(i) * 20, lx = left + plotW + 16
    let c = colour(forDesign: d, among: designs)
    s += "<g class=\"legend-entry\" data-design=\"\(htmlEscape(d))\">"
    s += "<line x1=\"\(f(lx))\" y1=\"\(f(ly))\" x2=\"\(f(lx + 22))\" y2=\"\(f(ly))\" stroke=\"\(c)\" stroke-width=\"2\"/>"
    s += "<circle cx=\"\(f(lx + 11))\" cy=\"\(f(ly))\" r=\"3.5\" fill=\"\(c)\"/>"
    s += "<text x=\"\(f(lx + 28))\" y=\"\(f(ly + 4))\">\(htmlEscape(d))</text></g>\n"
  }
  s += "</g>\n</svg>\n"
  return s
}

/// Horizontal stacked bars: one bar per (design, workload, threads) with aborts, one segment per
/// reason.
private func abortChart(_ rows: [BenchResult]) -> String {
  let reasons = Array(Set(rows.flatMap { $0.aborts.filter { $0.value > 0 }.map(\.key) })).sorted()
  let labels = rows.map { "\($0.design) · \($0.workload) · \($0.threads)T" }
  let labelChars = labels.map(\.count).max() ?? 10
  let left = min(max(Double(labelChars) * 6.8 + 16, 120), 420)
  let barH = 18.0, gap = 8.0, top = 34.0
  let plotW = 520.0, right = 40.0
  let legendRows = Double((reasons.count + 2) / 3)
  let plotH = Double(rows.count) * (barH + gap) + gap
  let width = left + plotW + right
  let height = top + plotH + 48 + legendRows * 20 + 8
  let totals = rows.map { $0.aborts.values.reduce(UInt64(0), { $0 &+ $1 }) }
  let (xMax, xTicks) = niceTicks(max: Double(totals.max() ?? 0))
  func x(_ v: Double) -> Double { left + min(v, xMax) / xMax * plotW }
  func colour(_ r: String) -> String { reasonPalette[(reasons.firstIndex(of: r) ?? 0) % reasonPalette.count] }

  var s = "<svg class=\"chart aborts\" data-chart=\"aborts\" xmlns=\"http://www.w3.org/2000/svg\" "
  s += "width=\"\(f(width))\" height=\"\(f(height))\" viewBox=\"0 0 \(f(width)) \(f(height))\" role=\"img\">\n"
  s += "<title>Abort and fallback counts by reason</title>\n"
  s += "<text class=\"title\" x=\"\(f(left))\" y=\"20\">Abort and fallback counts by reason</text>\n"
  for v in xTicks {
    let xx = x(v)
    s += "<line class=\"grid\" x1=\"\(f(xx))\" y1=\"\(f(top))\" x2=\"\(f(xx))\" y2=\"\(f(top + plotH))\"/>"
    s += "<text class=\"tick x\" x=\"\(f(xx))\" y=\"\(f(top + plotH + 16))\" text-anchor=\"middle\">\(formatTick(v))</text>\n"
  }
  for (i, r) in rows.enumerated() {
    let by = top + gap + Double(i) * (barH + gap)
    s += "<g class=\"bar\" data-design=\"\(htmlEscape(r.design))\" data-workload=\"\(htmlEscape(r.workload))\" data-threads=\"\(r.threads)\">"
    s += "<text class=\"tick y\" x=\"\(f(left - 6))\" y=\"\(f(by + barH / 2 + 4))\" text-anchor=\"end\">\(htmlEscape(labels[i]))</text>\n"
    var acc = 0.0
    for reason in reasons {
      guard let n = r.aborts[reason], n > 0 else { continue }
      let x0 = x(acc), x1 = x(acc + Double(n))
      s += "<rect class=\"segment\" data-reason=\"\(htmlEscape(reason))\" x=\"\(f(x0))\" y=\"\(f(by))\" "
      s += "width=\"\(f(max(x1 - x0, 0.5)))\" height=\"\(f(barH))\" fill=\"\(colour(reason))\">"
      s += "<title>\(htmlEscape(reason)): \(n)</title></rect>\n"
      acc += Double(n)
    }
    s += "<text class=\"tick total\" x=\"\(f(x(acc) + 4))\" y=\"\(f(by + barH / 2 + 4))\">\(totals[i])</text></g>\n"
  }
  s += "<line class=\"axis x\" x1=\"\(f(left))\" y1=\"\(f(top + plotH))\" x2=\"\(f(left + plotW))\" y2=\"\(f(top + plotH))\"/>\n"
  s += "<line class=\"axis y\" x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(top + plotH))\"/>\n"
  s += "<text class=\"axis-title x\" x=\"\(f(left + plotW / 2))\" y=\"\(f(top + plotH + 36))\" text-anchor=\"middle\">count</text>\n"
  s += "<g class=\"legend\">\n"
  for (i, reason) in reasons.enumerated() {
    let lx = left + Double(i % 3) * 180, ly = top + plotH + 52 + Double(i / 3) * 20
    s += "<g class=\"legend-entry\" data-reason=\"\(htmlEscape(reason))\">"
    s += "<rect x=\"\(f(lx))\" y=\"\(f(ly - 10))\" width=\"12\" height=\"12\" fill=\"\(colour(reason))\"/>"
    s += "<text x=\"\(f(lx + 18))\" y=\"\(f(ly))\">\(htmlEscape(reason))</text></g>\n"
  }
  s += "</g>\n</svg>\n"
  return s
}

// MARK: - Helpers

func orderedUnique(_ xs: [String]) -> [String] {
  var seen = Set<String>()
  return xs.filter { seen.insert($0).inserted }
}

/// A round upper bound at or above `max` and 4-6 evenly spaced ticks from 0 to it.
private func niceTicks(max m: Double) -> (Double, [Double]) {
  guard m.isFinite, m > 0 else { return (1, [0, 0.25, 0.5, 0.75, 1]) }
  let rough = m / 5
  let mag = pow(10, floor(log10(rough)))
  let norm = rough / mag
  let step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag
  let top = ceil(m / step) * step
  let count = Int((top / step).rounded())
  return (top, (0...count).map { Double($0) * step })
}

/// SVG coordinate: two decimals at most.
func f(_ v: Double) -> String {
  let r = (v * 100).rounded() / 100
  return r == r.rounded() ? String(Int(r)) : String(format: "%.2f", r)
}

func formatFixed(_ v: Double, _ decimals: Int) -> String {
  guard v.isFinite else { return v.isNaN ? "NaN" : (v > 0 ? "&infin;" : "&minus;&infin;") }
  return String(format: "%.\(decimals)f", v)
}

/// A table figure: thousands-grouped integer from 1000 up, else three significant digits.
private func formatValue(_ v: Double) -> String {
  guard v.isFinite else { return formatFixed(v, 0) }
  if abs(v) >= 1000 {
    let digits = String(Int64(v.rounded()).magnitude)
    var grouped = ""
    for (i, ch) in digits.enumerated() {
      if i > 0 && (digits.count - i) % 3 == 0 { grouped += "," }
      grouped.append(ch)
    }
    return (v < 0 ? "-" : "") + grouped
  }
  if v == 0 { return "0" }
  let decimals = max(0, 2 - Int(floor(log10(abs(v)))))
  return String(format: "%.\(decimals)f", v)
}

/// A tick label with an SI suffix (k, M, G).
private func formatTick(_ v: Double) -> String {
  let a = abs(v)
  let (scaled, suffix): (Double, String) =
    a >= 1e9 ? (v / 1e9, "G") : a >= 1e6 ? (v / 1e6, "M") : a >= 1e3 ? (v / 1e3, "k") : (v, "")
  let s = scaled == scaled.rounded() ? String(Int(scaled)) : String(format: "%.3g", scaled)
  return s + suffix
}
