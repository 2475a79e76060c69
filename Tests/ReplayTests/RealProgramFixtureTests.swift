import Faultline
import FaultlineTestSupport
import Testing

@testable import FaultlineReplay

/// Real programs recorded on the host (issue 13, acceptance 1; `Fixtures/README.md` has the
/// commands): a JVM under four collectors, node with workers, PostgreSQL's initdb, python's file
/// mmaps and `multiprocessing.shared_memory`, and a `-yy -i -n` log. Each replays with no
/// mismatch under every design; the counts pin that every call of theirs still runs.
@Suite struct RealProgramFixtureTests {
  /// The machine the logs were recorded on (`faultline profile` there): `.reference` but for
  /// `lsm_mmap_min_addr` 65536, which Shenandoah's low hints depend on.
  static func recordingHost() throws -> MachineProfile {
    try MachineProfile(text: try readFixture("recording-host.profile"))
  }

  /// What one fixture's replay must come to: calls executed (all of them matched), calls
  /// skipped, address spaces, file mappings on stand-ins and files opened as recorded.
  struct Expected: Sendable, CustomStringConvertible {
    var file: String
    var executed, skipped, processes, standIns, standInFiles: Int
    var description: String { file }
    init(_ file: String, _ executed: Int, _ skipped: Int, _ processes: Int, _ standIns: Int, _ standInFiles: Int) {
      (self.file, self.executed, self.skipped, self.processes) = (file, executed, skipped, processes)
      (self.standIns, self.standInFiles) = (standIns, standInFiles)
    }
  }

  static let fixtures: [Expected] = [
    // javac runs inside the JVM (single-file source launch): 860 mprotects or more (code cache,
    // metaspace, thread stacks' guard pages), 12 to 19 threads; exit/exit_group unmodelled.
    Expected("java17-serial-gc-hello-java.strace", 1354, 81, 1, 68, 205),
    Expected("java17-g1-gc-hello-java.strace", 1427, 93, 1, 70, 201),
    // ZGC maps its heap memfd (`4</memfd:java_heap>(deleted)`, tmpfs) three times, MAP_FIXED at
    // 4, 8 and 16 TiB; its NUMA calls (get_mempolicy, set_mempolicy) are unmodelled.
    Expected("java17-z-gc-hello-java.strace", 1468, 102, 1, 82, 222),
    // Shenandoah probes hints 0x1000 to 0x10000 for a low page: Linux rounds each hint below the
    // LSM minimum up to 0x10000 (rule 3).
    Expected("java17-shenandoah-gc-hello-java.strace", 1469, 94, 1, 73, 211),
    // Two worker_threads workers among node's 8 threads; 198 munmaps and 145 madvises of V8's heaps.
    Expected("node20-two-workers.strace", 781, 44, 1, 28, 43),
    // The resource tracker multiprocessing starts is a second program (vfork + execve).
    Expected("python3-mmap-shared-memory.strace", 314, 30, 2, 71, 152),
    Expected("xz-T2-yy-i-n.strace", 77, 22, 1, 22, 19),
  ]

  @Test(arguments: fixtures, FaultDesign.allCases)
  func realProgramReplaysWithNoMismatch(_ expected: Expected, _ design: FaultDesign) throws {
    let r = try replay(try readFixture(expected.file), design: design, profile: try Self.recordingHost())
    #expect(r.mismatches.isEmpty, "\(r.mismatches)")
    #expect(r.unreadableLines.isEmpty, "\(r.unreadableLines)")
    #expect(r.executed == expected.executed && r.matched == expected.executed)
    #expect(r.skipped == expected.skipped, "\(r.skippedByReason)")
    #expect(r.processes == expected.processes)
    #expect(r.standIns == expected.standIns && r.standInFiles == expected.standInFiles)
    // No memory call is skipped: every mmap, munmap, mprotect, madvise, msync and brk ran.
    let memoryCalls = ["mmap", "munmap", "mprotect", "madvise", "msync", "brk", "mremap"]
    #expect(
      r.skippedByReason.keys.allSatisfy { reason in !memoryCalls.contains { reason.hasPrefix("\($0):") } },
      "\(r.skippedByReason)")
  }

  /// initdb with `huge_pages=try` on a host with no huge pages reserved: the four backends'
  /// `MAP_HUGETLB` attempts fail with ENOMEM as on the host, the unaligned shared anonymous
  /// fallbacks land where Linux put them, and the System V segment calls all run. The log has
  /// 15,436 lines (about 2 s a replay in a debug build), so it runs under the design
  /// `FAULTLINE_DESIGN` names (`.ci/run` runs the suite once per design), mmap_lock by default.
  @Test func initdbWithHugePagesTryReplaysWithNoMismatch() throws {
    let design = environmentDesign ?? .mmapLock
    let r = try replay(
      try readFixture("initdb-pg15-huge-pages-try.strace"), design: design, profile: try Self.recordingHost())
    #expect(r.mismatches.isEmpty, "\(r.mismatches)")
    #expect(r.unreadableLines.isEmpty)
    #expect(r.executed == 8091 && r.matched == 8091)
    #expect(r.processes == 13 && r.pids == 13)
    #expect(r.standIns == 995 && r.standInFiles == 6522)
    #expect(r.skipped == 756, "\(r.skippedByReason)")
    #expect(
      r.skippedByReason.keys.allSatisfy { !$0.hasPrefix("shm") && !$0.hasPrefix("mmap") }, "\(r.skippedByReason)")
  }

  /// The Shenandoah log needs the recording host's LSM minimum: on a machine without one
  /// (`.reference`), Linux would have placed its four low probes at their hints, as the engine
  /// does, instead of at 0x10000.
  @Test func shenandoahsLowProbesDependOnTheLSMMinimum() throws {
    let r = try replay(try readFixture("java17-shenandoah-gc-hello-java.strace"), profile: .reference)
    #expect(r.mismatches.map(\.line) == [280, 282, 284, 286])
    #expect(r.mismatches.map(\.got) == ["0x1000", "0x2000", "0x4000", "0x8000"])
    #expect(r.mismatches.allSatisfy { $0.expected == "0x10000" })
  }

  /// The `-yy -i -n` prefixes (`[  59] [00007ffff7e85ad7] execve(`) and `-yy`'s fd paths read,
  /// and xz's two worker threads land in its one address space.
  @Test func yyInLogKeepsItsThreadsInOneAddressSpace() throws {
    let r = try replay(try readFixture("xz-T2-yy-i-n.strace"), profile: try Self.recordingHost())
    #expect(r.pids == 3 && r.processes == 1 && r.processCalls == 3)
    #expect(r.skippedByReason["clone3: a thread of the same address space"] == 2)
  }
}
