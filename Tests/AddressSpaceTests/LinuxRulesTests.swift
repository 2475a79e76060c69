import Faultline
import FaultlineTestSupport
import Testing

/// Rules of Linux 6.18 that real programs hit and the engine once answered differently (issue
/// 13, "Engine rules Linux follows and Faultline does not"), each checked on the host with a
/// minimal program. Every test pins the machine profile the rule depends on.
@Suite struct LinuxRulesTests {
  let mib: UInt64 = 1 << 20
  /// `mm->mmap_base` with ASLR off: the top of the top-down area.
  let mmapBase = AddressSpaceConfig(profile: .reference).mmapBase

  /// `.reference` with `transparent_hugepage/shmem_enabled` set to `shmemTHP`.
  func profile(shmemTHP: MachineProfile.ShmemTHP) -> MachineProfile {
    var p = MachineProfile.reference
    p.shmemTHP = shmemTHP
    return p
  }

  // MARK: Rule 1: shmem placement (shmem_get_unmapped_area)

  /// `mmap(NULL, 8 MiB, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_ANONYMOUS)` with `shmem_enabled`
  /// `never` (the default) is placed as any mapping is, right below the top: `__get_unmapped_area`
  /// hands it to `shmem_get_unmapped_area`, which aligns only when shmem could use huge pages. A
  /// private anonymous mapping of the same length keeps `thp_get_unmapped_area`'s alignment
  /// (host: shared `0x7ffff75d1000`, private `0x7ffff6c00000`).
  @Test func sharedAnonymousMappingIsNotPMDAlignedWhileShmemTHPIsNever() throws {
    try withRig(memoryBytes: 64 << 20, profile: profile(shmemTHP: .never)) { r in
      let shared = try r.cpu.mmap(0, 8 * mib, prot: rw, flags: anonShared)
      #expect(shared == mmapBase - 8 * mib)
      #expect(shared % (2 * mib) != 0)
      let priv = try r.cpu.mmap(0, 8 * mib, prot: rw, flags: anonPrivate)
      #expect(priv == (shared - 8 * mib) & ~(2 * mib - 1))
      let lines = r.mm.mapsLines()
      #expect(lines.count == 2)
      #expect(lines[0] == anonLine(priv, priv + 8 * mib, "rw-p"))
      #expect(lines[1].hasPrefix("\(hex8(shared))-\(hex8(shared + 8 * mib)) rw-s 00000000 00:01 "))
      #expect(lines[1].hasSuffix(" /dev/zero (deleted)"))
    }
  }

  /// With shmem THP allowed on the internal mount (`always`, `within_size`, `advise`) or forced,
  /// `shmem_get_unmapped_area` searches with `len + 2 MiB - 4 KiB` and rounds up to a PMD
  /// boundary; `deny` turns it off like `never`. Lengths under 2 MiB are never aligned.
  @Test(arguments: MachineProfile.ShmemTHP.allCases)
  func sharedAnonymousAlignmentFollowsShmemEnabled(_ setting: MachineProfile.ShmemTHP) throws {
    try withRig(memoryBytes: 64 << 20, profile: profile(shmemTHP: setting)) { r in
      let a = try r.cpu.mmap(0, 8 * mib, prot: rw, flags: anonShared)
      let aligns = setting != .never && setting != .deny
      // Top-down: the inflated range ends at mmap_base; its start rounds up to the PMD.
      let inflatedStart = mmapBase - (8 * mib + 2 * mib - page)
      let expected = aligns ? (inflatedStart + 2 * mib - 1) & ~(2 * mib - 1) : mmapBase - 8 * mib
      #expect(a == expected)
      // Under a PMD: placed as it comes, at the top of the highest gap that fits (the one the
      // alignment left above, when it did).
      let small = try r.cpu.mmap(0, mib, prot: rw, flags: anonShared)
      #expect(small == (mmapBase - (a + 8 * mib) >= mib ? mmapBase - mib : a - mib))
      #expect(small % (2 * mib) != 0)
    }
  }

  /// A tmpfs file takes `shmem_get_unmapped_area` too, but its mount's `huge=` (the default
  /// `never`) decides, so only `force` aligns it; `shmem_enabled` governs the internal mount
  /// alone. mremap moves a shared anonymous mapping by the same rule.
  @Test(arguments: [MachineProfile.ShmemTHP.always, .force])
  func tmpfsFileAlignsOnlyWhenShmemTHPIsForced(_ setting: MachineProfile.ShmemTHP) throws {
    try withRig(memoryBytes: 64 << 20, profile: profile(shmemTHP: setting)) { r in
      r.machine.mount(TmpFS(memory: r.machine.memory), at: "/mnt")
      defer { try? r.machine.umount("/mnt") }
      let fd = try r.cpu.open("/mnt/data", flags: OpenFlags.readWrite | OpenFlags.create)
      try r.cpu.ftruncate(fd, 4 * mib)
      let a = try r.cpu.mmap(0, 4 * mib, prot: rw, flags: MapFlags.shared, fd: fd)
      if setting == .force {
        #expect(a % (2 * mib) == 0)
      } else {
        #expect(a == mmapBase - 4 * mib)
      }
      try r.cpu.munmap(a, 4 * mib)
      try r.cpu.close(fd)
    }
  }

  /// mremap's move of shared anonymous memory goes through its shmem file's
  /// `get_unmapped_area`: not aligned with `never`.
  @Test func mremapMoveOfSharedAnonymousMemoryIsNotAlignedWhileShmemTHPIsNever() throws {
    try withRig(memoryBytes: 64 << 20, profile: profile(shmemTHP: .never)) { r in
      let a = try r.cpu.mmap(0, 2 * mib, prot: rw, flags: anonShared)
      // A page right above keeps it from growing in place.
      _ = try r.cpu.mmap(a + 2 * mib, page, prot: rw, flags: anonPrivate | MapFlags.fixed)
      let moved = try r.cpu.mremap(a, 2 * mib, 4 * mib, flags: MremapFlags.mayMove)
      #expect(moved == a - 4 * mib)
      #expect(moved % (2 * mib) != 0)
    }
  }
}
