import Foundation
import FaultlineWorkloads
import Testing

/// The statistics behind bench verdicts, on fixed samples: no timing is measured here.
@Suite struct BenchStatisticsTests {
  @Test func medianOfOddEvenAndEmpty() {
    #expect(median([3, 1, 2]) == 2)
    #expect(median([4, 1, 3, 2]) == 2.5)
    #expect(median([7]) == 7)
    #expect(median([]).isNaN)
  }

  @Test func bootstrapIntervalOfFiveRoundsSpansTheirRange() {
    // With five rounds a resampled median falls on the smallest (or largest) value about 6% of
    // the time, more than the 2.5% each tail leaves out: the 95% interval is [min, max].
    let samples = [1.10, 1.30, 1.20, 1.25, 1.15]
    #expect(bootstrapMedianInterval(samples, seed: 1) == Interval(low: 1.10, high: 1.30))
    #expect(bootstrapMedianInterval(samples, seed: 99) == Interval(low: 1.10, high: 1.30))
  }

  @Test func bootstrapIntervalIsReproducibleNarrowsWithRoundsAndHoldsTheMedian() throws {
    let samples = (0..<40).map { 1.0 + Double(($0 * 37) % 40) / 100 }  // 1.00 ... 1.39, shuffled
    let a = try #require(bootstrapMedianInterval(samples, seed: 7))
    #expect(bootstrapMedianInterval(samples, seed: 7) == a)
    #expect(a.contains(median(samples)))
    #expect(a.low > samples.min()! && a.high < samples.max()!)
    #expect(bootstrapMedianInterval([2, 2, 2, 2], seed: 3) == Interval(low: 2, high: 2))
    #expect(bootstrapMedianInterval([5], seed: 3) == Interval(low: 5, high: 5))
    #expect(bootstrapMedianInterval([], seed: 3) == nil)
    #expect(bootstrapMedianInterval([1, .nan, 2], seed: 3) == nil)
  }

  @Test func verdictIsSimilarExactlyWhenTheIntervalContainsOne() {
    #expect(Verdict(ratioInterval: Interval(low: 1.01, high: 1.4)) == .faster)
    #expect(Verdict(ratioInterval: Interval(low: 0.7, high: 0.99)) == .slower)
    #expect(Verdict(ratioInterval: Interval(low: 0.9, high: 1.1)) == .similar)
    #expect(Verdict(ratioInterval: Interval(low: 1.0, high: 1.2)) == .similar)
    #expect(Verdict(ratioInterval: Interval(low: 0.8, high: 1.0)) == .similar)
    #expect(Verdict.similar.rawValue == "≈")
  }

  @Test func ratiosAreOrientedSoThatAboveOneIsBetter() {
    // A cost: half the nanoseconds is twice as good.
    #expect(orientedRatio(500, to: 1000, lowerIsBetter: true) == 2)
    // A rate: half the faults per second is half as good.
    #expect(orientedRatio(500, to: 1000, lowerIsBetter: false) == 0.5)
    #expect(orientedRatio(0, to: 1000, lowerIsBetter: false) == nil)
    #expect(pairedRatios([2, 0, 6], to: [1, 1, 3], lowerIsBetter: false) == [2, 2])
  }

  @Test func roundStatisticsPairRatiosWithinEachRound() throws {
    // mmap_lock drifts by 2x across rounds; spf is 10% better in every round, so only a paired
    // ratio sees it. vma_lock is as fast as mmap_lock, give or take.
    let base = [100.0, 200, 100, 200, 100, 200, 100]
    let rows = addRoundStatistics([
      BenchResult(workload: "pf", design: "mmap_lock", threads: 1, value: 0, unit: "ns/fault", samples: base),
      BenchResult(workload: "pf", design: "spf", threads: 1, value: 0, unit: "ns/fault", samples: base.map { $0 / 1.1 }),
      BenchResult(
        workload: "pf", design: "vma_lock", threads: 1, value: 0, unit: "ns/fault",
        samples: zip(base, [1.02, 0.97, 1.01, 0.99, 1.03, 0.98, 1.0]).map { $0 * $1 }),
    ], seed: 42)
    #expect(rows[0].value == 100 && rows[0].vsMmapLock == 1 && rows[0].verdict == nil)
    #expect(rows[0].valueInterval.map { $0.low == 100 && $0.high == 200 } == true)
    let spf = rows[1]
    #expect(abs(spf.vsMmapLock! - 1.1) < 1e-9)
    #expect(spf.verdict == .faster)
    #expect(spf.samples?.count == 7)
    #expect(rows[2].verdict == .similar)
    // Same seed, same figures.
    #expect(addRoundStatistics(rows, seed: 42) == rows)
  }

  @Test func interleavedOrdersArePermutationsReproducibleFromTheSeed() {
    let orders = interleavedOrders(participants: 5, rounds: 50, seed: 12345)
    #expect(orders.count == 50)
    for o in orders { #expect(o.sorted() == [0, 1, 2, 3, 4]) }
    #expect(interleavedOrders(participants: 5, rounds: 50, seed: 12345) == orders)
    #expect(interleavedOrders(participants: 5, rounds: 50, seed: 12346) != orders)
    #expect(interleavedOrders(participants: 5, rounds: 50, seed: 12345, stream: 1) != orders)
    // Fresh per round: the rounds do not all share one order, and each design leads some round.
    #expect(Set(orders).count > 10)
    #expect(Set(orders.map { $0[0] }) == [0, 1, 2, 3, 4])
    #expect(interleavedOrders(participants: 1, rounds: 3, seed: 0) == [[0], [0], [0]])
  }
}
