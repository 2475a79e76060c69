import Foundation

// The few lines that head a bench run's table and HTML report: what the run found, per workload,
// against mmap_lock. A design is named only where its interval excludes 1.00.

/// The summary of `run`: a heading line, then one line per (workload, thread count) cell in the
/// order the rows first name them, listing the designs significantly faster or slower than
/// mmap_lock with the median ratio and its 95% interval, or saying "no significant difference".
/// Cells without an mmap_lock row to compare with are left out; the host is never a finding.
public func benchSummary(_ run: BenchRun) -> [String] {
  var cells: [(workload: String, threads: Int)] = []
  for r in run.rows where !cells.contains(where: { $0.workload == r.workload && $0.threads == r.threads }) {
    cells.append((r.workload, r.threads))
  }
  var lines: [String] = []
  for (w, t) in cells {
    let rows = run.rows.filter { $0.workload == w && $0.threads == t }
    guard rows.contains(where: { $0.design == "mmap_lock" }) else { continue }
    let compared = rows.filter { $0.design != "mmap_lock" && $0.design != "host" && $0.verdict != nil }
    guard !compared.isEmpty else { continue }
    let found = compared.filter { $0.verdict != .similar }
    let label = "\(w), \(t) thread\(t == 1 ? "" : "s"): "
    if found.isEmpty {
      lines.append(label + "no significant difference")
    } else {
      lines.append(label + found.map(summaryEntry).joined(separator: "; "))
    }
  }
  guard !lines.isEmpty else { return [] }
  let rounds = run.rounds.map { "\($0) paired rounds" } ?? "paired rounds"
  return ["Against mmap_lock (median ratio over \(rounds), 95% interval; above 1 is better):"]
    + lines.map { "  " + $0 }
}

/// `spf slower 0.85x [0.80, 0.90]`.
private func summaryEntry(_ r: BenchResult) -> String {
  var s = "\(r.design) \(r.verdict!.rawValue)"
  if let v = r.vsMmapLock { s += " " + ratioText(v) + "x" }
  if let i = r.ratioInterval { s += " [" + ratioText(i.low) + ", " + ratioText(i.high) + "]" }
  return s
}

/// A ratio with two decimals, or up to four where fewer would print a ratio other than 1 as
/// `1.00` (an interval bound just past 1 must not read as containing it).
public func ratioText(_ v: Double) -> String {
  guard v.isFinite else { return v.isNaN ? "NaN" : (v > 0 ? "inf" : "-inf") }
  var text = String(format: "%.2f", v)
  for decimals in 3...4 where v != 1 && Double(text) == 1 { text = String(format: "%.\(decimals)f", v) }
  return text
}
