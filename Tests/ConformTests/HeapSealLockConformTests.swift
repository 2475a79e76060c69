import CFaultlineProbe
import Faultline
import FaultlineConform
import FaultlineReplay
import Testing

/// conform's brk, mseal and mlockall ops (issue 13, acceptance 2): what the generator draws, and
/// sequences whose host answers are pinned (each was run on this machine's 6.18 kernel first).
@Suite struct HeapSealLockGeneratorTests {
  let window = ConformWindow()

  /// Relative breaks stay at or above the initial one and within `heapPages` (plus a byte
  /// offset), absolute ones are the refused values, heap munmaps stay above the initial break,
  /// and every kind appears.
  @Test func theGeneratorDrawsHeapSealAndLockOps() {
    let g = ConformGenerator(window: window)
    var seen = Set<String>()
    for i in 0..<300 {
      for op in g.sequence(seed: 5, index: i, length: 40) {
        switch op {
        case .brk(let addr, true):
          seen.insert("brk")
          #expect(addr < (48 + 1) << 12, "\(op)")
        case .brk(let addr, false):
          seen.insert("brk absolute")
          #expect([0, 0x1000, 0x7FFF_FFFF_F000, 1 << 47, UInt64.max].contains(addr), "\(op)")
        case .heapMunmap(let offset, let length):
          seen.insert("heap munmap")
          #expect(offset < 49 << 12 && length <= 4 << 12, "\(op)")
        case .mseal(let addr, _, _):
          seen.insert("mseal")
          #expect(addr >= window.reserveStart && addr < window.end, "\(op)")
        case .mlockall(let flags):
          seen.insert("mlockall")
          #expect(flags >= 0 && flags <= 8, "\(op)")
        case .munlockall:
          seen.insert("munlockall")
        default: break
        }
      }
    }
    #expect(seen == ["brk", "brk absolute", "heap munmap", "mseal", "mlockall", "munlockall"])
  }

  /// Breaks print at the engine's `start_brk` plus their offset, so the script replays on the
  /// engine as it ran there.
  @Test func theScriptPrintsTheNewCallsInReplaySyntax() {
    let a = window.start
    let base: UInt64 = 0x5555_5555_9000
    let ops: [ConformOp] = [
      .brk(addr: 0, relative: false), .brk(addr: 0x3000, relative: true), .heapMunmap(offset: 0x1000, length: 0x2000),
      .brk(addr: 0x1000, relative: true), .mseal(addr: a, length: 4096, flags: 0), .mlockall(flags: 6), .munlockall,
    ]
    let results: [ConformResult] = [.returned(0), .returned(0x3000), .returned(0), .returned(0x3000), .failed(12), .returned(0), .returned(0)]
    #expect(ScriptPrinter.script(ops, results) == """
      brk(NULL) = 0x\(String(base, radix: 16))
      brk(0x\(String(base + 0x3000, radix: 16))) = 0x\(String(base + 0x3000, radix: 16))
      munmap(0x\(String(base + 0x1000, radix: 16)), 8192) = 0
      brk(0x\(String(base + 0x1000, radix: 16))) = 0x\(String(base + 0x3000, radix: 16))
      mseal(0x100000000000, 4096, 0) = -1 ENOMEM (Cannot allocate memory)
      mlockall(MCL_FUTURE|MCL_ONFAULT) = 0
      munlockall() = 0

      """)
  }
}

@Suite("conform's heap, seal and lock ops against the host", .enabled(if: HostProbe.usable, "ThreadSanitizer refuses the probe's mappings"))
struct HeapSealLockHostTests {
  let window = ConformWindow()
  let page: UInt64 = 4096

  /// Runs `ops` on both sides, checks that every result agrees, and returns the host's.
  private func agreed(_ ops: [ConformOp]) throws -> [ConformResult] {
    let host = try HostProbe(window: window).run(ops)
    let engine = try EngineRunner(window: window, profile: .host).run(ops)
    var comparator = ConformComparator(window: window)
    for (i, op) in ops.enumerated() {
      #expect(comparator.compare(op, host: host[i], engine: engine[i]) == nil, "op \(i): \(op.callText): engine \(engine[i]), host \(host[i])")
    }
    return host
  }

  /// Rule 4 in the host child's own heap: after growing by three pages and unmapping them,
  /// a shrink to one page returns the old break; brk(NULL), one below start_brk, one at
  /// TASK_SIZE (mappings above the heap) and one that page-aligns to 0 all return the current
  /// break; an unaligned break is returned as it was asked.
  @Test func brkIsComparedRelativeToTheInitialBreak() throws {
    let host = try agreed([
      .brk(addr: 0, relative: false), .brk(addr: 3 * page, relative: true), .heapMunmap(offset: 0, length: 3 * page),
      .brk(addr: page, relative: true), .brk(addr: 0x1000, relative: false), .brk(addr: 0x7FFF_FFFF_F000, relative: false),
      .brk(addr: UInt64.max, relative: false), .brk(addr: 5 * page + 0x123, relative: true), .heapMunmap(offset: 0x800, length: page),
    ])
    #expect(host.map { if case .returned(let v) = $0 { v } else { UInt64.max } } == [
      0, 3 * page, 0, 3 * page, 3 * page, 3 * page, 3 * page, 5 * page + 0x123, UInt64.max,
    ])
    #expect(host[8] == .failed(22))
  }

  /// The child's RLIMIT_MEMLOCK is `FL_PROBE_MEMLOCK_LIMIT` (32 pages), the engine's too:
  /// MCL_CURRENT is ENOMEM on both sides (the child, and the engine's stand-in for the rest of
  /// it, are larger); after MCL_FUTURE a mapping over the limit is EAGAIN, one under it is
  /// locked and populated (mincore), and MADV_DONTNEED refuses it (EINVAL); munlockall ends it.
  @Test func mlockallMeetsTheSameLimitOnBothSides() throws {
    #expect(FL_PROBE_MEMLOCK_LIMIT == 32 * 4096)
    let a = window.start
    let anonFixed: Int32 = 0x22 | 0x10
    let host = try agreed([
      .mlockall(flags: 1), .mlockall(flags: 3), .mlockall(flags: 4), .mlockall(flags: 2),
      .mmap(addr: a, length: 33 * page, prot: 3, flags: anonFixed), .mmap(addr: a, length: 4 * page, prot: 3, flags: anonFixed),
      .mincore(addr: a, length: 4 * page), .madvise(addr: a, length: page, advice: 4), .munlockall,
      .madvise(addr: a, length: page, advice: 4), .mmap(addr: a + 8 * page, length: 2 * page, prot: 3, flags: anonFixed),
      .mincore(addr: a + 8 * page, length: 2 * page), .maps,
    ])
    #expect(host[0] == .failed(12) && host[1] == .failed(12) && host[2] == .failed(22) && host[3] == .returned(0))
    #expect(host[4] == .failed(11) && host[5] == .returned(a) && host[6] == .vector([1, 1, 1, 1]))
    #expect(host[7] == .failed(22) && host[9] == .returned(0) && host[11] == .vector([0, 0]))
  }

  /// mseal in the window: a hole is ENOMEM, a flag EINVAL; a sealed VMA refuses munmap,
  /// mprotect and MAP_FIXED over it (EPERM) and stays apart from its unsealed neighbour.
  @Test func msealAgreesWithTheHost() throws {
    let a = window.start
    let anonFixed: Int32 = 0x22 | 0x10
    let host = try agreed([
      .mmap(addr: a, length: 4 * page, prot: 1, flags: anonFixed), .mseal(addr: a, length: 5 * page, flags: 0),
      .mseal(addr: a, length: page, flags: 1), .mseal(addr: a + page, length: 2 * page, flags: 0),
      .munmap(addr: a, length: 4 * page), .mprotect(addr: a + page, length: page, prot: 3),
      .mmap(addr: a + 2 * page, length: page, prot: 3, flags: anonFixed), .munmap(addr: a, length: page), .maps,
    ])
    #expect(host[1] == .failed(12) && host[2] == .failed(22) && host[3] == .returned(0))
    #expect(host[4] == .failed(1) && host[5] == .failed(1) && host[6] == .failed(1) && host[7] == .returned(0))
    #expect(host[8] == .maps([
      "100000001000-100000003000 r--p 00000000 00:00 0 ", "100000003000-100000004000 r--p 00000000 00:00 0 ",
    ]))
  }
}
