import Faultline
import Foundation
import Testing

/// `MachineProfile`: its text format (`text`, `init(text:base:)`, `named`) and `readHost(root:)`
/// against a fake `/proc` and `/sys` tree.
@Suite struct MachineProfileTests {
  // MARK: Text round trip

  @Test(arguments: ["reference", "x86-pku", "host"])
  func textReadsBackToTheSameProfile(_ name: String) throws {
    let p = try #require(MachineProfile.named(name))
    #expect(try MachineProfile(text: p.text) == p)
    // From a different base too: the text sets every key.
    var other = MachineProfile.x86PKU
    other.maxMapCount = 7
    other.ksm = false
    #expect(try MachineProfile(text: p.text, base: other) == p)
  }

  @Test func everyFieldRoundTripsAwayFromItsDefault() throws {
    let p = MachineProfile(
      protectionKeys: .x86, mmapMinAddr: 0x10000, lsmMmapMinAddr: 0x20000, legacyVALayout: true,
      thpEnabled: .always, thpDefrag: .deferMadvise, shmemTHP: .withinSize, nrHugepages: 12,
      nrOvercommitHugepages: 3, maxMapCount: 1000, overcommitMemory: .never, ksm: false, taskSizeBits: 56,
      hugePages1G: false, nrHugepages1G: 2, nrOvercommitHugepages1G: 1, defaultHugePageSize: .size1G,
      thpUseZeroPage: false, thpPMDEnabled: .madvise)
    #expect(try MachineProfile(text: p.text) == p)
  }

  @Test func textNamesEveryKeyOnceWithItsSource() {
    let lines = MachineProfile.reference.text.split(separator: "\n").filter { !$0.hasPrefix("#") }
    let keys = lines.map { String($0.split(separator: " ")[0]) }
    #expect(
      keys == [
        "protection_keys", "mmap_min_addr", "lsm_mmap_min_addr", "legacy_va_layout", "transparent_hugepage.enabled",
        "transparent_hugepage.defrag", "transparent_hugepage.shmem_enabled", "transparent_hugepage.use_zero_page",
        "transparent_hugepage.hugepages-2048kB.enabled", "nr_hugepages",
        "nr_overcommit_hugepages", "hugepages-1048576kB", "hugepages-1048576kB.nr_hugepages",
        "hugepages-1048576kB.nr_overcommit_hugepages", "hugepagesize", "max_map_count", "overcommit_memory", "ksm",
        "task_size_bits",
      ])
    #expect(lines.allSatisfy { $0.contains("# ") })
    #expect(lines.contains { $0.hasPrefix("mmap_min_addr 4096 ") && $0.hasSuffix("# /proc/sys/vm/mmap_min_addr") })
  }

  @Test func keysLeftOutKeepTheBaseAndCommentsAndBlankLinesAreIgnored() throws {
    let text = """
      # a partial profile

      protection_keys x86          # none | x86
      \tmax_map_count   1000\r
      mmap_min_addr 0x10000
      """
    let p = try MachineProfile(text: text)
    var want = MachineProfile.reference
    want.protectionKeys = .x86
    want.maxMapCount = 1000
    want.mmapMinAddr = 65536
    #expect(p == want)
    #expect(try MachineProfile(text: "", base: .x86PKU) == .x86PKU)
    #expect(try MachineProfile(text: "ksm 0", base: .x86PKU).protectionKeys == .x86)
  }

  @Test func namedKnowsHostReferenceAndX86PKU() {
    #expect(MachineProfile.named("host") == .host)
    #expect(MachineProfile.named("reference") == .reference)
    #expect(MachineProfile.named("x86-pku") == .x86PKU)
    #expect(MachineProfile.named("x86PKU") == nil)
    #expect(MachineProfile.named("") == nil)
  }

  // MARK: Parse errors

  /// Each bad line sits on line 3, after a comment and a blank line, before a good one.
  @Test(arguments: [
    ("foo 1", ProfileParseError.Kind.unknownKey, "unknown key 'foo'"),
    ("Mmap_min_addr 4096", .unknownKey, "unknown key"),
    ("mmap_min_addr", .malformed, "no value for 'mmap_min_addr'"),
    ("mmap_min_addr 4096 8192", .malformed, "more than one value"),
    ("protection_keys arm", .badValue, "'arm' for 'protection_keys'"),
    ("transparent_hugepage.enabled [madvise]", .badValue, "transparent_hugepage.enabled"),
    ("transparent_hugepage.defrag sometimes", .badValue, "defer+madvise"),
    ("transparent_hugepage.shmem_enabled yes", .badValue, "within_size"),
    ("transparent_hugepage.use_zero_page 2", .badValue, "0 or 1"),
    ("transparent_hugepage.hugepages-2048kB.enabled within_size", .badValue, "inherit"),
    ("mmap_min_addr 4097", .badValue, "page-aligned"),
    ("mmap_min_addr -4096", .badValue, "mmap_min_addr"),
    ("mmap_min_addr 0x800000000000", .badValue, "mmap_min_addr"),
    ("mmap_min_addr 99999999999999999999999", .badValue, "mmap_min_addr"),
    ("lsm_mmap_min_addr 100", .badValue, "lsm_mmap_min_addr"),
    ("max_map_count lots", .badValue, "max_map_count"),
    ("max_map_count -1", .badValue, "max_map_count"),
    ("max_map_count 4294967296", .badValue, "max_map_count"),
    ("nr_hugepages 1.5", .badValue, "nr_hugepages"),
    ("nr_overcommit_hugepages x", .badValue, "nr_overcommit_hugepages"),
    ("overcommit_memory 3", .badValue, "overcommit_memory"),
    ("legacy_va_layout 2", .badValue, "0 or 1"),
    ("ksm yes", .badValue, "0 or 1"),
    ("task_size_bits 48", .badValue, "47 or 56"),
    ("task_size_bits fifty-six", .badValue, "47 or 56"),
  ])
  func aBadLineIsAnErrorNamingItsLine(_ line: String, _ kind: ProfileParseError.Kind, _ words: String) {
    let text = "# comment\n\n" + line + "\nksm 1\n"
    do throws(ProfileParseError) {
      _ = try MachineProfile(text: text)
      Issue.record("\(line) parsed")
    } catch {
      #expect(error.line == 3)
      #expect(error.kind == kind)
      #expect(error.message.contains(words), "\(error)")
      #expect(error.description.hasPrefix("line 3: "))
    }
  }

  @Test func aRepeatedKeyIsAnErrorNamingBothLines() {
    let text = "max_map_count 100\n# again:\nmax_map_count 100\n"
    #expect(
      throws: ProfileParseError(line: 3, kind: .repeatedKey, message: "'max_map_count' is already set on line 1")
    ) { try MachineProfile(text: text) }
  }

  @Test func crlfLinesCountOnce() throws {
    #expect(try MachineProfile(text: "ksm 0\r\nmax_map_count 9\r\n").maxMapCount == 9)
    #expect(throws: ProfileParseError(line: 2, kind: .unknownKey, message: "unknown key 'foo'")) {
      try MachineProfile(text: "ksm 0\r\nfoo 1\r\n")
    }
  }

  @Test func theFirstBadLineIsReported() {
    #expect(throws: ProfileParseError(line: 1, kind: .unknownKey, message: "unknown key 'foo'")) {
      try MachineProfile(text: "foo 1\nbar 2\n")
    }
    #expect("\(ProfileParseError(line: 3, kind: .unknownKey, message: "unknown key 'foo'"))" == "line 3: unknown key 'foo'")
  }

  // MARK: readHost(root:)

  /// A fake root with `/proc` and `/sys/kernel/mm` files, removed at the end.
  final class FakeRoot {
    let path: String

    init() throws {
      path = FileManager.default.temporaryDirectory.appendingPathComponent("profile-\(UUID().uuidString)").path
      try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func write(_ relative: String, _ contents: String) throws {
      let full = path + "/" + relative
      try FileManager.default.createDirectory(
        atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
      try contents.write(toFile: full, atomically: true, encoding: .utf8)
    }

    func mkdir(_ relative: String) throws {
      try FileManager.default.createDirectory(atPath: path + "/" + relative, withIntermediateDirectories: true)
    }

    /// Two processors; only the first one's flags count.
    func cpuinfo(flags: String) throws {
      try write(
        "proc/cpuinfo",
        """
        processor\t: 0
        vendor_id\t: GenuineIntel
        flags\t\t: fpu vme \(flags) sse2
        bugs\t\t: spectre_v1

        processor\t: 1
        flags\t\t: fpu ospke la57

        """)
    }
  }

  @Test func readHostFollowsEveryFile() throws {
    let root = try FakeRoot()
    try root.cpuinfo(flags: "pku ospke la57")
    try root.write("proc/sys/vm/mmap_min_addr", "65536\n")
    try root.write("proc/sys/vm/legacy_va_layout", "1\n")
    try root.write("proc/sys/vm/max_map_count", "262144\n")
    try root.write("proc/sys/vm/overcommit_memory", "2\n")
    try root.write("sys/kernel/mm/transparent_hugepage/enabled", "[always] madvise never\n")
    try root.write("sys/kernel/mm/transparent_hugepage/defrag", "always defer [defer+madvise] madvise never\n")
    try root.write(
      "sys/kernel/mm/transparent_hugepage/shmem_enabled", "always [within_size] advise never deny force\n")
    try root.write("sys/kernel/mm/transparent_hugepage/use_zero_page", "0\n")
    // 6.8+: the anonymous setting first, then the shmem one (the host's own 2048kB directory).
    try root.write(
      "sys/kernel/mm/transparent_hugepage/hugepages-2048kB/enabled", "always inherit [madvise] never\n")
    try root.write("sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "64\n")
    try root.write("sys/kernel/mm/hugepages/hugepages-2048kB/nr_overcommit_hugepages", "8\n")
    try root.write("sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages", "3\n")
    try root.write("sys/kernel/mm/hugepages/hugepages-1048576kB/nr_overcommit_hugepages", "1\n")
    try root.write("proc/meminfo", "MemTotal:       24000000 kB\nHugePages_Total:       0\nHugepagesize:    1048576 kB\n")
    try root.mkdir("sys/kernel/mm/ksm")

    let p = MachineProfile.readHost(root: root.path)
    #expect(p.protectionKeys == .x86)
    #expect(p.taskSizeBits == 56)
    #expect(p.mmapMinAddr == 65536)
    #expect(p.legacyVALayout)
    #expect(p.maxMapCount == 262_144)
    #expect(p.overcommitMemory == .never)
    #expect(p.thpEnabled == .always)
    #expect(p.thpDefrag == .deferMadvise)
    #expect(p.shmemTHP == .withinSize)
    #expect(!p.thpUseZeroPage)
    #expect(p.thpPMDEnabled == .madvise)
    #expect(p.nrHugepages == 64)
    #expect(p.nrOvercommitHugepages == 8)
    #expect(p.hugePages1G)
    #expect(p.nrHugepages1G == 3)
    #expect(p.nrOvercommitHugepages1G == 1)
    #expect(p.defaultHugePageSize == .size1G)
    #expect(p.ksm)
    // The LSM minimum is probed only on the real root.
    #expect(p.lsmMmapMinAddr == MachineProfile.reference.lsmMmapMinAddr)
    #expect(try MachineProfile(text: p.text) == p)
  }

  @Test func readHostWithoutOSPKEOrLA57HasNoKeysAnd47Bits() throws {
    let root = try FakeRoot()
    // `pku` alone is the CPU's feature; the kernel enabling it is `ospke`.
    try root.cpuinfo(flags: "pku avx2")
    try root.write("sys/kernel/mm/transparent_hugepage/enabled", "always madvise [never]\n")
    try root.write("sys/kernel/mm/transparent_hugepage/shmem_enabled", "always within_size advise never [deny] force\n")
    try root.write("sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "0\n")
    let p = MachineProfile.readHost(root: root.path)
    #expect(p.protectionKeys == .none)
    #expect(p.taskSizeBits == 47)
    // hugepages-2048kB but no hugepages-1048576kB, and no meminfo: no 1 GiB pages, 2 MiB the
    // default.
    #expect(!p.hugePages1G)
    #expect(p.defaultHugePageSize == .size2M)
    #expect(p.thpEnabled == .never)
    #expect(p.shmemTHP == .deny)
    // No per-size directory (before 6.8): the PMD size inherits; no use_zero_page file: 1.
    #expect(p.thpPMDEnabled == .inherit)
    #expect(p.thpUseZeroPage)
  }

  @Test func readHostKeepsReferenceValuesForMissingOrUnreadableFiles() throws {
    let root = try FakeRoot()
    // Unparseable contents count as missing.
    try root.write("proc/sys/vm/max_map_count", "many\n")
    try root.write("proc/sys/vm/overcommit_memory", "7\n")
    try root.write("sys/kernel/mm/transparent_hugepage/enabled", "always madvise never\n")
    try root.write("sys/kernel/mm/transparent_hugepage/defrag", "[sometimes]\n")
    try root.mkdir("sys/kernel/mm/ksm")
    #expect(MachineProfile.readHost(root: root.path) == .reference)

    // With nothing at all, every setting is reference's but KSM: a kernel without
    // /sys/kernel/mm/ksm has no KSM, so its absence reads as `ksm 0`.
    let empty = try FakeRoot()
    var want = MachineProfile.reference
    want.ksm = false
    #expect(MachineProfile.readHost(root: empty.path) == want)
  }
}
