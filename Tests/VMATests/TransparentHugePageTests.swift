@testable import Faultline
import Testing

/// `TransparentHugePage`'s eligibility rules (`thp_vma_allowable_order` and
/// `thp_vma_suitable_order` for the PMD order), one rule at a time.
@Suite struct TransparentHugePageTests {
  let mib: UInt64 = 1 << 20

  func profile(_ enabled: MachineProfile.THPEnabled, pmd: MachineProfile.THPSizeEnabled = .inherit) -> MachineProfile {
    var p = MachineProfile.reference
    p.thpEnabled = enabled
    p.thpPMDEnabled = pmd
    return p
  }

  /// Global `enabled` × `VM_HUGEPAGE`, with the PMD size inheriting.
  @Test(arguments: [
    (MachineProfile.THPEnabled.always, false, true), (.always, true, true),
    (.madvise, false, false), (.madvise, true, true),
    (.never, false, false), (.never, true, false),
  ])
  func inheritFollowsTheGlobalSetting(_ enabled: MachineProfile.THPEnabled, _ advised: Bool, _ allowed: Bool) {
    let flags: VMFlags = advised ? [.read, .write, .hugePage] : [.read, .write]
    #expect(TransparentHugePage.vmaAllowable(flags: flags, isAnonymous: true, profile: profile(enabled)) == allowed)
  }

  /// The per-size setting overrides the global one (6.8: `hugepages-2048kB/enabled`).
  @Test func thePMDSizeSettingWinsOverTheGlobalOne() {
    let plain: VMFlags = [.read, .write]
    let advised: VMFlags = [.read, .write, .hugePage]
    #expect(TransparentHugePage.vmaAllowable(flags: plain, isAnonymous: true, profile: profile(.never, pmd: .always)))
    #expect(!TransparentHugePage.vmaAllowable(flags: advised, isAnonymous: true, profile: profile(.always, pmd: .never)))
    #expect(!TransparentHugePage.vmaAllowable(flags: plain, isAnonymous: true, profile: profile(.always, pmd: .madvise)))
    #expect(TransparentHugePage.vmaAllowable(flags: advised, isAnonymous: true, profile: profile(.never, pmd: .madvise)))
  }

  /// `VM_NOHUGEPAGE` (MADV_NOHUGEPAGE, MAP_STACK), file and shmem VMAs, hugetlb: never.
  @Test func noHugePageFilesShmemAndHugeTLBAreNeverEligible() {
    let always = profile(.always)
    #expect(!TransparentHugePage.vmaAllowable(flags: [.read, .write, .noHugePage], isAnonymous: true, profile: always))
    #expect(
      !TransparentHugePage.vmaAllowable(
        flags: [.read, .write, .hugePage, .noHugePage], isAnonymous: true, profile: always))
    #expect(!TransparentHugePage.vmaAllowable(flags: [.read, .write, .hugePage], isAnonymous: false, profile: always))
    #expect(!TransparentHugePage.vmaAllowable(flags: [.read, .write, .hugeTLB], isAnonymous: true, profile: always))
    #expect(!TransparentHugePage.vmaAllowable(flags: [.read, .write, .shared], isAnonymous: true, profile: always))
  }

  /// The 2 MiB range around the address must lie inside the VMA:
  /// ```
  ///   0x200000  0x400000  0x600000  0x800000
  ///   |  VMA [0x201000, 0x800000)  ...     |
  ///   [ no: starts before ][ yes ][ yes ]
  /// ```
  @Test func onlyWhollyContainedAlignedRangesAreSuitable() {
    let start: UInt64 = 2 * mib + 0x1000
    let end: UInt64 = 8 * mib
    #expect(!TransparentHugePage.vmaSuitable(start: start, end: end, address: 3 * mib))
    #expect(TransparentHugePage.vmaSuitable(start: start, end: end, address: 4 * mib))
    #expect(TransparentHugePage.vmaSuitable(start: start, end: end, address: 8 * mib - 1))
    #expect(!TransparentHugePage.vmaSuitable(start: 4 * mib, end: 6 * mib - 0x1000, address: 4 * mib))
    #expect(TransparentHugePage.vmaSuitable(start: 4 * mib, end: 6 * mib, address: 5 * mib))
    #expect(TransparentHugePage.roundDown(5 * mib + 123) == 4 * mib)
    #expect(TransparentHugePage.isAligned(4 * mib) && !TransparentHugePage.isAligned(5 * mib))
    #expect(
      TransparentHugePage.faultAllowed(
        flags: [.read, .write, .hugePage], isAnonymous: true, start: 4 * mib, end: 6 * mib, address: 4 * mib,
        profile: .reference))
    #expect(
      !TransparentHugePage.faultAllowed(
        flags: [.read, .write], isAnonymous: true, start: 4 * mib, end: 6 * mib, address: 4 * mib,
        profile: .reference))
  }
}
