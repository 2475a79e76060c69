import Faultline

// The statistics behind `faultline bench`'s verdicts (DESIGN.md section 5): the seeded order of
// the designs in each paired round, the median, a bootstrap interval over rounds, and the verdict
// drawn from it. Pure functions of their inputs and seed, so a run's figures can be recomputed
// from the raw samples its JSON or CSV keeps.

extension SplitMix64 {
  /// A value in `0..<bound` (`bound` > 0), by rejection so that every value is equally likely.
  mutating func next(below bound: Int) -> Int {
    let b = UInt64(bound)
    let limit = UInt64.max - UInt64.max % b
    while true {
      let v = next()
      if v < limit { return Int(v % b) }
    }
  }
}

/// The order the participants (designs, and the host) run in, for each of `rounds` rounds: a
/// fresh uniformly random permutation of `0..<participants` per round (Fisher-Yates), drawn from
/// a generator seeded by `seed`. The same seed gives the same orders. `stream` separates the cells
/// of one run (pass the cell's index) so that each cell has its own orders from the one seed.
public func interleavedOrders(participants: Int, rounds: Int, seed: UInt64, stream: UInt64 = 0) -> [[Int]] {
  var rng = SplitMix64(seed: seed ^ (stream &* 0xD6E8_FEB8_6659_FD93))
  return (0..<rounds).map { _ in
    var order = Array(0..<participants)
    for i in stride(from: order.count - 1, to: 0, by: -1) {
      order.swapAt(i, rng.next(below: i + 1))
    }
    return order
  }
}

/// The median of `xs` (the mean of the middle two for an even count); NaN when empty.
public func median(_ xs: [Double]) -> Double {
  guard !xs.isEmpty else { return .nan }
  let s = xs.sorted()
  let m = s.count / 2
  return s.count % 2 == 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

/// A two-sided interval: `low` ≤ `high`.
public struct Interval: Codable, Sendable, Equatable {
  public var low: Double
  public var high: Double
  public init(low: Double, high: Double) {
    self.low = low
    self.high = high
  }
  public func contains(_ v: Double) -> Bool { low <= v && v <= high }
}

/// The percentile bootstrap interval of the median of `samples`: `resamples` times, draw
/// `samples.count` values with replacement and take their median; the interval runs from the
/// (1 − confidence)/2 to the (1 + confidence)/2 quantile of those medians. It assumes nothing
/// about the shape of the noise (timings are skewed, with rare long stalls), and the median
/// ignores a single disturbed round. Seeded, so the same samples and seed give the same interval.
/// Nil with no samples or any non-finite one.
public func bootstrapMedianInterval(
  _ samples: [Double], confidence: Double = 0.95, resamples: Int = 2000, seed: UInt64
) -> Interval? {
  guard !samples.isEmpty, samples.allSatisfy(\.isFinite), resamples > 0 else { return nil }
  if samples.count == 1 { return Interval(low: samples[0], high: samples[0]) }
  var rng = SplitMix64(seed: seed)
  var medians: [Double] = []
  medians.reserveCapacity(resamples)
  var draw = [Double](repeating: 0, count: samples.count)
  for _ in 0..<resamples {
    for i in draw.indices { draw[i] = samples[rng.next(below: samples.count)] }
    medians.append(median(draw))
  }
  medians.sort()
  func quantile(_ q: Double) -> Double {
    let i = min(max(Int((q * Double(medians.count - 1)).rounded()), 0), medians.count - 1)
    return medians[i]
  }
  return Interval(low: quantile((1 - confidence) / 2), high: quantile((1 + confidence) / 2))
}

/// A row's verdict against mmap_lock, from the interval of its ratio (oriented so that above 1
/// is better, whatever the unit).
public enum Verdict: String, Codable, Sendable, CaseIterable {
  /// The whole interval is above 1: better than mmap_lock.
  case faster
  /// The whole interval is below 1: worse than mmap_lock.
  case slower
  /// The interval contains 1.00: no significant difference.
  case similar = "≈"

  public init(ratioInterval i: Interval) {
    self = i.low > 1 ? .faster : i.high < 1 ? .slower : .similar
  }
}

/// `value` against `baseline`, oriented so that above 1 is better: `baseline / value` for a cost
/// (lower is better, ns per fault), `value / baseline` for a rate. Nil unless both are positive
/// and finite.
public func orientedRatio(_ value: Double, to baseline: Double, lowerIsBetter: Bool) -> Double? {
  guard value > 0, baseline > 0, value.isFinite, baseline.isFinite else { return nil }
  return lowerIsBetter ? baseline / value : value / baseline
}

/// The ratio of `samples` to `baseline` round by round (the two arrays are paired by index),
/// oriented as `orientedRatio`; rounds where either is not positive are skipped.
public func pairedRatios(_ samples: [Double], to baseline: [Double], lowerIsBetter: Bool) -> [Double] {
  zip(samples, baseline).compactMap { orientedRatio($0, to: $1, lowerIsBetter: lowerIsBetter) }
}

/// Fills in each row's figures from its raw `samples` (rows without samples keep theirs): the
/// value is their median with its interval; `vsMmapLock` is the median of the per-round ratios to
/// the mmap_lock row of the same workload and thread count, with its interval and verdict;
/// `vsHost` likewise against the host row. Each row's bootstrap is seeded from `seed` and the
/// row's name, so adding a design to a run does not move the others' intervals.
public func addRoundStatistics(_ rows: [BenchResult], seed: UInt64) -> [BenchResult] {
  func find(_ r: BenchResult, _ design: String) -> BenchResult? {
    rows.first { $0.workload == r.workload && $0.threads == r.threads && $0.design == design }
  }
  return rows.map { row in
    var r = row
    guard let samples = r.samples, !samples.isEmpty else { return r }
    let rowSeed = seed ^ stableHash("\(r.workload)|\(r.design)|\(r.threads)")
    r.value = median(samples)
    r.valueInterval = bootstrapMedianInterval(samples, seed: rowSeed)
    if let base = find(r, "mmap_lock")?.samples {
      let ratios = pairedRatios(samples, to: base, lowerIsBetter: r.lowerIsBetter)
      if !ratios.isEmpty {
        r.vsMmapLock = median(ratios)
        r.ratioInterval = bootstrapMedianInterval(ratios, seed: rowSeed &+ 1)
        r.verdict = r.design == "mmap_lock" ? nil : r.ratioInterval.map(Verdict.init(ratioInterval:))
      }
    }
    if let host = find(r, "host")?.samples {
      let ratios = pairedRatios(samples, to: host, lowerIsBetter: r.lowerIsBetter)
      if !ratios.isEmpty { r.vsHost = median(ratios) }
    }
    return r
  }
}

/// FNV-1a of the UTF-8 bytes: a hash that, unlike `Hasher`, is the same in every process.
private func stableHash(_ s: String) -> UInt64 {
  var h: UInt64 = 0xCBF2_9CE4_8422_2325
  for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
  return h
}
