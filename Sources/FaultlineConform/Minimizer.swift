/// Delta debugging (Zeller's ddmin) over an op sequence: drops ops while the sequence still
/// shows a disagreement, re-running both sides for every candidate.
public struct Minimizer {
  /// Runs a candidate on both sides: `true` while it still disagrees the way the original did.
  public let stillFails: ([ConformOp]) -> Bool
  /// Candidates tried so far.
  public private(set) var tests = 0
  /// Gives up after this many candidates (the result is then smaller, but maybe not minimal).
  public let budget: Int

  public init(budget: Int = 5000, stillFails: @escaping ([ConformOp]) -> Bool) {
    self.budget = budget
    self.stillFails = stillFails
  }

  /// A subsequence of `ops` that still fails, from which no single op can be dropped (within
  /// the budget). `ops` must fail.
  public mutating func minimize(_ ops: [ConformOp]) -> [ConformOp] {
    var current = ops
    var n = 2
    while current.count >= 2 && tests < budget {
      let chunk = (current.count + n - 1) / n
      var reduced = false
      // Try each complement: drop one chunk.
      var start = 0
      while start < current.count && tests < budget {
        let end = min(start + chunk, current.count)
        let candidate = Array(current[..<start] + current[end...])
        if !candidate.isEmpty && test(candidate) {
          current = candidate
          n = max(n - 1, 2)
          reduced = true
          break
        }
        start = end
      }
      if reduced { continue }
      if n >= current.count { break }
      n = min(n * 2, current.count)
    }
    // A last pass dropping single ops until none can go (ddmin ends 1-minimal, this checks it).
    var i = 0
    while i < current.count && current.count > 1 && tests < budget {
      var candidate = current
      candidate.remove(at: i)
      if test(candidate) { current = candidate } else { i += 1 }
    }
    return current
  }

  private mutating func test(_ ops: [ConformOp]) -> Bool {
    tests += 1
    return stillFails(ops)
  }
}
