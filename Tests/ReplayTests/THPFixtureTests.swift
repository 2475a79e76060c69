import Faultline
import Testing

@testable import FaultlineReplay

/// Transparent huge pages as the host kernel gave them (issue 18, acceptance 1): op scripts that
/// `Fixtures/thp-fixtures.c.txt` logged of itself on Linux 6.18 (`Fixtures/README.md` has how),
/// each with the `faultline profile` of the THP setting it ran under. mincore's vectors, the
/// bytes loads read and the maps lines show where Linux faulted a 2 MiB page (all 512 entries
/// resident after one store), mapped the huge zero page, split a PMD, moved or shared one.
@Suite struct THPFixtureTests {
  /// One recorded script: its profile, and the calls and forks a full replay runs.
  struct Fixture: Sendable, CustomStringConvertible {
    var file: String
    var profile: String
    var calls: Int
    var forks: Int
    var description: String { file }
    init(_ file: String, _ profile: String, calls: Int, forks: Int = 0) {
      (self.file, self.profile, self.calls, self.forks) = (file, profile, calls, forks)
    }
  }

  static let fixtures: [Fixture] = [
    // The script: one store faults 2 MiB; a read maps the huge zero page; DONTNEED of one
    // page splits the PMD and drops only that page.
    Fixture("thp-issue-script.replay", "thp-enabled-madvise.profile", calls: 9),
    // Reads map the huge zero page; a write there allocates a whole huge page (6.18 replaces the
    // zero PMD with a THP, do_huge_zero_wp_pmd; older kernels split it and copied 4 KiB).
    Fixture("thp-zero-page-then-write.replay", "thp-enabled-madvise.profile", calls: 26),
    // Partial mprotect, munmap, DONTNEED, FREE and mlock split huge PMDs; DONTNEED of a whole
    // 2 MiB drops it unsplit.
    Fixture("thp-splits.replay", "thp-enabled-madvise.profile", calls: 44),
    // fork shares huge PMDs (and the huge zero page); writes in both then split and copy 4 KiB.
    Fixture("thp-fork-writes.replay", "thp-enabled-madvise.profile", calls: 32, forks: 1),
    // mremap moves a whole aligned huge PMD; unaligned moves and in-place shrinks split it.
    Fixture("thp-mremap.replay", "thp-enabled-madvise.profile", calls: 29),
    // NOHUGEPAGE beside HUGEPAGE: split VMAs, huge faults only in a whole aligned 2 MiB of a
    // HUGEPAGE VMA with no page table yet.
    Fixture("thp-nohugepage-beside-hugepage.replay", "thp-enabled-madvise.profile", calls: 24),
    // MADV_COLLAPSE: 4 KiB pages, holes and zero pages become one huge page; EINVAL without a
    // page table, with a guard marker, without an anon_vma, inside one 2 MiB, or NOHUGEPAGE.
    Fixture("thp-collapse.replay", "thp-enabled-madvise.profile", calls: 59),
    // The same calls under each `enabled` setting.
    Fixture("thp-enabled-always.replay", "thp-enabled-always.profile", calls: 16),
    Fixture("thp-enabled-madvise.replay", "thp-enabled-madvise.profile", calls: 16),
    Fixture("thp-enabled-never.replay", "thp-enabled-never.profile", calls: 16),
  ]

  static func profile(_ name: String) throws -> MachineProfile {
    try MachineProfile(text: try readFixture(name))
  }

  /// Every line of a fixture reads, and its first line (the recorder's note of
  /// `transparent_hugepage/enabled`, with the setting in brackets) agrees with its profile.
  @Test(arguments: fixtures)
  func fixtureReadsAndMatchesItsProfile(_ fixture: Fixture) throws {
    let text = try readFixture(fixture.file)
    let (script, errors) = ScriptParser.parseCollectingErrors(text)
    #expect(errors.isEmpty, "\(errors)")
    #expect(script.entries.count == fixture.calls + fixture.forks)
    let profile = try Self.profile(fixture.profile)
    let header = try #require(text.split(separator: "\n").first)
    #expect(header.contains("[\(profile.thpEnabled.rawValue)]"), "\(header)")
    #expect(profile.thpUseZeroPage && profile.thpPMDEnabled == .inherit)
  }

  /// Every fixture replays with no mismatch under every design.
  @Test(arguments: fixtures, FaultDesign.allCases)
  func hostRecordedTHPScriptReplaysWithNoMismatch(_ fixture: Fixture, _ design: FaultDesign) throws {
    let r = try replay(try readFixture(fixture.file), design: design, profile: try Self.profile(fixture.profile))
    #expect(r.mismatches.isEmpty, "\(r.mismatches)")
    #expect(r.unreadableLines.isEmpty, "\(r.unreadableLines)")
    #expect(r.executed == fixture.calls && r.matched == fixture.calls)
    #expect(r.skipped == 0, "\(r.skippedByReason)")
    #expect(r.forks == fixture.forks)
  }

  /// With `enabled=never` no fault maps a huge page, even in a HUGEPAGE VMA: the script replays
  /// on 4 KiB faults alone.
  @Test(arguments: FaultDesign.allCases)
  func enabledNeverReplaysWithNoMismatch(_ design: FaultDesign) throws {
    let r = try replay(
      try readFixture("thp-enabled-never.replay"), design: design, profile: try Self.profile("thp-enabled-never.profile"))
    #expect(r.mismatches.isEmpty, "\(r.mismatches)")
    #expect(r.executed == 16 && r.matched == 16)
  }
}
