import Faultline
import Testing

@testable import FaultlineReplay

/// State a log cannot carry (privileges, limits, the layout, how much memory it touched), and
/// what the replay does after a divergence (`ReplayDivergence`).
@Suite struct ReplayStateTests {
  /// `mlock` of 10 MiB + 4 KiB, as root on Linux: past the 8 MiB default `RLIMIT_MEMLOCK` it is
  /// ENOMEM unprivileged (`mlock_fixup` accounting), and the mismatch names the flags.
  static let lockedAsRoot = """
    brk(NULL) = 0x555555559000
    mmap(NULL, 10489856, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff75bf000
    mlock(0x7ffff75bf000, 10489856) = 0
    """

  func replay(_ text: String, _ configure: (inout ReplayOptions) -> Void) throws -> ReplayReport {
    var options = ReplayOptions()
    options.memoryBytes = 64 << 20
    options.profile = .reference
    configure(&options)
    return try ReplayExecutor.replay(text, options: options)
  }

  @Test func anMlockPastTheLimitNamesTheFlagsThatWouldChangeIt() throws {
    let r = try replay(Self.lockedAsRoot) { _ in }
    #expect(r.mismatches.map(\.line) == [3])
    #expect(r.mismatches.first?.hint?.contains("--privileged, or --rlimit MEMLOCK=BYTES") == true)
    #expect(r.mismatches.first?.description.hasSuffix("(the engine's is 8192 KiB)") == true)
  }

  @Test func privilegedOrALargerMemlockLimitReplaysIt() throws {
    #expect(try replay(Self.lockedAsRoot) { $0.privileged = true }.mismatches.isEmpty)
    #expect(try replay(Self.lockedAsRoot) { $0.rlimits[.memlock] = 16 << 20 }.mismatches.isEmpty)
  }

  /// `RLIMIT_AS` of 1 MiB: Linux refuses the 2 MiB mmap (`may_expand_vm`).
  @Test func anAddressSpaceLimitRefusesWhatItShould() throws {
    let log = """
      brk(NULL) = 0x555555559000
      mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7fbf000
      mmap(NULL, 2101248, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = -1 ENOMEM (Cannot allocate memory)
      """
    let unlimited = try replay(log) { _ in }
    #expect(unlimited.mismatches.map(\.line) == [3])
    #expect(unlimited.mismatches.first?.hint == "state the log lacks: --rlimit AS=BYTES or --rlimit DATA=BYTES")
    #expect(try replay(log) { $0.rlimits[.addressSpace] = 1 << 20 }.mismatches.isEmpty)
  }

  @Test(arguments: [
    ("MEMLOCK=64M", ReplayRlimit.memlock, UInt64(64 << 20)), ("RLIMIT_AS=unlimited", .addressSpace, .max),
    ("data=0x1000", .data, 4096), ("STACK=8k", .stack, 8192), ("STACK=infinity", .stack, .max),
  ])
  func rlimitsParse(_ text: String, _ name: ReplayRlimit, _ value: UInt64) throws {
    let (n, v) = try #require(ReplayRlimit.parse(text))
    #expect(n == name && v == value)
  }

  @Test(arguments: ["MEMLOCK", "NOFILE=1", "AS=", "AS=12Q", "AS=99999999999999999999", "AS=16777216T"])
  func badRlimitsAreRefused(_ text: String) {
    #expect(ReplayRlimit.parse(text) == nil)
  }

  /// `python3.11 -c` mapping 8 MiB and 3 MiB shared and 4 MiB private under `setarch -R -L`:
  /// the first hint-less mmap lands just above TASK_UNMAPPED_BASE, past ld.so and the vdso,
  /// which the replay infers; the layout is then bottom-up.
  @Test(arguments: FaultDesign.allCases)
  func aLogRecordedUnderSetarchLReplaysWithTheLegacyLayout(_ design: FaultDesign) throws {
    let r = try replay(try readFixture("python3-mmap-setarch-L.strace")) { $0.design = design }
    #expect(r.mismatches.isEmpty, "\(r.mismatches)")
    #expect(r.legacyLayouts == 1 && r.mapsBases == [0x2aaa_aaaa_b000] && r.executed == 56)
  }

  @Test func theDefaultLayoutForcedOnALegacyLogSaysWhichFlagFitsIt() throws {
    let r = try replay(try readFixture("python3-mmap-setarch-L.strace")) { $0.legacyLayout = false }
    #expect(r.legacyLayouts == 0)
    #expect(r.mismatches.first?.hint == "the program ran with the legacy layout: --legacy-layout")
  }

  /// An `MADV_POPULATE_WRITE` of 80 MiB (what `-XX:+AlwaysPreTouch` does to a JVM's heap) needs
  /// more than the 64 MiB arena asked for: the replay sizes the arena from the log.
  @Test func theArenaIsSizedFromWhatTheLogPopulates() throws {
    let log = """
      brk(NULL) = 0x555555559000
      mmap(NULL, 83890176, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff2fbf000
      madvise(0x7ffff2fbf000, 83890176, MADV_POPULATE_WRITE) = 0
      """
    let r = try replay(log) { _ in }
    #expect(r.mismatches.isEmpty, "\(r.mismatches)")
    #expect(r.arenaBytes >= 100 << 20)
  }

  // MARK: One divergence, one report

  /// A hint-less mmap the engine placed elsewhere (here: a wrong `--maps-base`) is moved to the
  /// recorded address, so the calls on it match: one mismatch, not four.
  @Test func aMisplacedMappingMovesToTheRecordedAddress() throws {
    let r = try replay(
      """
      mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x1ffffffff000
      store(0x1ffffffff000, 8192) = ok
      mprotect(0x1ffffffff000, 4096, PROT_READ) = 0
      store(0x1ffffffff000, 1) = SIGSEGV
      munmap(0x1ffffffff000, 8192) = 0
      """
    ) { $0.mapsBase = 0x3000_0000_0000 }
    #expect(r.mismatches.map(\.line) == [1])
    #expect(r.mismatches.first?.got == "0x2fffffffe000" && r.consequences == 0)
  }

  /// When the recorded place is taken on the engine, the mapping stays where the engine put it
  /// and later mismatches in that address space are consequences of the root.
  @Test func laterMismatchesAfterAnUnfollowableDivergenceAreConsequences() throws {
    let r = try replay(
      """
      mmap(0x7ffff7fb0000, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0) = 0x7ffff7fb0000
      mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7fb0000
      load(0x7ffff7fbe000, 1) = SIGSEGV
      """
    ) { $0.mapsBase = 0x7fff_f7fb_f000 }
    #expect(r.mismatches.map(\.line) == [2, 3])
    #expect(r.mismatches.map(\.rootLine) == [nil, 2])
    #expect(r.mismatches[1].description.hasSuffix("(a consequence of line 2)"))
    #expect(r.summary.hasPrefix("3 calls executed: 1 matched, 2 mismatched (1 at the root, 1 consequences)"))
  }
}
