import Foundation

// The HTML report's verdict pieces: the workload × design ratio matrix and the run's provenance
// line (seed, rounds, machine, commit, notes).

/// An SVG grid: one row per (workload, thread count) cell with verdicts, one column per design
/// compared with mmap_lock. Each square shows the median ratio (above 1 is better), coloured green
/// for faster and red for slower, deeper the further from 1 (full at 2x or 0.5x); where the 95%
/// interval contains 1.00 the square is grey and hatched, so only significant differences have
/// colour. Markup: `<rect class="cell faster|slower|similar" data-workload data-threads
/// data-design data-verdict>`.
func ratioMatrix(_ rows: [BenchResult]) -> String {
  let judged = rows.filter { $0.verdict != nil && $0.design != "mmap_lock" && $0.design != "host" }
  let designs = orderedUnique(judged.map(\.design))
  var cells: [(workload: String, threads: Int)] = []
  for r in judged where !cells.contains(where: { $0.workload == r.workload && $0.threads == r.threads }) {
    cells.append((r.workload, r.threads))
  }
  let labels = cells.map { "\($0.workload) · \($0.threads)T" }
  let left = min(max(Double(labels.map(\.count).max() ?? 10) * 7 + 16, 110), 320)
  let cellW = 92.0, cellH = 28.0, top = 56.0
  let width = left + max(Double(designs.count) * cellW, 360) + 20  // room for the legend
  let height = top + Double(cells.count) * cellH + 44

  var s = "<svg class=\"matrix\" xmlns=\"http://www.w3.org/2000/svg\" "
  s += "width=\"\(f(width))\" height=\"\(f(height))\" viewBox=\"0 0 \(f(width)) \(f(height))\" role=\"img\">\n"
  s += "<title>Median ratio to mmap_lock by workload and design</title>\n"
  s += "<defs><pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
  s += "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#e4e4e4\"/>"
  s += "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#b8b8b8\" stroke-width=\"2\"/></pattern></defs>\n"
  s += "<text class=\"title\" x=\"\(f(left))\" y=\"20\">Ratio to mmap_lock (above 1 is better)</text>\n"
  for (j, d) in designs.enumerated() {
    let cx = left + Double(j) * cellW + cellW / 2
    s += "<text class=\"column\" x=\"\(f(cx))\" y=\"\(f(top - 8))\" text-anchor=\"middle\">\(htmlEscape(d))</text>\n"
  }
  for (i, cell) in cells.enumerated() {
    let y = top + Double(i) * cellH
    s += "<text class=\"row\" x=\"\(f(left - 6))\" y=\"\(f(y + cellH / 2 + 4))\" text-anchor=\"end\">\(htmlEscape(labels[i]))</text>\n"
    for (j, d) in designs.enumerated() {
      let x = left + Double(j) * cellW
      guard let r = judged.first(where: { $0.workload == cell.workload && $0.threads == cell.threads && $0.design == d }),
        let verdict = r.verdict, let ratio = r.vsMmapLock
      else {
        s += "<rect class=\"cell missing\" x=\"\(f(x + 1))\" y=\"\(f(y + 1))\" width=\"\(f(cellW - 2))\" "
        s += "height=\"\(f(cellH - 2))\" fill=\"#fff\" stroke=\"#eee\"/>\n"
        continue
      }
      let kind = verdict == .similar ? "similar" : verdict.rawValue
      let fill = verdict == .similar ? "url(#hatch)" : matrixColour(ratio)
      let interval = r.ratioInterval.map { " [\(ratioText($0.low)), \(ratioText($0.high))]" } ?? ""
      s += "<g><rect class=\"cell \(kind)\" data-workload=\"\(htmlEscape(cell.workload))\" data-threads=\"\(cell.threads)\" "
      s += "data-design=\"\(htmlEscape(d))\" data-verdict=\"\(htmlEscape(verdict.rawValue))\" x=\"\(f(x + 1))\" "
      s += "y=\"\(f(y + 1))\" width=\"\(f(cellW - 2))\" height=\"\(f(cellH - 2))\" fill=\"\(fill)\">"
      s += "<title>\(htmlEscape(d)), \(htmlEscape(labels[i])): \(ratioText(ratio))x\(interval) \(htmlEscape(verdict.rawValue))</title></rect>"
      s += "<text x=\"\(f(x + cellW / 2))\" y=\"\(f(y + cellH / 2 + 4))\" text-anchor=\"middle\">"
      s += "\(ratioText(ratio))\(verdict == .similar ? " ≈" : "")</text></g>\n"
    }
  }
  let ly = top + Double(cells.count) * cellH + 24
  s += "<g class=\"legend\">"
  let keys = [("faster", matrixColour(1.5), 0.0), ("slower", matrixColour(0.67), 80), ("interval contains 1.00 (≈)", "url(#hatch)", 160)]
  for (label, fill, dx) in keys {
    s += "<rect x=\"\(f(left + dx))\" y=\"\(f(ly - 11))\" width=\"14\" height=\"14\" fill=\"\(fill)\"/>"
    s += "<text x=\"\(f(left + dx + 20))\" y=\"\(f(ly))\">\(label)</text>"
  }
  s += "</g>\n"
  s += "</svg>\n"
  return s
}

/// Green above 1, red below, blended from a pale tint at 1 to full at 2x (or 0.5x).
private func matrixColour(_ ratio: Double) -> String {
  let t = min(abs(log2(max(ratio, 1e-9))), 1)
  let (r0, g0, b0) = ratio >= 1 ? (0xE5, 0xF5, 0xE0) : (0xFD, 0xE0, 0xDD)
  let (r1, g1, b1) = ratio >= 1 ? (0x31, 0xA3, 0x54) : (0xDE, 0x2D, 0x26)
  func mix(_ a: Int, _ b: Int) -> Int { Int((Double(a) + (Double(b) - Double(a)) * (0.35 + 0.65 * t)).rounded()) }
  return String(format: "#%02x%02x%02x", mix(r0, r1), mix(g0, g1), mix(b0, b1))
}

/// The line under the title: seed, rounds, CPU model and count, kernel, commit; then any notes.
func provenanceHTML(_ run: BenchRun) -> String {
  var parts: [String] = []
  if let seed = run.seed { parts.append("seed <span class=\"seed\">\(seed)</span>") }
  if let rounds = run.rounds { parts.append("\(rounds) paired rounds per cell") }
  if let m = run.machineInfo {
    parts.append("\(htmlEscape(m.cpuModel)), \(m.cpuCount) CPUs, \(htmlEscape(m.kernel))")
  }
  if let commit = run.commit { parts.append("commit <span class=\"commit\">\(htmlEscape(commit))</span>") }
  var h = parts.isEmpty ? "" : "<p class=\"provenance\">" + parts.joined(separator: " &middot; ") + "</p>\n"
  for note in run.notes ?? [] { h += "<p class=\"note\">\(htmlEscape(note))</p>\n" }
  return h
}
