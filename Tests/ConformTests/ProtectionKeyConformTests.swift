import Faultline
import FaultlineConform
import FaultlineReplay
import Testing

/// Protection keys in `faultline conform`: which ops the generator emits on which host, the
/// engine side of a PKU sequence, the printed script. The host side of PKU runs only where the
/// CPU has it (CI's PKU machines); here it is checked where it answers the same on any host.
@Suite struct ProtectionKeyGeneratorTests {
  let window = ConformWindow()

  func ops(_ keys: MachineProfile.ProtectionKeys, sequences: Int = 200) -> [ConformOp] {
    let g = ConformGenerator(window: window, protectionKeys: keys)
    return (0..<sequences).flatMap { g.sequence(seed: 7, index: $0, length: 40) }
  }

  @Test func theGeneratorEmitsPkeyOpsWhenTheHostHasPKU() {
    let all = ops(.x86)
    var allocs = 0, frees = 0, writes = 0, keyed = 0, executeOnly = 0
    var rights = Set<UInt64>()
    var freed = Set<Int32>()
    for op in all {
      switch op {
      case .pkeyAlloc(_, let r):
        allocs += 1
        rights.insert(r)
      case .pkeyFree(let key):
        frees += 1
        freed.insert(key)
        #expect(key != 0, "key 0 freed could come back from pkey_alloc with access denied")
      case .wrpkru(let value):
        writes += 1
        #expect(value & 3 == 0, "PKRU 0x\(String(value, radix: 16)) closes key 0, the child's own memory")
      case .pkeyMprotect(_, _, let prot, let key):
        if key != -1 { keyed += 1 }
        if prot == 4 { executeOnly += 1 }
      case .mmap(_, _, 4, _), .mprotect(_, _, 4):
        executeOnly += 1
      default:
        break
      }
    }
    #expect(allocs > 200 && frees > 50 && writes > 100 && keyed > 200)
    #expect(rights == [0, 1, 2, 3, 4])
    // Keys allocated earlier, and the invalid ones.
    #expect(freed.isSuperset(of: [1, 2, -2, 16]))
    #expect(executeOnly > all.count / 30)
  }

  /// Without PKU the key calls still have rows to check (EINVAL, then ENOSPC, keyed
  /// pkey_mprotect EINVAL), but WRPKRU does not exist.
  @Test func theGeneratorEmitsNoWrpkruWithoutPKU() {
    var plain = 0, keyed = 0, allocs = 0, frees = 0
    for op in ops(.none) {
      switch op {
      case .wrpkru:
        Issue.record("\(op) on a host without protection keys")
      case .pkeyMprotect(_, _, _, let key):
        if key == -1 { plain += 1 } else { keyed += 1 }
      case .pkeyAlloc: allocs += 1
      case .pkeyFree: frees += 1
      default:
        break
      }
    }
    #expect(plain > 50 && keyed > 10 && allocs > 10 && frees > 10)
  }

  /// The engine side of sequences only a PKU host can run, under `.x86PKU`: every op answers,
  /// and the answers include keys, PKU faults and execute-only memory.
  @Test func theEngineRunsGeneratedPKUSequencesUnderX86PKU() throws {
    let g = ConformGenerator(window: window, protectionKeys: .x86)
    var keys = 0, pkuFaults = 0, wrpkruOK = 0
    for design in [FaultDesign.mmapLock, .speculative, .perVMALock] {
      let engine = EngineRunner(window: window, design: design, profile: .x86PKU)
      for i in 0..<60 {
        let seq = g.sequence(seed: 3, index: i, length: 60)
        let results = try engine.run(seq)
        #expect(results.count == seq.count)
        for (op, r) in zip(seq, results) {
          switch (op, r) {
          case (.pkeyAlloc, .returned(let k)):
            #expect(k >= 1 && k < 16)
            keys += 1
          case (_, .access(.sigsegv(AccessSignal.pkuErr)?, _, _)): pkuFaults += 1
          case (.wrpkru, .returned(0)): wrpkruOK += 1
          default: break
          }
        }
      }
    }
    #expect(keys > 50 && pkuFaults > 50 && wrpkruOK > 50)
  }

  /// The same ops on a machine without keys answer as this kind of host does.
  @Test func withoutPKUTheEngineRefusesKeysAndTheInstruction() throws {
    let a = window.start
    let r = try EngineRunner(window: window, profile: .reference).run([
      .mmap(addr: a, length: 4096, prot: 4, flags: 0x32), .load(addr: a, length: 1),
      .pkeyAlloc(flags: 0, rights: 0), .pkeyFree(key: 0), .pkeyMprotect(addr: a, length: 4096, prot: 1, key: -1),
      .pkeyMprotect(addr: a, length: 4096, prot: 1, key: 0), .wrpkru(0),
    ])
    #expect(r[1] == .access(signal: nil, faultAddress: 0, bytes: [0]))
    #expect(r[2...] == [.failed(22), .failed(22), .returned(0), .failed(22), .failed(95)])
  }

  @Test func theScriptPrintsPkeyCallsInReplaySyntax() {
    let a = window.start
    let ops: [ConformOp] = [
      .pkeyAlloc(flags: 0, rights: 3), .pkeyAlloc(flags: 1, rights: 0), .pkeyAlloc(flags: 0, rights: 5),
      .pkeyMprotect(addr: a, length: 4096, prot: 1, key: 1), .wrpkru(0x5555_5550), .load(addr: a + 8, length: 1),
      .pkeyFree(key: 1), .pkeyFree(key: 16),
    ]
    let results: [ConformResult] = [
      .returned(1), .failed(22), .failed(22), .returned(0), .returned(0),
      .access(signal: .sigsegv(code: AccessSignal.pkuErr), faultAddress: a + 8, bytes: []), .returned(0), .failed(22),
    ]
    #expect(ScriptPrinter.script(ops, results) == """
      pkey_alloc(0, PKEY_DISABLE_ACCESS|PKEY_DISABLE_WRITE) = 1
      pkey_alloc(0x1, 0) = -1 EINVAL (Invalid argument)
      pkey_alloc(0, PKEY_DISABLE_ACCESS|0x4) = -1 EINVAL (Invalid argument)
      pkey_mprotect(0x100000000000, 4096, PROT_READ, 1) = 0
      wrpkru(0x55555550) = 0
      load(0x100000000008, 1) = SIGSEGV
      --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_PKUERR, si_addr=0x100000000008} ---
      pkey_free(1) = 0
      pkey_free(16) = -1 EINVAL (Invalid argument)

      """)
  }

  /// A PKU fault and an access fault are different answers.
  @Test func aPKUErrAndAnAccErrDisagree() {
    var c = ConformComparator(window: window)
    let load = ConformOp.load(addr: window.start, length: 1)
    let pku = ConformResult.access(signal: .sigsegv(code: AccessSignal.pkuErr), faultAddress: window.start, bytes: [])
    let acc = ConformResult.access(signal: .sigsegv(code: AccessSignal.accErr), faultAddress: window.start, bytes: [])
    #expect(c.compare(load, host: pku, engine: acc) != nil)
    #expect(c.compare(load, host: pku, engine: pku) == nil)
  }
}

@Suite("Protection keys against the host", .enabled(if: HostProbe.usable, "ThreadSanitizer refuses the probe's mappings"))
struct ProtectionKeyHostTests {
  let window = ConformWindow()

  /// Ops whose answers differ between hosts with and without PKU, but on each agree with the
  /// engine under `MachineProfile.host`: without PKU pkey_alloc and pkey_free are EINVAL, only
  /// key -1 passes pkey_mprotect, WRPKRU is refused (the probe checks OSPKE first); with PKU
  /// the keys, execute-only memory and PKRU (restored after each caught fault) decide.
  @Test func pkeyOpsAgreeWithTheHost() throws {
    let a = window.start + 0x4000
    let runner = ConformRunner(probe: try HostProbe(window: window), engine: EngineRunner(window: window))
    let ops: [ConformOp] = [
      .mmap(addr: a, length: 16384, prot: 3, flags: 0x32), .store(addr: a, length: 16, pattern: 9),
      .mmap(addr: a + 0x8000, length: 8192, prot: 4, flags: 0x32), .load(addr: a + 0x8010, length: 8),
      .store(addr: a + 0x9000, length: 1, pattern: 1), .mlock(addr: a + 0x8000, length: 4096),
      .pkeyAlloc(flags: 0, rights: 1), .pkeyAlloc(flags: 0, rights: 2), .pkeyAlloc(flags: 1, rights: 0),
      .pkeyAlloc(flags: 0, rights: 4), .pkeyMprotect(addr: a, length: 4096, prot: 3, key: 1),
      .pkeyMprotect(addr: a + 0x1000, length: 4096, prot: 3, key: 2), .load(addr: a + 0xFF8, length: 16),
      .store(addr: a + 0x1000, length: 1, pattern: 3), .load(addr: a + 0x1000, length: 4),
      .wrpkru(0x5555_5550), .load(addr: a, length: 4), .load(addr: a + 0x8000, length: 1),
      .pkeyMprotect(addr: a, length: 4096, prot: 1, key: -1), .pkeyMprotect(addr: a, length: 4096, prot: 1, key: 0),
      .pkeyMprotect(addr: a, length: 4096, prot: 1, key: 16), .pkeyMprotect(addr: a, length: 4096, prot: 1, key: -2),
      .mprotect(addr: a + 0x2000, length: 4096, prot: 4), .load(addr: a + 0x2000, length: 4),
      .pkeyFree(key: 1), .pkeyFree(key: 1), .pkeyFree(key: 16), .pkeyFree(key: -1), .pkeyFree(key: 15),
      .load(addr: a + 8, length: 1), .maps,
    ]
    let outcome = try runner.run(ops)
    for d in outcome.disagreements { Issue.record("\(d)") }
  }

  /// What this kind of host answers, pinned where it has no PKU (the brief's host).
  @Test(.enabled(if: MachineProfile.host.protectionKeys == .none, "the host has PKU"))
  func withoutPKUTheHostRefusesKeysAndTheProbeRefusesWRPKRU() throws {
    let r = try HostProbe(window: window).run([
      .pkeyAlloc(flags: 0, rights: 0), .pkeyFree(key: 1), .pkeyMprotect(addr: window.start, length: 4096, prot: 1, key: -1),
      .pkeyMprotect(addr: window.start, length: 4096, prot: 1, key: 0), .wrpkru(0x5555_5554),
    ])
    // pkey_mprotect(-1) of an unmapped range is mprotect's ENOMEM: the key passed.
    #expect(r == [.failed(22), .failed(22), .failed(12), .failed(22), .failed(95)])
  }

  /// A disagreement on a pkey call minimises to that call, printed in replay syntax.
  @Test func theMinimiserReducesAPkeyDisagreement() throws {
    var runner = ConformRunner(probe: try HostProbe(window: window), engine: EngineRunner(window: window))
    runner.engineFilter = { ops, results in
      zip(ops, results).map { op, r in
        if case .pkeyMprotect(_, 4096, _, -1) = op { return .failed(22) }
        return r
      }
    }
    let op = ConformOp.pkeyMprotect(addr: window.start + 4096, length: 4096, prot: 4, key: -1)
    var ops = ConformGenerator(window: window).sequence(seed: 5, index: 2, length: 30).filter {
      if case .pkeyMprotect = $0 { return false }
      return true
    }
    ops.insert(op, at: 20)
    let outcome = try runner.run(ops)
    #expect(outcome.disagreements.count == 1)
    let (small, _) = runner.minimize(outcome)
    #expect(small.ops == [op])
    #expect(ScriptPrinter.script(small.ops, small.host) == "pkey_mprotect(0x100000001000, 4096, PROT_EXEC, -1) = -1 ENOMEM (Cannot allocate memory)\n")
  }
}
