import Foundation

// The CSV form of a bench run (DESIGN.md section 5): one line per row, every round's raw sample
// included, and the run's seed, machine and commit repeated on each line so that any one line,
// or a concatenation of several runs' files, still says where it came from.

/// The CSV header, in column order. The first twelve columns are the original format; the next
/// eleven were added with paired rounds, the last five with page_fault1-thp (`HugePageFigures`;
/// a THP counter the participant lacks is empty). Columns a row has no figure for are empty.
public let benchCSVHeader =
  "workload,design,threads,value,unit,vs_mmap_lock,vs_host,lockless_share,p50_ns,p99_ns,p999_ns,aborts,"
  + "value_low,value_high,ratio_low,ratio_high,verdict,samples,seed,cpu_model,cpus,kernel,commit,"
  + "ns_per_4k,ns_per_2m,thp_extents,thp_fault_alloc,thp_fault_fallback"

/// One header line, then one line per row (`\n` line ends). Missing figures are empty fields;
/// aborts are `name=count;name=count` sorted by name; samples are the raw per-round figures in
/// round order, `;`-separated; fields holding a comma, a double quote or a line break are quoted
/// per RFC 4180.
public func renderCSV(_ run: BenchRun) -> String {
  var out = benchCSVHeader + "\n"
  let info = run.machineInfo
  for r in run.rows {
    let fields: [String] = [
      r.workload, r.design, String(r.threads), csvNumber(r.value), r.unit,
      r.vsMmapLock.map(csvNumber) ?? "", r.vsHost.map(csvNumber) ?? "", r.locklessShare.map(csvNumber) ?? "",
      r.p50.map(csvNumber) ?? "", r.p99.map(csvNumber) ?? "", r.p999.map(csvNumber) ?? "",
      r.aborts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ";"),
      r.valueInterval.map { csvNumber($0.low) } ?? "", r.valueInterval.map { csvNumber($0.high) } ?? "",
      r.ratioInterval.map { csvNumber($0.low) } ?? "", r.ratioInterval.map { csvNumber($0.high) } ?? "",
      r.verdict?.rawValue ?? "", r.samples.map { $0.map(csvNumber).joined(separator: ";") } ?? "",
      run.seed.map { String($0) } ?? "", info?.cpuModel ?? "", info.map { String($0.cpuCount) } ?? "",
      info?.kernel ?? "", run.commit ?? "",
      r.hugePages.map { csvNumber($0.nsPer4KiB) } ?? "", r.hugePages.map { csvNumber($0.nsPer2MiB) } ?? "",
      r.hugePages.map { String($0.extents) } ?? "", r.hugePages?.thpFaultAlloc.map { String($0) } ?? "",
      r.hugePages?.thpFaultFallback.map { String($0) } ?? "",
    ]
    out += fields.map(csvField).joined(separator: ",") + "\n"
  }
  return out
}

/// Shortest round-tripping decimal form.
private func csvNumber(_ v: Double) -> String { "\(v)" }

private func csvField(_ s: String) -> String {
  guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
  return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}

/// What `decodeBenchCSV` found wrong, with the 1-based line.
public struct BenchCSVError: Error, Equatable {
  public var line: Int
  public var message: String
}

/// Reads back what `renderCSV` wrote: the rows, and the seed, machine and commit of the first
/// line that has them. Files in the original twelve-column format read too.
public func decodeBenchCSV(_ csv: String) throws(BenchCSVError) -> (
  rows: [BenchResult], seed: UInt64?, machineInfo: MachineInfo?, commit: String?
) {
  let records = parseCSVRecords(csv)
  guard let header = records.first else { throw BenchCSVError(line: 1, message: "no header") }
  var rows: [BenchResult] = []
  var seed: UInt64?, info: MachineInfo?, commit: String?
  for (i, fields) in records.dropFirst().enumerated() {
    let line = i + 2
    var get: [String: String] = [:]
    for (k, v) in zip(header, fields) { get[k] = v }
    func number(_ k: String) throws(BenchCSVError) -> Double? {
      guard let s = get[k], !s.isEmpty else { return nil }
      guard let v = Double(s) else { throw BenchCSVError(line: line, message: "\(k): not a number: \(s)") }
      return v
    }
    func interval(_ lo: String, _ hi: String) throws(BenchCSVError) -> Interval? {
      guard let l = try number(lo), let h = try number(hi) else { return nil }
      return Interval(low: l, high: h)
    }
    guard let workload = get["workload"], let design = get["design"], let unit = get["unit"],
      let threads = Int(get["threads"] ?? ""), let value = try number("value")
    else { throw BenchCSVError(line: line, message: "missing workload, design, threads, value or unit") }
    var aborts: [String: UInt64] = [:]
    for pair in (get["aborts"] ?? "").split(separator: ";") {
      let kv = pair.split(separator: "=", maxSplits: 1)
      guard kv.count == 2, let n = UInt64(kv[1]) else { throw BenchCSVError(line: line, message: "aborts: \(pair)") }
      aborts[String(kv[0])] = n
    }
    var samples: [Double]?
    if let s = get["samples"], !s.isEmpty {
      samples = try s.split(separator: ";").map { (x) throws(BenchCSVError) -> Double in
        guard let v = Double(x) else { throw BenchCSVError(line: line, message: "samples: \(x)") }
        return v
      }
    }
    var verdict: Verdict?
    if let v = get["verdict"], !v.isEmpty {
      guard let parsed = Verdict(rawValue: v) else { throw BenchCSVError(line: line, message: "verdict: \(v)") }
      verdict = parsed
    }
    var hugePages: HugePageFigures?
    if let per4K = try number("ns_per_4k"), let per2M = try number("ns_per_2m") {
      func count(_ k: String) throws(BenchCSVError) -> UInt64? {
        guard let s = get[k], !s.isEmpty else { return nil }
        guard let v = UInt64(s) else { throw BenchCSVError(line: line, message: "\(k): not a count: \(s)") }
        return v
      }
      hugePages = HugePageFigures(
        nsPer4KiB: per4K, nsPer2MiB: per2M, extents: try count("thp_extents") ?? 0,
        thpFaultAlloc: try count("thp_fault_alloc"), thpFaultFallback: try count("thp_fault_fallback"))
    }
    rows.append(BenchResult(
      workload: workload, design: design, threads: threads, value: value, unit: unit,
      vsMmapLock: try number("vs_mmap_lock"), vsHost: try number("vs_host"), locklessShare: try number("lockless_share"),
      aborts: aborts, p50: try number("p50_ns"), p99: try number("p99_ns"), p999: try number("p999_ns"),
      samples: samples, valueInterval: try interval("value_low", "value_high"),
      ratioInterval: try interval("ratio_low", "ratio_high"), verdict: verdict, hugePages: hugePages))
    if seed == nil, let s = get["seed"], !s.isEmpty { seed = UInt64(s) }
    if info == nil, let model = get["cpu_model"], !model.isEmpty {
      info = MachineInfo(cpuModel: model, cpuCount: Int(get["cpus"] ?? "") ?? 0, kernel: get["kernel"] ?? "")
    }
    if commit == nil, let c = get["commit"], !c.isEmpty { commit = c }
  }
  return (rows, seed, info, commit)
}

/// RFC 4180 records: fields split at commas outside double quotes, `""` inside quotes is one
/// quote, records end at a line break outside quotes; a trailing empty line is not a record.
func parseCSVRecords(_ text: String) -> [[String]] {
  var records: [[String]] = []
  var fields: [String] = []
  var field = ""
  var quoted = false
  var chars = text.makeIterator()
  var pending: Character? = nil
  func take() -> Character? {
    if let p = pending { pending = nil; return p }
    return chars.next()
  }
  while let c = take() {
    if quoted {
      if c == "\"" {
        let n = take()
        if n == "\"" { field.append("\"") } else { quoted = false; pending = n }
      } else {
        field.append(c)
      }
    } else if c == "\"" {
      quoted = true
    } else if c == "," {
      fields.append(field)
      field = ""
    } else if c == "\n" || c == "\r\n" {
      fields.append(field)
      records.append(fields)
      fields = []
      field = ""
    } else {
      field.append(c)
    }
  }
  if !field.isEmpty || !fields.isEmpty {
    fields.append(field)
    records.append(fields)
  }
  return records
}
