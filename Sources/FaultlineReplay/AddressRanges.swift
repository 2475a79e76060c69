/// A set of address ranges, kept as sorted, disjoint, non-adjacent half-open intervals: what the
/// replay remembers about a process's address space besides the engine's own VMAs (ranges the
/// script touched, ranges that stand in for memory the engine does not model).
struct AddressRanges: Equatable, Sendable {
  private(set) var ranges: [Range<UInt64>] = []

  var isEmpty: Bool { ranges.isEmpty }

  /// Adds `r` (an empty range is ignored).
  mutating func insert(_ r: Range<UInt64>) {
    guard !r.isEmpty else { return }
    var lo = r.lowerBound
    var hi = r.upperBound
    var out: [Range<UInt64>] = []
    out.reserveCapacity(ranges.count + 1)
    var placed = false
    for x in ranges {
      if x.upperBound < lo {
        out.append(x)
      } else if x.lowerBound > hi {
        if !placed {
          out.append(lo..<hi)
          placed = true
        }
        out.append(x)
      } else {
        lo = min(lo, x.lowerBound)
        hi = max(hi, x.upperBound)
      }
    }
    if !placed { out.append(lo..<hi) }
    ranges = out
  }

  /// Removes `r`.
  mutating func remove(_ r: Range<UInt64>) {
    guard !r.isEmpty else { return }
    var out: [Range<UInt64>] = []
    for x in ranges {
      if x.upperBound <= r.lowerBound || x.lowerBound >= r.upperBound {
        out.append(x)
        continue
      }
      if x.lowerBound < r.lowerBound { out.append(x.lowerBound..<r.lowerBound) }
      if x.upperBound > r.upperBound { out.append(r.upperBound..<x.upperBound) }
    }
    ranges = out
  }

  /// The parts of `r` that are in no range of the set, in order.
  func gaps(in r: Range<UInt64>) -> [Range<UInt64>] {
    var out: [Range<UInt64>] = []
    var cursor = r.lowerBound
    for x in ranges where x.upperBound > cursor {
      if x.lowerBound >= r.upperBound { break }
      if x.lowerBound > cursor { out.append(cursor..<x.lowerBound) }
      cursor = max(cursor, x.upperBound)
      if cursor >= r.upperBound { break }
    }
    if cursor < r.upperBound { out.append(cursor..<r.upperBound) }
    return out
  }

  /// The parts of `r` inside the set.
  func overlaps(in r: Range<UInt64>) -> [Range<UInt64>] {
    ranges.compactMap { x in
      let lo = max(x.lowerBound, r.lowerBound)
      let hi = min(x.upperBound, r.upperBound)
      return lo < hi ? lo..<hi : nil
    }
  }
}
