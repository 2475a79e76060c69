import Faultline
import FaultlineTestSupport
import Testing

// The VMA tree, driven through the address space: random MAP_FIXED mmap / munmap / mprotect
// against a per-page reference model, and trees with thousands of entries.
//
// Why the model is exact. Pages are never loaded or stored, so no VMA ever gets an anon_vma and
// two adjacent private anonymous VMAs merge exactly when their vm_flags are equal (their page
// offsets are always contiguous: pgoff = start >> 12). vm_flags differ between pages only by the
// access bits and VM_ACCOUNT:
// - mmap: VM_ACCOUNT iff the mapping is writable (private, no MAP_NORESERVE).
// - mprotect to a writable protection: VM_ACCOUNT is added if it was missing.
// - mprotect to a non-writable protection: since Linux 6.6 ("mm/mprotect: allow unfaulted VMAs to
//   be unaccounted on mprotect()") VM_ACCOUNT is dropped when the VMA has no anon_vma, which is
//   always the case here. (Before 6.6 it was kept, so read-only pages with different histories
//   would not merge.) Checked on Linux 6.18: mmap(3 pages, RO); mprotect(middle, RW);
//   mprotect(middle, RO) gives one VMA.
// So, for untouched memory, VM_ACCOUNT == writable and the flags are a function of the
// protection: coalescing adjacent pages with equal protection gives the maps lines exactly.
//
// `randomOpsMatchModel` restricts mprotect to writable targets, so that every non-writable page
// comes straight from mmap; then the old and new VM_ACCOUNT rules agree, and the test checks
// the tree and the merge/split machinery whatever the rule. `randomOpsIncludingWriteRevocation
// MatchLinux` lifts the restriction and checks the 6.6+ rule as well.

/// xorshift64: a small deterministic generator, so a failure replays from its seed.
struct XorShift {
  var state: UInt64
  init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
  mutating func next() -> UInt64 {
    state ^= state << 13
    state ^= state >> 7
    state ^= state << 17
    return state
  }
  mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
  mutating func pick<T>(_ a: [T]) -> T { a[below(a.count)] }
  mutating func shuffle<T>(_ a: inout [T]) {
    guard a.count > 1 else { return }
    for i in stride(from: a.count - 1, to: 0, by: -1) { a.swapAt(i, below(i + 1)) }
  }
}

func permissions(_ prot: Prot) -> String {
  (prot.contains(.read) ? "r" : "-") + (prot.contains(.write) ? "w" : "-")
    + (prot.contains(.exec) ? "x" : "-") + "p"
}

/// Page states of a window: `nil` is unmapped, otherwise the protection.
struct WindowModel {
  let base: UInt64
  var pages: [Prot?]

  init(base: UInt64, pages: Int) {
    self.base = base
    self.pages = Array(repeating: nil, count: pages)
  }

  func address(_ i: Int) -> UInt64 { base + UInt64(i) * page }

  /// The maps lines the model implies: runs of mapped pages with equal protection.
  var lines: [String] {
    var out: [String] = []
    var i = 0
    while i < pages.count {
      guard let p = pages[i] else {
        i += 1
        continue
      }
      var j = i + 1
      while j < pages.count && pages[j] == p { j += 1 }
      out.append(anonLine(address(i), address(j), permissions(p)))
      i = j
    }
    return out
  }

  /// mprotect's effect: the pages from `from` up to the first hole take `prot`; ENOMEM when the
  /// range starts in a hole (nothing changes) or meets one before its end.
  mutating func mprotect(_ from: Int, _ to: Int, _ prot: Prot) -> Errno? {
    var i = from
    while i < to, pages[i] != nil {
      pages[i] = prot
      i += 1
    }
    return i < to ? Errno.noMemory : nil
  }
}

let allProts: [Prot] = [Prot.none, Prot.read, rw, Prot.read | Prot.exec, rw | Prot.exec]
let writableProts: [Prot] = [rw, rw | Prot.exec]

/// Runs `ops` random operations over a 4 MiB window and compares the engine with the model after
/// each; stops at the first divergence.
func runModel(seed: UInt64, ops: Int, mprotectTargets: [Prot], sourceLocation: SourceLocation = #_sourceLocation) throws {
  try withRig { r in
    let windowPages = 1024
    var model = WindowModel(base: 0x4000_0000, pages: windowPages)
    var rng = XorShift(seed: seed)
    var log: [String] = []
    for step in 0..<ops {
      let from = rng.below(windowPages)
      // Mostly short ranges, sometimes long ones.
      let maxLen = rng.below(8) == 0 ? windowPages - from : min(48, windowPages - from)
      let len = 1 + rng.below(maxLen)
      let to = from + len
      let addr = model.address(from)
      let bytes = UInt64(len) * page
      let kind = rng.below(20)
      var expectedError: Errno? = nil
      var actualError: Errno? = nil
      let op: String
      if kind < 8 {
        let prot = rng.pick(allProts)
        op = "mmap(0x\(String(addr, radix: 16)), \(len) pages, \(permissions(prot)), MAP_FIXED)"
        for i in from..<to { model.pages[i] = prot }
        do throws(Errno) {
          let got = try r.cpu.mmap(addr, bytes, prot: prot, flags: anonPrivate | MapFlags.fixed)
          if got != addr { Issue.record("mmap returned 0x\(String(got, radix: 16))", sourceLocation: sourceLocation) }
        } catch { actualError = error }
      } else if kind < 13 {
        op = "munmap(0x\(String(addr, radix: 16)), \(len) pages)"
        for i in from..<to { model.pages[i] = nil }
        do throws(Errno) { try r.cpu.munmap(addr, bytes) } catch { actualError = error }
      } else {
        let prot = rng.pick(mprotectTargets)
        op = "mprotect(0x\(String(addr, radix: 16)), \(len) pages, \(permissions(prot)))"
        expectedError = model.mprotect(from, to, prot)
        do throws(Errno) { try r.cpu.mprotect(addr, bytes, prot: prot) } catch { actualError = error }
      }
      log.append(op)
      if log.count > 8 { log.removeFirst() }

      let expected = model.lines
      let actual = r.mm.mapsLines()
      let entries = r.mm.tree.verify()
      let ok = actualError == expectedError && actual == expected && entries == r.mm.mapCount
        && r.mm.mapCount == expected.count
      if !ok {
        Issue.record(
          """
          seed \(seed) step \(step): after \(op)
          errno: got \(String(describing: actualError)), expected \(String(describing: expectedError))
          mapCount \(r.mm.mapCount), tree entries \(entries), model lines \(expected.count)
          last ops:
          \(log.joined(separator: "\n"))
          engine maps:
          \(actual.joined(separator: "\n"))
          model maps:
          \(expected.joined(separator: "\n"))
          """, sourceLocation: sourceLocation)
        return
      }
    }
  }
}

@Suite struct VMATreeTests {
  /// mmap / munmap / mprotect (to writable protections only: see the file comment) keep the maps
  /// lines equal to the per-page model's, and the tree's structure and count consistent.
  @Test(arguments: [0x1234_5678 as UInt64, 42, 0xDEAD_BEEF])
  func randomOpsMatchModel(seed: UInt64) throws {
    try runModel(seed: seed, ops: 3000, mprotectTargets: writableProts)
  }

  /// The same with any mprotect target. Linux >= 6.6 drops VM_ACCOUNT on RW->RO/NONE of memory
  /// with no anon_vma, so untouched pages with equal protection always merge.
  @Test(arguments: [0x1234_5678 as UInt64, 7])
  func randomOpsIncludingWriteRevocationMatchLinux(seed: UInt64) throws {
    try runModel(seed: seed, ops: 3000, mprotectTargets: allProts)
  }

  /// Thousands of one-page VMAs with alternating protections (so nothing merges) make a tree of
  /// three or more levels; removing them in random order keeps it consistent down to empty.
  @Test func thousandsOfVMAsBuildADeepTreeAndRemoveInRandomOrder() throws {
    try withRig { r in
      let n = 4096
      let start: UInt64 = 0x4000_0000
      func prot(_ i: Int) -> Prot { i % 2 == 0 ? Prot.read : rw }
      func expectedLines(_ present: [Bool]) -> [String] {
        present.indices.filter { present[$0] }.map {
          anonLine(start + UInt64($0) * page, start + UInt64($0 + 1) * page, permissions(prot($0)))
        }
      }
      var rng = XorShift(seed: 0xC0FFEE)
      var order = Array(0..<n)
      rng.shuffle(&order)
      var present = Array(repeating: false, count: n)
      for (k, i) in order.enumerated() {
        _ = try r.cpu.mmap(start + UInt64(i) * page, page, prot: prot(i), flags: anonPrivate | MapFlags.fixed)
        present[i] = true
        #expect(r.mm.mapCount == k + 1)
        if k % 512 == 511 { #expect(r.mm.tree.verify() == k + 1) }
      }
      #expect(r.mm.tree.verify() == n)
      #expect(r.mm.mapCount == n)
      #expect(r.mm.tree.height >= 3)
      #expect(r.mm.mapsLines() == expectedLines(present))

      rng.shuffle(&order)
      for (k, i) in order.enumerated() {
        try r.cpu.munmap(start + UInt64(i) * page, page)
        present[i] = false
        let left = n - k - 1
        let entries = r.mm.tree.verify()
        if entries != left || r.mm.mapCount != left {
          Issue.record("after removing \(k + 1) VMAs: tree \(entries), mapCount \(r.mm.mapCount), expected \(left)")
          return
        }
        if k % 256 == 255 { #expect(r.mm.mapsLines() == expectedLines(present)) }
      }
      #expect(r.mm.mapCount == 0)
      #expect(r.mm.tree.height == 1)
      #expect(r.mm.mapsLines().isEmpty)
    }
  }

  /// One mprotect over thousands of alternating VMAs merges them all into one (every removal
  /// path of the tree runs: merges, rebalancing, root collapse).
  @Test func mprotectAcrossThousandsOfVMAsMergesThemIntoOne() throws {
    try withRig { r in
      let n = 3000
      let start: UInt64 = 0x4000_0000
      for i in 0..<n {
        _ = try r.cpu.mmap(
          start + UInt64(i) * page, page, prot: i % 2 == 0 ? Prot.read : rw, flags: anonPrivate | MapFlags.fixed)
      }
      #expect(r.mm.mapCount == n)
      #expect(r.mm.tree.verify() == n)
      #expect(r.mm.tree.height >= 3)
      try r.cpu.mprotect(start, UInt64(n) * page, prot: rw)
      #expect(r.mm.mapsLines() == [anonLine(start, start + UInt64(n) * page, "rw-p")])
      #expect(r.mm.mapCount == 1)
      #expect(r.mm.tree.verify() == 1)
      #expect(r.mm.tree.height == 1)
    }
  }

  /// Splitting one VMA into thousands by mprotecting every other page, then munmapping the whole
  /// range at once.
  @Test func everyOtherPageMprotectedThenWholeRangeUnmapped() throws {
    try withRig { r in
      let n = 2048
      let start: UInt64 = 0x4000_0000
      _ = try r.cpu.mmap(start, UInt64(n) * page, prot: rw, flags: anonPrivate | MapFlags.fixed)
      for i in stride(from: 1, to: n, by: 2) {
        try r.cpu.mprotect(start + UInt64(i) * page, page, prot: Prot.read)
      }
      #expect(r.mm.mapCount == n)
      #expect(r.mm.tree.verify() == n)
      let lines = r.mm.mapsLines()
      #expect(lines.count == n)
      #expect(lines.first == anonLine(start, start + page, "rw-p"))
      #expect(lines.last == anonLine(start + UInt64(n - 1) * page, start + UInt64(n) * page, "r--p"))
      try r.cpu.munmap(start, UInt64(n) * page)
      #expect(r.mm.mapCount == 0)
      #expect(r.mm.tree.verify() == 0)
      #expect(r.mm.mapsLines().isEmpty)
    }
  }
}
