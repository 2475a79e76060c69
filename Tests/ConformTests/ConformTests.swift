import Faultline
import FaultlineConform
import FaultlineReplay
import Testing

@Suite("Differential check against the host kernel", .enabled(if: HostProbe.usable, "ThreadSanitizer refuses the probe's mappings"))
struct ConformTests {
  let window = ConformWindow()

  @Test func aFixedSeedGivesTheSameSequenceTwice() {
    let g = ConformGenerator(window: window)
    let a = g.sequence(seed: 42, index: 3, length: 60)
    let b = g.sequence(seed: 42, index: 3, length: 60)
    #expect(a == b)
    #expect(a.count == 60)
    #expect(a.last == .maps)
    #expect(g.sequence(seed: 42, index: 4, length: 60) != a)
    #expect(g.sequence(seed: 43, index: 3, length: 60) != a)
  }

  @Test func sequencesStayInTheReservation() {
    let g = ConformGenerator(window: window)
    let lo = window.reserveStart
    let hi = window.reserveStart + window.reserveLength
    for i in 0..<200 {
      for op in g.sequence(seed: 9, index: i, length: 50) {
        switch op {
        case .mmap(let addr, let length, _, let flags)
        where flags & 0x10 != 0 && addr != 0 && addr < 0x7FFF_0000_0000 && length < 1 << 40:
          // Any other MAP_FIXED fails: address 0 (EPERM) or a length wrapping past the top.
          #expect(addr >= lo && addr + length <= hi, "\(op)")
        case .load(let addr, let length), .store(let addr, let length, _):
          #expect(addr < 0x2000 || (addr >= lo && addr + length <= hi), "\(op)")
        default: break
        }
      }
    }
  }

  @Test func aSmallRunAgreesWithTheHost() throws {
    let runner = ConformRunner(probe: try HostProbe(window: window), engine: EngineRunner(window: window))
    let summary = runner.runSequences(seed: 1, indices: 0..<50, length: 40, generator: ConformGenerator(window: window))
    for (i, outcome) in summary.failing.prefix(3) {
      Issue.record("sequence \(i): \(outcome.disagreements.first!)")
    }
    #expect(summary.hostFailures.isEmpty)
    #expect(summary.sequences == 50)
    #expect(summary.ops == 50 * 40)
    #expect(summary.disagreements == 0)
    #expect(summary.agreements == summary.ops)
  }

  @Test(arguments: [FaultDesign.speculative, .sequenced, .perVMALock])
  func everyDesignAgreesWithTheHost(_ design: FaultDesign) throws {
    let runner = ConformRunner(probe: try HostProbe(window: window), engine: EngineRunner(window: window, design: design))
    let summary = runner.runSequences(seed: 2, indices: 0..<15, length: 40, generator: ConformGenerator(window: window))
    #expect(summary.disagreements == 0)
    #expect(summary.hostFailures.isEmpty)
  }

  /// A fake engine that answers one munmap shape wrongly: the minimiser must cut a long
  /// sequence down to the op that shows it.
  @Test func theMinimiserReducesAnInjectedDisagreementToAShortScript() throws {
    var runner = ConformRunner(probe: try HostProbe(window: window), engine: EngineRunner(window: window))
    runner.engineFilter = { ops, results in
      zip(ops, results).map { op, r in
        if case .munmap(_, let length) = op, length == 0 { return .failed(12) }  // ENOMEM, not EINVAL
        return r
      }
    }
    var ops = ConformGenerator(window: window).sequence(seed: 5, index: 0, length: 40)
    ops.insert(.munmap(addr: window.start, length: 0), at: 30)
    let outcome = try runner.run(ops)
    #expect(outcome.disagreements.count == 1)
    let (small, tests) = runner.minimize(outcome)
    #expect(small.ops == [.munmap(addr: window.start, length: 0)])
    #expect(tests > 0)
    let script = ScriptPrinter.script(small.ops, small.host)
    #expect(script == "munmap(0x100000000000, 0) = -1 EINVAL (Invalid argument)\n")
  }

  /// An injected disagreement that needs its context: a load that reads the wrong byte only
  /// after a store. The minimised script keeps the mmap, the store and the load.
  @Test func theMinimiserKeepsTheOpsADisagreementNeeds() throws {
    var runner = ConformRunner(probe: try HostProbe(window: window), engine: EngineRunner(window: window))
    runner.engineFilter = { _, results in
      results.map { r in
        if case .access(nil, let at, let bytes) = r, bytes.contains(0x5A) {
          return .access(signal: nil, faultAddress: at, bytes: bytes.map { $0 == 0x5A ? 0 : $0 })
        }
        return r
      }
    }
    let a = window.start + 0x3000
    var ops = ConformGenerator(window: window).sequence(seed: 11, index: 1, length: 30).filter {
      if case .maps = $0 { return true }
      return false
    }
    ops += [
      .mmap(addr: a, length: 8192, prot: 3, flags: 0x32), .maps, .load(addr: a, length: 8),
      .store(addr: a + 4, length: 1, pattern: 0x5A), .maps, .load(addr: a, length: 8), .maps,
    ]
    let outcome = try runner.run(ops)
    #expect(!outcome.agrees)
    let (small, _) = runner.minimize(outcome)
    #expect(small.ops == [.mmap(addr: a, length: 8192, prot: 3, flags: 0x32), .store(addr: a + 4, length: 1, pattern: 0x5A), .load(addr: a, length: 8)])
  }

  @Test func theScriptIsInReplayFormat() {
    let a = window.start
    let ops: [ConformOp] = [
      .mmap(addr: a, length: 8192, prot: 3, flags: 0x22 | 0x10), .munmap(addr: a + 1, length: 4096),
      .mprotect(addr: a, length: 4096, prot: 0), .madvise(addr: a, length: 4096, advice: 4),
      .store(addr: a, length: 1, pattern: 1), .maps,
    ]
    let results: [ConformResult] = [
      .returned(a), .failed(22), .returned(0), .returned(0),
      .access(signal: .sigsegv(code: 2), faultAddress: a, bytes: []),
      .maps(["100000000000-100000001000 ---p 00000000 00:00 0 "]),
    ]
    #expect(ScriptPrinter.script(ops, results) == """
      mmap(0x100000000000, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS, -1, 0) = 0x100000000000
      munmap(0x100000000001, 4096) = -1 EINVAL (Invalid argument)
      mprotect(0x100000000000, 4096, PROT_NONE) = 0
      madvise(0x100000000000, 4096, MADV_DONTNEED) = 0
      store(0x100000000000, 1) = SIGSEGV
      --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_ACCERR, si_addr=0x100000000000} ---
      maps() = 
      100000000000-100000001000 ---p 00000000 00:00 0 


      """)
  }

  @Test func placementFreeResultsAgreeOutsideTheWindowOnly() {
    var c = ConformComparator(window: window)
    let hinted = ConformOp.mmap(addr: 0, length: 4096, prot: 3, flags: 0x22)
    #expect(c.compare(hinted, host: .returned(0x7F00_0000_0000), engine: .returned(0x7FFF_F7FF_E000)) == nil)
    #expect(c.compare(hinted, host: .returned(window.start), engine: .returned(0x7FFF_F7FF_E000)) != nil)
    let fixed = ConformOp.mmap(addr: 0x7F00_0000_0000, length: 4096, prot: 3, flags: 0x32)
    #expect(c.compare(fixed, host: .returned(0x7F00_0000_0000), engine: .returned(0x7FFF_F7FF_E000)) != nil)
  }

  @Test func mapsInodesAreComparedByOrderOfAppearance() {
    var c = ConformComparator(window: window)
    let host = ConformResult.maps([
      "100000000000-100000001000 rw-s 00000000 00:01 6830                       /dev/zero (deleted)",
      "100000002000-100000003000 rw-s 00002000 00:01 6830                       /dev/zero (deleted)",
    ])
    let same = ConformResult.maps([
      "100000000000-100000001000 rw-s 00000000 00:01 1001                       /dev/zero (deleted)",
      "100000002000-100000003000 rw-s 00002000 00:01 1001                       /dev/zero (deleted)",
    ])
    let split = ConformResult.maps([
      "100000000000-100000001000 rw-s 00000000 00:01 1001                       /dev/zero (deleted)",
      "100000002000-100000003000 rw-s 00002000 00:01 1002                       /dev/zero (deleted)",
    ])
    #expect(c.compare(.maps, host: host, engine: same) == nil)
    var d = ConformComparator(window: window)
    #expect(d.compare(.maps, host: host, engine: split) != nil)
  }
}

/// The engine disagreements `faultline conform` found, each as its minimised script (host
/// results in the test's name and comments), kept as regression tests now that all are fixed.
@Suite("Engine disagreements found by conform", .enabled(if: HostProbe.usable, "ThreadSanitizer refuses the probe's mappings"))
struct FoundEngineBugTests {
  let window = ConformWindow()

  func disagrees(_ ops: [ConformOp]) throws -> Bool {
    let runner = ConformRunner(probe: try HostProbe(window: window), engine: EngineRunner(window: window))
    return try !runner.run(ops).agrees
  }

  @Test func growsdownVMAExpandsOnAFaultBelowIt() throws {
    let a = window.start + 0x10000
    let ops: [ConformOp] = [
      .mmap(addr: a, length: 12288, prot: 3, flags: 0x32 | 0x100),  // MAP_GROWSDOWN
      .load(addr: a - 0xD75, length: 4096),
    ]
    #expect(try !disagrees(ops))
  }

  @Test func populateReadNeedsVMRead() throws {
    let a = window.start + 0x2F000
    let ops: [ConformOp] = [
      .mmap(addr: a, length: 8192, prot: 4, flags: 0x31),  // PROT_EXEC, MAP_SHARED
      .madvise(addr: a + 0x1000, length: 4096, advice: 22),  // MADV_POPULATE_READ
    ]
    #expect(try !disagrees(ops))
  }

  @Test func mapStackSetsNoHugepage() throws {
    let a = window.start + 0x11000
    let ops: [ConformOp] = [
      .mmap(addr: a, length: 69632, prot: 6, flags: 0x32 | 0x20000),  // MAP_STACK
      .mmap(addr: a + 0x2000, length: 12288, prot: 6, flags: 0x32),
      .maps,
    ]
    #expect(try !disagrees(ops))
  }

  static func anonVMAReuseOrderScript(_ w: ConformWindow) -> [ConformOp] {
    let b = w.start
    return [
      .mmap(addr: b + 0xF000, length: 82959, prot: 3, flags: 0x32),
      .mprotect(addr: b + 0x1A000, length: 16384, prot: 2),
      .store(addr: b + 0x11018, length: 1, pattern: 1),
      .store(addr: b + 0x1F7D4, length: 8, pattern: 1),
      .store(addr: b + 0x1B69C, length: 8, pattern: 1),
      .mprotect(addr: b + 0x16000, length: 86016, prot: 3),
      .maps,
    ]
  }

  @Test func anonVMAReuseTriesTheNextVMAFirst() throws {
    #expect(try !disagrees(Self.anonVMAReuseOrderScript(window)))
  }

  @Test func mprotectPopulatesALockedRangeItMakesWritable() throws {
    let b = window.start
    let ops: [ConformOp] = [
      .mmap(addr: b + 0x1E000, length: 98304, prot: 1, flags: 0x32 | 0x2000),  // MAP_LOCKED
      .mprotect(addr: b + 0x28000, length: 32768, prot: 7),
      .mprotect(addr: b + 0x2C000, length: 16384, prot: 1),
      .maps,
    ]
    #expect(try !disagrees(ops))
  }

  /// The engine trapped here (an arithmetic overflow in `remapMove`).
  @Test func mremapDontUnmapFromInsideAVMA() throws {
    let b = window.start
    let ops: [ConformOp] = [
      .mmap(addr: b + 0x1B000, length: 36864, prot: 3, flags: 0x32),
      .mremap(old: b + 0x1F000, oldSize: 4096, newSize: 4096, flags: 7, newAddress: b + 0x25000),
      .maps,
    ]
    #expect(try !disagrees(ops))
  }

  @Test func mremapGrowingSharedAnonymousMemoryLeavesItsObjectSize() throws {
    let b = window.start
    let ops: [ConformOp] = [
      .mmap(addr: b + 0x2C000, length: 20480, prot: 4, flags: 0x31 | 0x100000),
      .mremap(old: b + 0x30000, oldSize: 4096, newSize: 32768, flags: 1, newAddress: 0),
      .load(addr: b + 0x3069D, length: 4096),
    ]
    #expect(try !disagrees(ops))
  }

  @Test func pageoutDropsCleanSharedAnonymousPages() throws {
    let b = window.start
    let ops: [ConformOp] = [
      .mmap(addr: b + 0x37000, length: 36864, prot: 3, flags: 0x31),
      .load(addr: b + 0x3DDE2, length: 4096),
      .madvise(addr: b + 0x3D000, length: 12288, advice: 21),  // MADV_PAGEOUT
      .mincore(addr: b + 0x3D000, length: 8192),
    ]
    #expect(try !disagrees(ops))
  }
}
