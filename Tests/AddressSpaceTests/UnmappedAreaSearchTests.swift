import Faultline
import FaultlineTestSupport
import Testing

/// The tree's gap search (`unmapped_area` / `unmapped_area_topdown` over subtree gaps) against a
/// linear reference that walks every pair of neighbouring VMAs, on randomized layouts: gaps of
/// every size around the stack guard gap, grows-down VMAs, trees from one leaf to four levels,
/// limits anywhere, alignment masks and offsets, both directions; then again after munmaps and
/// mprotects have split, merged and removed entries (the writers' gap upkeep).
///
/// The reference is `vm_unmapped_area` as Linux writes it: a gap must hold `len + alignMask`
/// bytes within `[low, high)`. Top-down takes the highest gap `[lower VMA's end, upper VMA's
/// start)`; when the upper VMA grows down and its `vm_start_gap` reaches into that gap, it
/// searches again with `high = vm_start_gap`; otherwise it places the mapping at the gap's top,
/// aligned down. Bottom-up takes the lowest gap `[lower VMA's end, upper VMA's vm_start_gap)`
/// and places the mapping at its bottom, aligned up.
@Suite struct UnmappedAreaSearchTests {
  let guardGap: UInt64 = 256 * page

  struct Area {
    let start: UInt64
    let end: UInt64
    let growsDown: Bool
  }

  func areas(_ mm: AddressSpace) -> [Area] {
    var out: [Area] = []
    mm.tree.forEach { out.append(Area(start: $0.start, end: $0.end, growsDown: $0.flags.contains(.growsDown))) }
    return out
  }

  func reference(
    _ areas: [Area], _ len: UInt64, low: UInt64, high: UInt64, topDown: Bool, alignMask: UInt64, alignOffset: UInt64
  ) -> UInt64? {
    let length = len + alignMask
    guard high >= low && high - low >= length else { return nil }
    func startGap(_ a: Area) -> UInt64 { a.growsDown ? (a.start > guardGap ? a.start - guardGap : 0) : a.start }
    if topDown {
      var high = high
      search: while high >= low && high - low >= length {
        for i in (0...areas.count).reversed() {
          let s = max(i == 0 ? 0 : areas[i - 1].end, low)
          let e = min(i < areas.count ? areas[i].start : .max, high)
          guard e > s && e - s >= length else { continue }
          if i < areas.count && startGap(areas[i]) < e {
            high = startGap(areas[i])
            continue search
          }
          let addr = e - len
          return addr - ((addr &- alignOffset) & alignMask)
        }
        return nil
      }
      return nil
    }
    var gaps: [(UInt64, UInt64)] = []
    var prevEnd: UInt64 = 0
    for a in areas {
      gaps.append((prevEnd, startGap(a)))
      prevEnd = a.end
    }
    gaps.append((prevEnd, .max))
    for (gapStart, gapEnd) in gaps {
      let s = max(gapStart, low)
      let e = min(gapEnd, high)
      guard e > s && e - s >= length else { continue }
      return s + ((alignOffset &- s) & alignMask)
    }
    return nil
  }

  /// Lays out up to `maxCount` MAP_FIXED mappings upward from `base`, gaps drawn around the
  /// interesting sizes (none, a page, just below, at and above the guard gap, large).
  func layOut(_ mm: AddressSpace, cpu: CPU, rng: inout SplitMix64, base: UInt64, maxCount: Int) throws -> UInt64 {
    let count = 1 + rng.below(maxCount)
    let gapPages: [UInt64] = [0, 0, 0, 1, 2, 255, 256, 257, 300, 512, 4096]
    let prots: [Prot] = [Prot.read, rw, Prot.none]
    var cursor = base
    for _ in 0..<count {
      cursor += page * (rng.below(3) == 0 ? UInt64(rng.below(600)) : rng.pick(gapPages))
      let length = page * UInt64(1 + rng.below(rng.below(4) == 0 ? 600 : 8))
      var flags = anonPrivate | MapFlags.fixed
      if rng.below(8) == 0 { flags = flags | MapFlags.growsDown }
      _ = try cpu.mmap(cursor, length, prot: rng.pick(prots), flags: flags)
      cursor += length
    }
    return cursor
  }

  func checkQueries(_ mm: AddressSpace, rng: inout SplitMix64, base: UInt64, top: UInt64, seed: UInt64) {
    let layout = areas(mm)
    let lens: [UInt64] = [1, 1, 2, 16, 255, 256, 257, 300, 1024, 4096]
    let masks: [UInt64] = [0, 0, 0, 0xF000, 0x1F_F000]
    let span = (top - base) / page + 8192
    for q in 0..<150 {
      let len = page * (rng.below(3) == 0 ? UInt64(1 + rng.below(2000)) : rng.pick(lens))
      let around = base > 4096 * page ? base - 4096 * page : 0
      var low = around + page * UInt64(rng.below(Int(span)))
      var high = around + page * UInt64(rng.below(Int(span)))
      if rng.below(4) == 0 { low = page }
      if rng.below(4) == 0 { high = top + page * UInt64(rng.below(1 << 20)) }
      if low > high && rng.below(2) == 0 { swap(&low, &high) }
      let mask = rng.pick(masks)
      let offset = page * UInt64(rng.below(1024))
      for topDown in [true, false] {
        let got = mm.vmUnmappedArea(len, low: low, high: high, topDown: topDown, alignMask: mask, alignOffset: offset)
        let want = reference(layout, len, low: low, high: high, topDown: topDown, alignMask: mask, alignOffset: offset)
        #expect(
          got == want,
          "seed \(seed) query \(q): len \(len) low \(hex8(low)) high \(hex8(high)) mask \(mask) offset \(offset) topDown \(topDown)")
      }
    }
  }

  @Test(arguments: 1...40 as ClosedRange<UInt64>)
  func searchMatchesLinearReference(seed: UInt64) throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.maxMapCount = 1 << 20
    try withRig(memoryBytes: 16 << 20, config: config) { r in
      var rng = SplitMix64(seed: seed)
      let base: UInt64 = 0x10_0000_0000
      let top = try layOut(r.mm, cpu: r.cpu, rng: &rng, base: base, maxCount: seed % 4 == 0 ? 40 : 3000)
      #expect(r.mm.tree.verify() == r.mm.mapCount)
      checkQueries(r.mm, rng: &rng, base: base, top: top, seed: seed)
      // Splits, merges and removals: the gap summaries must follow.
      for _ in 0..<200 {
        let at = base + page * UInt64(rng.below(Int((top - base) / page)))
        let length = page * UInt64(1 + rng.below(rng.below(2) == 0 ? 4 : 700))
        if rng.below(2) == 0 {
          try r.cpu.munmap(at, length)
        } else {
          _ = try? r.cpu.mprotect(at, length, prot: rng.pick([Prot.read, rw]))
        }
      }
      #expect(r.mm.tree.verify() == r.mm.mapCount)
      checkQueries(r.mm, rng: &rng, base: base, top: top, seed: seed)
    }
  }

  /// Tests/Probes/guard_gap_topdown.c (setarch -R, 6.18): a 4 MiB grows-down VMA at S with
  /// nothing free above it and a 64 KiB VMA at S - 512 KiB, inside its guard gap; "then 64K at
  /// S-0x110000, 256K at S-0x150000": the search retries below the guard gap, skipping the
  /// 448 KiB above the small VMA and the free space below it inside the guard region.
  @Test func aGapInsideAStacksGuardRegionIsSkippedTopDown() throws {
    try withRig { r in
      let s = r.mm.config.mmapBase - (4 << 20)
      _ = try r.cpu.mmap(s, 4 << 20, prot: rw, flags: anonPrivate | MapFlags.fixed | MapFlags.growsDown)
      _ = try r.cpu.mmap(s - 0x8_0000, 0x1_0000, prot: Prot.read, flags: anonPrivate | MapFlags.fixed)
      #expect(try r.cpu.mmap(0, 0x1_0000, prot: Prot.read, flags: anonPrivate) == s - 0x11_0000)
      #expect(try r.cpu.mmap(0, 0x4_0000, prot: rw, flags: anonPrivate) == s - 0x15_0000)
    }
  }

  @Test func emptySpaceIsOneGap() throws {
    try withRig { r in
      #expect(r.mm.vmUnmappedArea(4 * page, low: page, high: 0x10_0000, topDown: true) == 0x10_0000 - 4 * page)
      #expect(r.mm.vmUnmappedArea(4 * page, low: page, high: 0x10_0000, topDown: false) == page)
      #expect(r.mm.vmUnmappedArea(0x10_0000, low: page, high: 0x10_0000, topDown: false) == nil)
    }
  }
}

extension SplitMix64 {
  fileprivate mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
  fileprivate mutating func pick<T>(_ a: [T]) -> T { a[below(a.count)] }
}
