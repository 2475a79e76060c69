@testable import Faultline
import FaultlineTestSupport
import Testing

// Helpers of the transparent-huge-page fault tests (THPFaultTests, THPSplitTests): the layout,
// the profiles they pin, smaps figures, counter deltas, a byte pattern, and the leak check.

/// The 2 MiB-aligned address every THP test maps at (as the host programs did, with MAP_FIXED).
let thpBase: UInt64 = 0x2000_0000_0000
/// `HPAGE_PMD_SIZE`.
let thpSize = TransparentHugePage.size

/// The reference profile (THP `madvise`, `use_zero_page` 1), with the settings a test pins.
func thpProfile(
  enabled: MachineProfile.THPEnabled = .madvise, useZeroPage: Bool = true
) -> MachineProfile {
  var p = MachineProfile.reference
  p.thpEnabled = enabled
  p.thpPMDEnabled = .inherit
  p.thpUseZeroPage = useZeroPage
  return p
}

/// The THP counters a test compares (deltas), with `fault_raced`.
let thpCounters: [VMStatItem] = [.thpFaultAlloc, .thpFaultFallback, .thpSplitPmd, .thpZeroPageAlloc, .faultRaced]

/// Runs `body` and returns how much each of `thpCounters` moved (non-zero deltas only).
func thpDelta(_ r: Rig, _ body: () throws -> Void) rethrows -> [VMStatItem: UInt64] {
  let before = thpCounters.map { r.machine.vmstat[$0] }
  try body()
  var d: [VMStatItem: UInt64] = [:]
  for (i, item) in thpCounters.enumerated() where r.machine.vmstat[item] != before[i] {
    d[item] = r.machine.vmstat[item] &- before[i]
  }
  return d
}

/// The `Rss` and `AnonHugePages` (kB) smaps gives the VMA of `mm` that contains `addr`.
func smapsFigures(_ mm: AddressSpace, _ addr: UInt64) -> (rss: UInt64, anonHuge: UInt64)? {
  var inside = false
  var rss: UInt64?
  var anonHuge: UInt64?
  for line in mm.smaps().split(separator: "\n") {
    let words = line.split(separator: " ", omittingEmptySubsequences: true)
    if let range = words.first, range.contains("-"), !range.hasSuffix(":") {
      let bounds = range.split(separator: "-").compactMap { UInt64($0, radix: 16) }
      inside = bounds.count == 2 && bounds[0] <= addr && addr < bounds[1]
      continue
    }
    guard inside, words.count >= 2 else { continue }
    if words[0] == "Rss:" { rss = UInt64(words[1]) }
    if words[0] == "AnonHugePages:" { anonHuge = UInt64(words[1]) }
  }
  guard let rss, let anonHuge else { return nil }
  return (rss, anonHuge)
}

/// The byte the test pattern has at offset `i` of a range (differs from page to page and from
/// byte to byte, as the host programs wrote it).
@inline(__always) func thpPattern(_ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: i &* 7 &+ i >> 12) }

/// Writes the pattern over `[addr, addr + count)`.
func writePattern(_ cpu: CPU, _ addr: UInt64, count: Int) throws {
  try cpu.storeBytes(addr, (0..<count).map(thpPattern))
}

/// Whether `[addr, addr + count)` still holds the pattern written at `origin`.
func holdsPattern(_ cpu: CPU, _ addr: UInt64, count: Int, origin: UInt64) throws -> Bool {
  let bytes = try cpu.loadBytes(addr, count: count)
  let shift = Int(addr - origin)
  return bytes.indices.allSatisfy { bytes[$0] == thpPattern($0 + shift) }
}

/// What the leak check compares: frames in use and page-table pages, once the frame caches are
/// drained and every deferred free has run.
struct THPBaseline {
  let frames: Int
  let tables: Int

  init(_ r: Rig) {
    r.cpu.drainFrameCache()
    r.machine.drainDeferredFrees()
    frames = r.machine.memory.framesInUse
    tables = r.mm.pageTable.tablePages
  }

  /// Expects frames and tables back at the baseline (the huge zero page freed with them: it is
  /// 512 frames), after the test has unmapped what it mapped.
  func expectRestored(_ r: Rig, sourceLocation: SourceLocation = #_sourceLocation) {
    r.cpu.drainFrameCache()
    r.machine.drainDeferredFrees()
    #expect(r.machine.memory.framesInUse == frames, "frames leaked", sourceLocation: sourceLocation)
    #expect(r.mm.pageTable.tablePages == tables, "page tables leaked", sourceLocation: sourceLocation)
  }
}

/// A rig for a THP test: `design`, `profile`, 32 MiB of memory (sixteen 2 MiB blocks).
func withTHPRig(
  _ design: FaultDesign, profile: MachineProfile = thpProfile(), memoryBytes: Int = 32 << 20,
  sourceLocation: SourceLocation = #_sourceLocation, _ body: (Rig, THPBaseline) throws -> Void
) throws {
  try withRig(memoryBytes: memoryBytes, design: design, profile: profile, sourceLocation: sourceLocation) { r in
    let baseline = THPBaseline(r)
    try body(r, baseline)
    baseline.expectRestored(r, sourceLocation: sourceLocation)
  }
}

/// Maps `[thpBase, thpBase + length)` private anonymous read-write, advised `MADV_HUGEPAGE`
/// when `advise`.
func mapTHP(_ r: Rig, length: UInt64 = 2 * thpSize, advise: Bool = true) throws {
  _ = try r.cpu.mmap(thpBase, length, prot: rw, flags: anonPrivate | MapFlags.fixed)
  if advise { try r.cpu.madvise(thpBase, length, advice: Advice.hugePage) }
}

/// Whether the PMD of `addr` in `mm` is a huge leaf (present or PROT_NONE).
func isHugePMD(_ mm: AddressSpace, _ addr: UInt64) -> Bool {
  guard let pmd = mm.pageTable.lookupPMD(addr) else { return false }
  let e = pmd.pointee.load(ordering: .acquiring)
  return e & PTE.huge != 0 && e & (PTE.present | PTE.protNone) != 0
}
