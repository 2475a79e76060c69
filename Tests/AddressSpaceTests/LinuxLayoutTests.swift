import Faultline
import FaultlineTestSupport
import Testing

/// The two x86-64 placements Linux 6.18 has besides the default top-down layout (issue 13,
/// engine rules 8 and 9): the legacy bottom-up layout (`arch_pick_mmap_layout` when
/// `mmap_is_legacy`: the `ADDR_COMPAT_LAYOUT` personality, an unlimited `RLIMIT_STACK`, or
/// `vm.legacy_va_layout`) and `MAP_32BIT`'s window in the low 2 GiB. The expected addresses are
/// the host's, from `Tests/Probes/legacy-layout-map32bit.c` run under `setarch -R` and
/// `setarch -L -R` (output in `legacy-layout-map32bit.txt`).
@Suite struct LinuxLayoutTests {
  let mib: UInt64 = 1 << 20
  /// `TASK_UNMAPPED_BASE` for a 47-bit `TASK_SIZE` of 0x7ffffffff000: 0x7ffffffff000 / 3 is
  /// 0x2aaaaaaaa555, page-aligned up.
  let taskUnmappedBase: UInt64 = 0x2AAA_AAAA_B000
  let anonNoReserve = MapFlags.private | MapFlags.anonymous | MapFlags.noReserve

  /// `.reference` settings in the legacy layout, by the personality (`setarch -L`).
  func legacyConfig() -> AddressSpaceConfig {
    var config = AddressSpaceConfig(profile: .reference)
    config.addrCompatLayout = true
    return config
  }

  /// `mmap`'s address, or its errno as the probe prints it.
  func attempt(_ body: () throws(Errno) -> UInt64) -> String {
    do {
      return hex8(try body())
    } catch {
      return error == .noMemory ? "ENOMEM" : "errno \(error.rawValue)"
    }
  }

  /// The probe's calls, one result each, in its order. The kernel's `[vvar]`, `[vvar_vclock]`
  /// and `[vdso]` (8 pages, placed by `get_unmapped_area` before the program runs) stand in as
  /// one execute-only mapping, which merges with nothing the probe maps.
  func probeSequence(_ r: Rig) throws -> [String] {
    var out: [String] = []
    let anon = anonPrivate
    _ = try r.cpu.mmap(0, 8 * page, prot: .exec, flags: anon)
    let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anon)
    out.append(hex8(a))
    out.append(attempt { () throws(Errno) in try r.cpu.mmap(0, page, prot: .read, flags: anon) })
    out.append(attempt { () throws(Errno) in try r.cpu.mmap(0, 2 * page, prot: rw, flags: anon) })
    try r.cpu.munmap(a, 4 * page)
    out.append(attempt { () throws(Errno) in try r.cpu.mmap(0, 2 * page, prot: .read, flags: anon) })
    out.append(attempt { () throws(Errno) in try r.cpu.mmap(0, 2 * mib, prot: rw, flags: anon) })
    let low = anon | MapFlags.map32Bit
    let e = try r.cpu.mmap(0, page, prot: rw, flags: low)
    out.append(hex8(e))
    out.append(attempt { () throws(Errno) in try r.cpu.mmap(0, 3 * page, prot: .read, flags: low) })
    out.append(attempt { () throws(Errno) in try r.cpu.mmap(0x1000_0000, page, prot: rw, flags: low) })
    out.append(attempt { () throws(Errno) in try r.cpu.mmap(0x7F00_0000_0000, page, prot: rw, flags: low) })
    out.append(attempt { () throws(Errno) in try r.cpu.mmap(0, 2 * mib, prot: rw, flags: low) })
    let lowNoReserve = anonNoReserve | MapFlags.map32Bit
    out.append(attempt { () throws(Errno) in try r.cpu.mmap(0, (1 << 30) + page, prot: [], flags: lowNoReserve) })
    out.append(attempt { () throws(Errno) in try r.cpu.mmap(0, 1 << 30, prot: [], flags: lowNoReserve) })
    for _ in 0..<4 {
      out.append(attempt { () throws(Errno) in try r.cpu.mmap(0, 256 * mib, prot: [], flags: lowNoReserve) })
    }
    // The largest power of two left, then up to 16 more, then one page.
    func largestLeft() -> UInt64? {
      var len = 128 * mib
      while len >= page {
        if let got = try? r.cpu.mmap(0, len, prot: [], flags: lowNoReserve) { return got }
        len >>= 1
      }
      return nil
    }
    out.append(largestLeft().map(hex8) ?? "ENOMEM")
    for _ in 0..<16 {
      if largestLeft() == nil { break }
    }
    out.append(attempt { () throws(Errno) in try r.cpu.mmap(0, page, prot: rw, flags: low) })
    out.append(attempt { () throws(Errno) in try r.cpu.mremap(e, page, 2 * page, flags: .mayMove) })
    // The stack guard gap: 3 MiB fit below a grows-down VMA 4 MiB into a hole, 3 MiB and a page
    // do not.
    let hole = try r.cpu.mmap(0, 32 * mib + page, prot: rw, flags: anon)
    out.append(hex8(hole))
    try r.cpu.munmap(hole, 32 * mib + page)
    out.append(
      attempt { () throws(Errno) in
        try r.cpu.mmap(hole + 4 * mib, page, prot: rw, flags: anon | MapFlags.growsDown | MapFlags.fixedNoReplace)
      })
    out.append(attempt { () throws(Errno) in try r.cpu.mmap(0, 3 * mib + page, prot: .read, flags: anon) })
    out.append(attempt { () throws(Errno) in try r.cpu.mmap(0, 3 * mib, prot: rw.union(.exec), flags: anon) })
    return out
  }

  /// The host's answers to `probeSequence`, one row per call: under `setarch -R` (the default
  /// top-down layout) and under `setarch -L -R` (legacy).
  ///
  /// Legacy: from `TASK_UNMAPPED_BASE` upward, the vDSO first; holes reused lowest first; a
  /// 2 MiB mapping padded and aligned upward. `MAP_32BIT` searches `[1 GiB, 2 GiB)` bottom-up
  /// in both layouts, but `thp_get_unmapped_area` moves an already aligned result up by 2 MiB
  /// when the address space is top-down (`MMF_TOPDOWN`), so there the 256 MiB mappings leave
  /// 2 MiB holes, which the 16 extra fills do not use up before the last page finds one. The
  /// `MAP_32BIT` mapping that mremap moves lands where any mapping would. The guard gap below
  /// the grows-down VMA is kept in both.
  static let hostAnswers: [(topDown: String, legacy: String)] = [
    ("7ffff7ff3000", "2aaaaaab3000"), ("7ffff7ff2000", "2aaaaaab7000"), ("7ffff7ff0000", "2aaaaaab8000"),
    ("7ffff7ff5000", "2aaaaaab3000"), ("7ffff7c00000", "2aaaaac00000"),
    ("40000000", "40000000"), ("40001000", "40001000"), ("10000000", "10000000"), ("40004000", "40004000"),
    ("40200000", "40200000"), ("ENOMEM", "ENOMEM"), ("ENOMEM", "ENOMEM"),
    ("40600000", "40400000"), ("50800000", "50400000"), ("60a00000", "60400000"), ("ENOMEM", "ENOMEM"),
    ("70c00000", "70400000"), ("401ff000", "ENOMEM"), ("7ffff7ff3000", "2aaaaaab5000"),
    ("7ffff5bff000", "2aaaaae00000"), ("7ffff5fff000", "2aaaab200000"), ("7ffff78ff000", "2aaaab201000"),
    ("7ffff75ff000", "2aaaaae00000"),
  ]

  @Test(arguments: [false, true])
  func layoutsPlaceAsTheHostDoes(_ legacy: Bool) throws {
    try withRig(config: legacy ? legacyConfig() : nil) { r in
      let got = try probeSequence(r)
      #expect(got == Self.hostAnswers.map { legacy ? $0.legacy : $0.topDown })
      let lines = r.mm.mapsLines()
      // The window as the host printed it, less the first page, which mremap moved away.
      #expect(!lines.contains { $0.hasPrefix("40000000-") })
      #expect(lines.contains(anonLine(0x4000_1000, 0x4000_4000, "r--p")))
      if legacy {
        #expect(lines.contains(anonLine(0x4000_5000, 0x4020_0000, "---p")))
        #expect(lines.contains(anonLine(0x2AAA_AAE0_0000, 0x2AAA_AB10_0000, "rwxp")))
        #expect(lines.contains(anonLine(0x2AAA_AB20_0000, 0x2AAA_AB20_1000, "rw-p")))
        #expect(lines.contains(anonLine(0x2AAA_AB20_1000, 0x2AAA_AB50_2000, "r--p")))
      } else {
        #expect(lines.contains(anonLine(0x4000_5000, 0x401F_F000, "---p")))
        #expect(lines.contains(anonLine(0x401F_F000, 0x4040_0000, "rw-p")))
      }
    }
  }

  /// Each of `mmap_is_legacy`'s three reasons picks the legacy layout: the first hint-less
  /// mappings go upward from `TASK_UNMAPPED_BASE`, and a hole is refilled from its bottom.
  @Test(arguments: ["personality", "sysctl", "rlimit"])
  func everyReasonForTheLegacyLayoutPlacesUpwardFromTaskUnmappedBase(_ reason: String) throws {
    var profile = MachineProfile.reference
    if reason == "sysctl" { profile.legacyVALayout = true }
    var config = AddressSpaceConfig(profile: profile)
    if reason == "personality" { config.addrCompatLayout = true }
    if reason == "rlimit" { config.rlimitStack = .max }
    #expect(config.mmapIsLegacy)
    #expect(config.taskUnmappedBase == taskUnmappedBase)
    try withRig(config: config, profile: profile) { r in
      let a = try r.cpu.mmap(0, 3 * page, prot: rw, flags: anonPrivate)
      let b = try r.cpu.mmap(0, page, prot: .read, flags: anonPrivate)
      let c = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      #expect([a, b, c] == [taskUnmappedBase, taskUnmappedBase + 3 * page, taskUnmappedBase + 4 * page])
      try r.cpu.munmap(a, 3 * page)
      #expect(try r.cpu.mmap(0, page, prot: .exec, flags: anonPrivate) == taskUnmappedBase)
      #expect(try r.cpu.mmap(0, 2 * page, prot: .exec, flags: anonPrivate) == taskUnmappedBase + page)
      #expect(
        r.mm.mapsLines() == [
          anonLine(taskUnmappedBase, taskUnmappedBase + 3 * page, "--xp"),
          anonLine(taskUnmappedBase + 3 * page, taskUnmappedBase + 4 * page, "r--p"),
          anonLine(taskUnmappedBase + 4 * page, taskUnmappedBase + 6 * page, "rw-p"),
        ])
    }
  }

  /// `MAP_32BIT` lands in `[1 GiB, 2 GiB)` and fails with ENOMEM once that window is full, in
  /// either layout, while mappings without it still find room; `MAP_FIXED` ignores it.
  @Test(arguments: [false, true])
  func map32BitFailsWithENOMEMWhenItsWindowIsFull(_ legacy: Bool) throws {
    try withRig(config: legacy ? legacyConfig() : nil) { r in
      let low = anonNoReserve | MapFlags.map32Bit
      // 1 GiB less a page (no 2 MiB multiple, so no THP padding), then the last page.
      let big = try r.cpu.mmap(0, (1 << 30) - page, prot: [], flags: low)
      #expect(big == 0x4000_0000)
      let last = try r.cpu.mmap(0, page, prot: rw, flags: low)
      #expect(last == 0x7FFF_F000)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mmap(0, page, prot: rw, flags: low) }
      // A hint in the full window is searched past, and the search fails too.
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mmap(0x5000_0000, page, prot: rw, flags: low) }
      let anywhere = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      #expect(anywhere == (legacy ? taskUnmappedBase : AddressSpaceConfig(profile: .reference).mmapBase - page))
      let fixed = try r.cpu.mmap(0x1_0000_0000, page, prot: rw, flags: anonPrivate | MapFlags.fixed | MapFlags.map32Bit)
      #expect(fixed == 0x1_0000_0000)
      #expect(r.mm.mapsLines().prefix(2) == [anonLine(0x4000_0000, 0x7FFF_F000, "---p"), anonLine(0x7FFF_F000, 0x8000_0000, "rw-p")])
    }
  }
}
