import Faultline
import Testing

@testable import FaultlineReplay

/// Protection keys in replay: `pkey_alloc`, `pkey_free`, `pkey_mprotect` and the `wrpkru`
/// pseudo-call, and the `SEGV_PKUERR` signal lines of loads and stores. The first five scripts
/// are host results recorded by `faultline conform` on a PKU machine; under `.x86PKU` each
/// replays with no mismatch.
@Suite struct ProtectionKeyReplayTests {
  static let executeOnlyLoad = """
    mmap(0x100000014000, 86016, PROT_EXEC, MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS, -1, 0) = 0x100000014000
    load(0x10000001fa51, 64) = SIGSEGV
    --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_PKUERR, si_addr=0x10000001fa51} ---
    """

  static let executeOnlyStore = """
    mmap(0x100000023000, 28672, PROT_EXEC, MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE, -1, 0) = 0x100000023000
    store(0x100000023682, 4096) = SIGSEGV
    --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_PKUERR, si_addr=0x100000023682} ---
    """

  static let hostResults: [String] = [
    executeOnlyLoad,
    executeOnlyStore,
    """
    mmap(0x10000000f000, 49152, PROT_EXEC, MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE, -1, 0) = 0x10000000f000
    mlock(0x100000015000, 4096) = -1 ENOMEM (Cannot allocate memory)
    """,
    """
    mmap(0x100000033000, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS, -1, 0) = 0x100000033000
    mprotect(0x100000034000, 16384, PROT_EXEC) = -1 ENOMEM (Cannot allocate memory)
    load(0x100000034459, 8) = SIGSEGV
    --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_PKUERR, si_addr=0x100000034459} ---
    """,
    """
    mmap(0x100000001000, 53248, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_ANONYMOUS, -1, 0) = 0x100000001000
    mprotect(0x100000003000, 81260, PROT_EXEC) = -1 ENOMEM (Cannot allocate memory)
    load(0x10000000962f, 64) = SIGSEGV
    --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_PKUERR, si_addr=0x10000000962f} ---
    """,
  ]

  /// The call lines of a script (signal lines belong to the call before them).
  static func calls(_ script: String) -> Int {
    script.split(separator: "\n").filter { !$0.hasPrefix("---") && !$0.isEmpty }.count
  }

  /// Execute-only memory (the mm's execute-only key, access-disabled in PKRU): loads and stores
  /// fault with SEGV_PKUERR, mlock cannot populate it, and a failing mprotect has already made
  /// the pages before the hole execute-only (shared memory too).
  @Test(arguments: hostResults.indices)
  func hostResultsFromAPKUMachineReplayUnderX86PKU(_ i: Int) throws {
    let script = Self.hostResults[i]
    let r = try replay(script, profile: .x86PKU)
    #expect(r.mismatches.isEmpty, "\(r.mismatches)")
    #expect(r.executed == Self.calls(script))
    #expect(r.matched == r.executed && r.skipped == 0)
  }

  /// Without keys PROT_EXEC implies read: the same load succeeds, so the test can fail.
  @Test func anExecuteOnlyLoadMismatchesUnderReference() throws {
    let r = try replay(Self.executeOnlyLoad, profile: .reference)
    #expect(r.mismatches == [
      ReplayMismatch(
        line: 2, call: "load(0x10000001fa51, 64) = SIGSEGV", expected: "SIGSEGV", got: "ok")
    ])
  }

  /// Without keys the store still faults, but with SEGV_ACCERR: the signal line tells them apart.
  @Test func theSignalLineSeparatesPKUErrFromAccErr() throws {
    let r = try replay(Self.executeOnlyStore, profile: .reference)
    #expect(r.mismatches == [
      ReplayMismatch(
        line: 2, call: "store(0x100000023682, 4096) = SIGSEGV",
        expected: "SIGSEGV (SEGV_PKUERR at 0x100000023682)", got: "SIGSEGV (SEGV_ACCERR at 0x100000023682)")
    ])
    #expect(r.executed == 2 && r.matched == 1)
  }

  /// Every errno row of the calls, keys and PKRU deciding loads and stores, a freed key that
  /// VMAs keep and the execute-only key then reuses, and ENOSPC once every key is taken.
  @Test func pkeyCallsAndWrpkruFollowLinuxUnderX86PKU() throws {
    var script = """
      mmap(0x7f0000000000, 16384, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000
      pkey_alloc(0, PKEY_DISABLE_ACCESS|PKEY_DISABLE_WRITE) = 1
      pkey_alloc(0, PKEY_DISABLE_WRITE) = 2
      pkey_alloc(0x1, 0) = -1 EINVAL (Invalid argument)
      pkey_alloc(0, PKEY_DISABLE_ACCESS|0x4) = -1 EINVAL (Invalid argument)
      pkey_mprotect(0x7f0000000000, 4096, PROT_READ|PROT_WRITE, 1) = 0
      pkey_mprotect(0x7f0000001000, 4096, PROT_READ|PROT_WRITE, 2) = 0
      load(0x7f0000000008, 1) = SIGSEGV
      --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_PKUERR, si_addr=0x7f0000000008} ---
      load(0x7f0000001000, 8) = ok
      store(0x7f0000000ffc, 8) = SIGSEGV
      --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_PKUERR, si_addr=0x7f0000000ffc} ---
      wrpkru(0x55555540) = 0
      load(0x7f0000000008, 1) = ok
      store(0x7f0000000ffc, 8) = ok
      pkey_mprotect(0x7f0000000000, 4096, PROT_READ, 3) = -1 EINVAL (Invalid argument)
      pkey_mprotect(0x7f0000000000, 4096, PROT_READ, 16) = -1 EINVAL (Invalid argument)
      pkey_mprotect(0x7f0000000000, 4096, PROT_READ, -2) = -1 EINVAL (Invalid argument)
      pkey_mprotect(0x7f0000000000, 4096, PROT_READ, -1) = 0
      pkey_mprotect(0x7f0000000000, 4096, PROT_READ|PROT_WRITE, 0) = 0
      pkey_mprotect(0x7f0000010000, 4096, PROT_READ, 1) = -1 ENOMEM (Cannot allocate memory)
      pkey_free(2) = 0
      pkey_free(2) = -1 EINVAL (Invalid argument)
      pkey_free(16) = -1 EINVAL (Invalid argument)
      pkey_free(-1) = -1 EINVAL (Invalid argument)
      store(0x7f0000001000, 1) = ok
      mmap(0x7f0000004000, 4096, PROT_EXEC, MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS, -1, 0) = 0x7f0000004000
      load(0x7f0000004000, 1) = SIGSEGV
      --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_PKUERR, si_addr=0x7f0000004000} ---
      store(0x7f0000001000, 1) = SIGSEGV
      --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_PKUERR, si_addr=0x7f0000001000} ---
      pkey_free(2) = -1 EINVAL (Invalid argument)
      pkey_mprotect(0x7f0000001000, 4096, PROT_READ, 2) = -1 EINVAL (Invalid argument)

      """
    // Keys 0, 1 and the execute-only 2 are taken: 3 to 15, then none.
    for key in 3..<16 { script += "pkey_alloc(0, 0) = \(key)\n" }
    script += "pkey_alloc(0, 0) = -1 ENOSPC (No space left on device)\n"
    let r = try replay(script, profile: .x86PKU)
    #expect(r.mismatches.isEmpty, "\(r.mismatches)")
    #expect(r.executed == Self.calls(script) && r.matched == r.executed)
  }

  /// A fork's thread starts with its parent's PKRU, as Linux copies the registers.
  @Test func aForkKeepsTheParentsPKRU() throws {
    let r = try replay(
      """
      [pid   10] mmap(0x7f0000000000, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000
      [pid   10] pkey_alloc(0, 0) = 1
      [pid   10] pkey_mprotect(0x7f0000000000, 4096, PROT_READ|PROT_WRITE, 1) = 0
      [pid   10] fork() = 11
      [pid   11] store(0x7f0000000000, 1) = ok
      [pid   11] wrpkru(0x55555554) = 0
      [pid   11] store(0x7f0000000000, 1) = SIGSEGV
      [pid   11] --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_PKUERR, si_addr=0x7f0000000000} ---
      [pid   10] store(0x7f0000000000, 1) = ok
      [pid   11] pkey_alloc(0, 0) = 2
      [pid   10] pkey_alloc(0, 0) = 2
      """, profile: .x86PKU)
    #expect(r.mismatches.isEmpty, "\(r.mismatches)")
    // Nine calls run; the fork makes the child's address space.
    #expect(r.executed == 9 && r.matched == 9 && r.forks == 1)
  }

  /// A machine without keys: pkey_alloc is EINVAL (then ENOSPC, the key it took never goes
  /// back), no key but -1 passes, and the wrpkru instruction does not exist.
  @Test func withoutKeysPkeyAllocIsEinval() throws {
    let script = """
      mmap(0x7f0000000000, 4096, PROT_EXEC, MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000
      pkey_alloc(0, PKEY_DISABLE_ACCESS) = -1 EINVAL (Invalid argument)
      pkey_alloc(0, 0) = -1 ENOSPC (No space left on device)
      pkey_free(0) = -1 EINVAL (Invalid argument)
      pkey_mprotect(0x7f0000000000, 4096, PROT_READ, 0) = -1 EINVAL (Invalid argument)
      pkey_mprotect(0x7f0000000000, 4096, PROT_EXEC, -1) = 0
      load(0x7f0000000000, 1) = ok
      wrpkru(0x55555554) = -1 EOPNOTSUPP (Operation not supported)
      """
    let r = try replay(script, profile: .reference)
    #expect(r.mismatches.isEmpty, "\(r.mismatches)")
    #expect(r.executed == 8 && r.matched == 8)
    // On a PKU machine the first pkey_alloc returns a key: 2, since the PROT_EXEC mmap took 1
    // as the execute-only key.
    let pku = try replay(script, profile: .x86PKU)
    #expect(pku.mismatches.first?.line == 2 && pku.mismatches.first?.got == "2")
  }

  @Test func pkeyCallsDecodeWithStracesSymbols() throws {
    let s = try ScriptParser.parse(
      """
      pkey_alloc(0, PKEY_DISABLE_ACCESS|PKEY_DISABLE_WRITE) = 1
      pkey_alloc(0, 0) = -1 ENOSPC (No space left on device)
      pkey_free(1) = 0
      pkey_mprotect(0x7f0000000000, 4096, PROT_READ, 1) = 0
      pkey_mprotect(0x7f0000000000, 4096, PROT_READ, -1) = -1 EINVAL (Invalid argument)
      wrpkru(0x55555554) = 0
      """)
    let ops = try s.calls.map { try Operation.decode($0) }
    #expect(ops == [
      .pkeyAlloc(flags: 0, accessRights: 3), .pkeyAlloc(flags: 0, accessRights: 0), .pkeyFree(pkey: 1),
      .pkeyMprotect(addr: 0x7f00_0000_0000, length: 4096, prot: 1, pkey: 1),
      .pkeyMprotect(addr: 0x7f00_0000_0000, length: 4096, prot: 1, pkey: -1), .wrpkru(0x5555_5554),
    ])
    #expect(s.calls[1].result == .error(name: "ENOSPC", message: "No space left on device"))
  }

  @Test(arguments: [
    ("pkey_alloc(0, PKEY_DISABLE_EXEC) = 1\n", "unknown flag PKEY_DISABLE_EXEC"),
    ("pkey_alloc(0) = 1\n", "pkey_alloc takes 2 arguments, not 1"),
    ("pkey_mprotect(0x1000, 4096, PROT_READ) = 0\n", "pkey_mprotect takes 4 arguments, not 3"),
    ("pkey_free(NULL) = 0\n", "argument 1 must be a number"),
    ("wrpkru() = 0\n", "wrpkru takes 1 argument, not 0"),
    ("wrpkru(0) = ok\n", "the result must be a number"),
  ])
  func malformedPkeyCallsAreParseErrors(_ text: String, _ message: String) {
    let (_, errors) = ScriptParser.parseCollectingErrors(text)
    #expect(errors.count == 1 && errors.first?.line == 1)
    #expect(errors.first?.message.contains(message) == true, "\(errors)")
  }
}
