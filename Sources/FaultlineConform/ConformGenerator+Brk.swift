/// The generator's heap ops: `brk` relative to the initial break and `munmap` of the heap it
/// grew (issue 13, rule 4).

import Faultline

extension ConformGenerator {
  /// The most pages a sequence grows the heap by (the host child's heap has nothing above it
  /// for far longer).
  static let heapPages: UInt64 = 48

  /// A brk or heap munmap. Relative breaks are never negative: below the host child's initial
  /// break lies its parent's own heap.
  func genBrk(_ rng: inout SplitMix64, _ state: inout State) -> ConformOp {
    switch Int.random(in: 0..<20, using: &rng) {
    case 0..<9:
      // Grow or shrink by a few pages from where the break is expected, now and then to an
      // unaligned break.
      let pages = min(max(Int64(state.brkOffset >> Page.shift) + Int64.random(in: -6...8, using: &rng), 0), Int64(Self.heapPages))
      var offset = UInt64(pages) << Page.shift
      if Int.random(in: 0..<4, using: &rng) == 0 { offset += UInt64.random(in: 1...Page.offsetMask, using: &rng) }
      state.brkOffset = offset
      return .brk(addr: offset, relative: true)
    case 9:
      state.brkOffset = 0
      return .brk(addr: 0, relative: true)
    case 10, 11:
      return .brk(addr: 0, relative: false)  // brk(NULL): the current break
    case 12:
      // Refused, returning the old break: below start_brk, at TASK_SIZE (mappings above the
      // heap are in the way), past TASK_SIZE, one that page-aligns to 0.
      return .brk(addr: [0x1000, 0x7FFF_FFFF_F000, 1 << 47, UInt64.max].randomElement(using: &rng)!, relative: false)
    default:
      // A hole in the heap (or just above it): a later shrink across it returns the old break.
      let top = max(state.brkOffset >> Page.shift, 2)
      var offset = UInt64.random(in: 0..<top, using: &rng) << Page.shift
      if Int.random(in: 0..<10, using: &rng) == 0 { offset += 0x800 }  // unaligned: EINVAL
      return .heapMunmap(offset: offset, length: UInt64.random(in: 1...4, using: &rng) << Page.shift)
    }
  }
}
