import Faultline

/// Text reports of explorations: one block per scenario × design (× fput mode), with the
/// outcome table and the violations, and the side-effect tables for fault vs munmap.
public enum ExploreReport {
  /// The block for one scenario × design (× fput mode): `results` holds one per variant.
  public static func block(_ results: [Explorer.Result], verbose: Bool = false) -> String {
    guard let first = results.first else { return "" }
    var out = "== \(first.scenario) · design \(first.design)"
    if let f = first.fputMode { out += " · fput \(f.rawValue)" }
    out += " ==\n"
    let runs = results.reduce(0) { $0 + $1.runs.count }
    let perVariant = results.map { "\($0.variant) \($0.runs.count)" }.joined(separator: ", ")
    let seconds = results.reduce(0.0) { $0 + $1.seconds }
    let blocked = results.reduce(0) { $0 + $1.blockedSteps }
    let divergences = results.reduce(0) { $0 + $1.divergences }
    out += "interleavings: \(runs) (\(perVariant)); steps with a blocked thread: \(blocked)"
    if divergences > 0 { out += "; divergent replays: \(divergences)" }
    if results.contains(where: \.truncated) { out += "; TRUNCATED at the schedule limit" }
    out += "; \(seconds2(seconds)) s\n"
    // Outcome → count, with one example schedule.
    var counts: [String: (Int, String)] = [:]
    for r in results {
      for run in r.runs where run.error == nil {
        let key = "\(r.variant): \(run.observation.key)"
        counts[key, default: (0, run.scheduleString)].0 += 1
      }
    }
    out += "outcomes (\(counts.count) distinct):\n"
    for (key, v) in counts.sorted(by: { $0.key < $1.key }) {
      out += "  \(pad(String(v.0), 5)) \(key)\n"
      if verbose { out += "        e.g. --schedule \(v.1)\n" }
    }
    let bad = results.flatMap { r in r.violating.map { (r, $0) } }
    out += "violations: \(bad.count)\n"
    for (r, run) in bad.prefix(20) {
      out += "  schedule \(run.scheduleString)\n"
      if let e = run.error { out += "    error: \(e)\n" }
      for v in run.violations { out += "    \(v)\n" }
      out += "    log: \(run.log.joined(separator: " "))\n"
      out += "    replay: faultline explore \(r.scenario) --design \(r.design)"
      if let f = r.fputMode { out += " --fput-mode \(f.rawValue)" }
      out += " --variant \(r.variant) --schedule \(run.scheduleString)\n"
    }
    if verbose {
      for r in results {
        for run in r.runs {
          out += "  [\(r.variant)] \(run.scheduleString)  \(run.log.joined(separator: " "))\n"
        }
      }
    }
    return out
  }

  /// The side-effect table of a file fault vs munmap + close + umount, one row per design and
  /// fput mode: in how many interleavings each effect showed.
  public static func fileSideEffects(_ results: [Explorer.Result]) -> String {
    let header = ["design", "fput", "runs", "munmap first", "fill after unmap", "atime after unmap",
                  "umount EBUSY", "busy inflight", "refs after munmap", "umount needed drain", "fault results"]
    var rows: [[String]] = []
    for r in results {
      let runs = r.runs.filter { $0.error == nil }
      func n(_ pred: (Observation) -> Bool) -> String {
        "\(runs.filter { pred($0.observation) }.count)/\(runs.count)"
      }
      let results = Dictionary(grouping: runs, by: { $0.observation.result }).map { "\($0.key) \($0.value.count)" }.sorted()
      rows.append([
        r.design.rawValue, r.fputMode?.rawValue ?? "-", "\(runs.count)",
        n { $0.writerFirst },
        n { ($0.counters["filemap_fill_after_unmap"] ?? 0) > 0 },
        n { ($0.counters["atime_after_unmap"] ?? 0) > 0 },
        n { $0.effects["umount"] == "EBUSY" },
        n { ($0.counters["umount_busy_inflight"] ?? 0) > 0 },
        n { ($0.effects["refs_after_munmap"].flatMap { Int($0) } ?? 0) > 0 },
        n { $0.effects["umount_needed_drain"] == "yes" },
        results.joined(separator: ", "),
      ])
    }
    return table(header, rows)
  }

  /// The side-effect table of an anonymous fault vs munmap, one row per design.
  public static func anonSideEffects(_ results: [Explorer.Result]) -> String {
    let header = ["design", "runs", "munmap first", "fault results", "final PTE", "aborts / vma_lock"]
    var rows: [[String]] = []
    for (design, group) in Dictionary(grouping: results, by: \.design).sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
      let runs = group.flatMap(\.runs).filter { $0.error == nil }
      func tally(_ f: (Observation) -> String) -> String {
        Dictionary(grouping: runs, by: { f($0.observation) }).map { "\($0.key) \($0.value.count)" }.sorted()
          .joined(separator: ", ")
      }
      var counters: [String: UInt64] = [:]
      for run in runs {
        for (k, v) in run.observation.counters where k.hasPrefix("spf_") || k.hasPrefix("vma_lock") {
          counters[k, default: 0] += v
        }
      }
      rows.append([
        design.rawValue, "\(runs.count)", "\(runs.filter { $0.observation.writerFirst }.count)/\(runs.count)",
        tally { $0.result }, tally { $0.pte },
        counters.keys.sorted().map { "\($0) \(counters[$0]!)" }.joined(separator: ", "),
      ])
    }
    return table(header, rows)
  }

  /// A Markdown table.
  static func table(_ header: [String], _ rows: [[String]]) -> String {
    let widths = header.indices.map { i in ([header[i]] + rows.map { $0[i] }).map(\.count).max()! }
    func line(_ cells: [String]) -> String {
      "| " + cells.indices.map { pad(cells[$0], widths[$0]) }.joined(separator: " | ") + " |\n"
    }
    return line(header) + "|" + widths.map { String(repeating: "-", count: $0 + 2) }.joined(separator: "|") + "|\n"
      + rows.map(line).joined()
  }

  static func seconds2(_ s: Double) -> String {
    let c = Int((s * 100).rounded())
    let frac = c % 100
    return "\(c / 100).\(frac < 10 ? "0" : "")\(frac)"
  }

  static func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
}
