import Foundation
import FaultlineWorkloads
import Glibc

/// The terminal output: the provenance line and notes, the summary of what the run found, then
/// the table with one row per workload, design and thread count, the latency and the canary.
func renderTable(_ run: BenchRun) -> String {
  var out = ""
  var head: [String] = []
  if let seed = run.seed { head.append("seed \(seed) (--seed \(seed) repeats the schedule)") }
  if let rounds = run.rounds { head.append("\(rounds) paired rounds per cell") }
  if let m = run.machineInfo { head.append("\(m.cpuModel), \(m.cpuCount) CPUs, \(m.kernel)") }
  if let c = run.commit { head.append("commit \(c)") }
  if !head.isEmpty { out += head.joined(separator: "; ") + "\n" }
  for note in run.notes ?? [] { out += "note: \(note)\n" }
  let summary = benchSummary(run)
  if !summary.isEmpty { out += "\n" + summary.joined(separator: "\n") + "\n" }
  out += "\n"
  out += "workload         design    threads        value  unit        vs mmap_lock  95% interval  verdict  vs host  lockless  aborts\n"
  for r in run.rows {
    out += pad(r.workload, 17) + pad(r.design, 10) + lpad(String(r.threads), 7)
    out += lpad(fmt(r.value, 0, r.lowerIsBetter ? 1 : 0), 13) + "  " + pad(r.unit, 12)
    out += lpad(r.vsMmapLock.map { fmt($0, 0, 2) } ?? "-", 12)
    out += lpad(r.ratioInterval.map { ratioText($0.low) + "-" + ratioText($0.high) } ?? "-", 14)
    out += "  " + pad(r.verdict?.rawValue ?? "-", 7)
    out += lpad(r.vsHost.map { fmt($0, 0, 2) } ?? "-", 7)
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
  out += hugePageLines(run.rows)
  out += "\nzeroing canary (ns per 4 KiB frame, per thread):"
  for (n, v) in run.zeroCanary.sorted(by: { $0.key < $1.key }) { out += " \(n) thread(s) \(fmt(v, 0, 1));" }
  if let pf = run.rows.first(where: { $0.workload == "page_fault1" && $0.design == "mmap_lock" }),
    let z = run.zeroCanary[1]
  {
    out += "\npage_fault1 under mmap_lock: \(fmt(pf.value, 0, 1)) ns/fault, \(fmt(pf.value - z, 0, 1)) ns beyond the zero"
  }
  return out
}

/// page_fault1-thp's figures beyond its rate, one line per row: touch time per 4 KiB page and
/// per 2 MiB extent, against the same participant's page_fault1 ns per fault where the run has
/// it (above 1: huge pages made each 4 KiB cheaper), and how many extents got a huge fault.
func hugePageLines(_ rows: [BenchResult]) -> String {
  let huge = rows.filter { $0.hugePages != nil }
  guard !huge.isEmpty else { return "" }
  var out = "\npage_fault1-thp, touch time (ns per 4 KiB page | per 2 MiB extent | page_fault1 ns/fault ÷ this per 4 KiB):\n"
  for r in huge {
    let h = r.hugePages!
    let base = rows.first { $0.workload == "page_fault1" && $0.design == r.design }
    out += "  " + pad(r.design, 10) + lpad(String(r.threads), 2) + " thread(s)"
    out += lpad(fmt(h.nsPer4KiB, 0, 1), 10) + " |" + lpad(fmt(h.nsPer2MiB, 0, 0), 10) + " |"
    out += lpad(base.flatMap { orientedRatio(h.nsPer4KiB, to: $0.value, lowerIsBetter: true) }.map(ratioText).map { $0 + "x" } ?? "-", 8)
    out += "  " + h.hugeText + "\n"
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
