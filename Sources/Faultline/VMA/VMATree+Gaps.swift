/// The VMA tree's gap search: the free ranges between neighbouring entries, found from the
/// largest gap each internal entry keeps for its subtree (the maple tree's `mas_empty_area` and
/// `mas_empty_area_rev`), so that `get_unmapped_area` costs O(log n) instead of a walk over the
/// VMAs.
///
/// A gap is `[previous entry's end, next entry's start)`, with 0 before the first entry and no
/// end after the last. The tree knows only these raw bounds; the caller's `fit` decides whether
/// a candidate really holds the mapping (its low and high limits, the stack guard gap of a
/// grows-down neighbour, alignment) and returns the address, or `nil` to keep searching. A
/// subtree is skipped when its largest gap is below `size`: `fit` never accepts a gap smaller
/// than the length it was asked for, so no answer is lost. Only gaps that are large but clipped
/// by the limits or a guard gap cost extra descents, which keeps the search O(log n).
///
/// - Requires: `mmap_lock` held (the search walks the working tree).
extension VMATree {
  /// The highest gap, scanning down from `high`, that `fit` accepts (`unmapped_area_topdown`'s
  /// walk). `fit(gapStart, next)` sees each candidate that could hold `size` bytes and ends
  /// above `low`; `next` is the entry after the gap (`nil` above the last one).
  func gapTopDown(
    atLeast size: UInt64, low: UInt64, high: UInt64, fit: (UInt64, VMA?) -> UInt64?
  ) -> UInt64? {
    if working.count == 0 { return fit(0, nil) }
    let lastEnd = working.key(working.count - 1)
    if lastEnd < high, let addr = fit(lastEnd, nil) { return addr }
    return Self.topDown(working, prevEnd: 0, size: size, low: low, high: high, fit: fit)
  }

  /// The lowest gap, scanning up from `low`, that `fit` accepts (`unmapped_area`'s walk).
  func gapBottomUp(
    atLeast size: UInt64, low: UInt64, high: UInt64, fit: (UInt64, VMA?) -> UInt64?
  ) -> UInt64? {
    if working.count == 0 { return fit(0, nil) }
    if let addr = Self.bottomUp(working, prevEnd: 0, size: size, low: low, high: high, fit: fit) { return addr }
    let lastEnd = working.key(working.count - 1)
    return lastEnd < high ? fit(lastEnd, nil) : nil
  }

  /// Entry `i` of a node owns the gap before its first range (which starts after `prevEnd`
  /// for `i == 0`, after entry `i - 1` otherwise) and, in an internal node, the gaps inside
  /// its subtree.
  private static func topDown(
    _ n: Node, prevEnd: UInt64, size: UInt64, low: UInt64, high: UInt64, fit: (UInt64, VMA?) -> UInt64?
  ) -> UInt64? {
    var i = n.count - 1
    while i >= 0 {
      // Every gap this entry owns ends below its end; those below `low` hold nothing.
      if n.key(i) <= low { return nil }
      let before = i > 0 ? n.key(i - 1) : prevEnd
      if before < high, let addr = descend(n, i, before: before, size: size, low: low, high: high, fit: fit, topDown: true) {
        return addr
      }
      i -= 1
    }
    return nil
  }

  private static func bottomUp(
    _ n: Node, prevEnd: UInt64, size: UInt64, low: UInt64, high: UInt64, fit: (UInt64, VMA?) -> UInt64?
  ) -> UInt64? {
    for i in 0..<n.count {
      let before = i > 0 ? n.key(i - 1) : prevEnd
      // Every gap from here on starts at or above `before`.
      if before >= high { return nil }
      if n.key(i) > low, let addr = descend(n, i, before: before, size: size, low: low, high: high, fit: fit, topDown: false) {
        return addr
      }
    }
    return nil
  }

  /// Tries the gaps entry `i` of `n` owns, when the largest could hold `size` bytes.
  @inline(__always)
  private static func descend(
    _ n: Node, _ i: Int, before: UInt64, size: UInt64, low: UInt64, high: UInt64, fit: (UInt64, VMA?) -> UInt64?,
    topDown: Bool
  ) -> UInt64? {
    let gapBefore = n.start(i) - before
    if n.isLeaf {
      guard gapBefore >= size else { return nil }
      return fit(before, Unmanaged<VMA>.fromOpaque(n.ptr(i)).takeUnretainedValue())
    }
    guard max(gapBefore, n.gap(i)) >= size else { return nil }
    let child = Node(n.ptr(i))
    return topDown
      ? Self.topDown(child, prevEnd: before, size: size, low: low, high: high, fit: fit)
      : Self.bottomUp(child, prevEnd: before, size: size, low: low, high: high, fit: fit)
  }
}
