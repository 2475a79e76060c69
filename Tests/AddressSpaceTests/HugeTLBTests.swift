import Faultline
import FaultlineTestSupport
import Testing

/// `MAP_HUGETLB` (issue 13, engine rule 2). Every expectation is what this machine's 6.18
/// kernel answered with no huge pages reserved (`nr_hugepages` 0 for both sizes), run by a
/// probe program as the same calls; the reserved-pages cases follow `mm/hugetlb.c`'s
/// accounting (`HugePages_*` as `/proc/meminfo` shows them). Each test pins its pool in the
/// profile, so that it answers the same on a host with huge pages.
@Suite struct HugeTLBTests {
  static let mib: UInt64 = 1 << 20
  static let huge: UInt64 = 2 * mib
  static let privateHuge = anonPrivate | MapFlags.hugeTLB
  static let sharedHuge = anonShared | MapFlags.hugeTLB
  static let noReserve = MapFlags.noReserve

  /// The reference machine with `pages` 2 MiB huge pages and `overcommit` surplus allowed.
  static func pool(_ pages: Int, overcommit: Int = 0) -> MachineProfile {
    var p = MachineProfile.reference
    p.nrHugepages = pages
    p.nrOvercommitHugepages = overcommit
    return p
  }

  /// The maps line of an anonymous hugetlb mapping, as the host printed
  /// `7ffff7400000-7ffff7600000 rw-s 00000000 00:11 2246519   /anon_hugepage (deleted)`.
  static func hugeLine(_ start: UInt64, _ end: UInt64, _ perms: String, offset: UInt64 = 0, dev: String = "00:11", inode: String)
    -> String
  {
    var s = "\(hex8(start))-\(hex8(end)) \(perms) \(hex8(offset)) \(dev) \(inode)"
    s += String(repeating: " ", count: max(1, 73 - s.utf8.count))
    return s + "/anon_hugepage (deleted)"
  }

  /// The inode field of the maps line starting at `start`.
  static func inode(_ r: Rig, _ start: UInt64) -> String {
    let line = r.mm.mapsLines().first { $0.hasPrefix(hex8(start) + "-") } ?? ""
    let fields = line.split(separator: " ")
    return fields.count > 4 ? String(fields[4]) : "?"
  }

  // MARK: No huge pages reserved

  @Test func mapHugeTLBWithNoPagesReservedIsENOMEM() throws {
    try withRig { r in
      for (flags, length) in [
        (Self.privateHuge, Self.huge), (Self.sharedHuge, Self.huge), (Self.privateHuge, page),
        (Self.privateHuge | MapFlags.huge2MB, Self.huge), (Self.privateHuge | MapFlags.huge1GB, 1 << 30),
        (Self.privateHuge | MapFlags.huge1GB, Self.huge), (Self.privateHuge | MapFlags.locked, Self.huge),
        (Self.privateHuge | MapFlags.populate, Self.huge),
        (MapFlags.sharedValidate | MapFlags.anonymous | MapFlags.hugeTLB, Self.huge),
        (MapFlags.sharedValidate | MapFlags.anonymous | MapFlags.hugeTLB | MapFlags.huge2MB, Self.huge),
        (Self.privateHuge, 1 << 63),
      ] {
        expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mmap(0, length, prot: rw, flags: flags) }
      }
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mmap(0, Self.huge, prot: Prot.none, flags: Self.privateHuge) }
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mmap(0, Self.huge, prot: Prot.read, flags: Self.privateHuge) }
      // An aligned MAP_FIXED address and an aligned offset get as far as the reservation.
      expectErrno(.noMemory) { () throws(Errno) in
        try r.cpu.mmap(0x7fff_f000_0000, Self.huge, prot: rw, flags: Self.privateHuge | MapFlags.fixed)
      }
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mmap(0, Self.huge, prot: rw, flags: Self.privateHuge, offset: 2 << 20) }
      // A misaligned hint is rounded up, not refused.
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mmap(0x7fff_f000_1000, Self.huge, prot: rw, flags: Self.privateHuge) }
      #expect(r.mm.mapsLines().isEmpty)
      #expect(r.machine.hugetlb.status(.size2M) == HugeTLBPool.Status(total: 0, free: 0, reserved: 0, surplus: 0))
    }
  }

  @Test func aFailingFixedHugeTLBMapLeavesAHoleWhereTheOldMappingsWere() throws {
    try withRig { r in
      // `faultline conform` found it: the host clears the range before hugetlbfs_file_mmap
      // fails to reserve, and does not put the old mapping back.
      let base: UInt64 = 0x1000_0000_0000
      let a = try r.cpu.mmap(base + 0x17000, 0x13000, prot: rw, flags: anonPrivate | MapFlags.fixed)
      let keep = try r.cpu.mmap(base + Self.huge, page, prot: rw, flags: anonPrivate | MapFlags.fixed)
      expectErrno(.noMemory) { () throws(Errno) in
        try r.cpu.mmap(base, 0x10000, prot: rw, flags: Self.privateHuge | MapFlags.fixed)
      }
      #expect(r.mm.mapsLines() == [anonLine(keep, keep + page, "rw-p")])
      #expect(throws: Signal.self) { try r.cpu.storeByte(a + 0xc6b5, 1) }
      // The offset check fails after the clear as well.
      _ = try r.cpu.mmap(base, page, prot: rw, flags: anonPrivate | MapFlags.fixed)
      expectErrno(.invalidArgument) { () throws(Errno) in
        try r.cpu.mmap(base, page, prot: rw, flags: Self.privateHuge | MapFlags.fixed | Self.noReserve, offset: 4096)
      }
      #expect(r.mm.mapsLines() == [anonLine(keep, keep + page, "rw-p")])
    }
  }

  @Test func mapHugeTLBArgumentErrorsComeBeforeThePool() throws {
    try withRig { r in
      let flags = Self.privateHuge
      // Sizes without a pool (64 KiB, 4 KiB, 2^63).
      for log2: Int32 in [16, 12, 63] {
        expectErrno(.invalidArgument) { () throws(Errno) in
          try r.cpu.mmap(0, Self.huge, prot: rw, flags: flags | MapFlags(rawValue: log2 << MapFlags.hugeShift))
        }
      }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mmap(0, 0, prot: rw, flags: flags) }
      // The length rounds up to 2 MiB past the end of the address space: 0.
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mmap(0, 0 &- page, prot: rw, flags: flags) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mmap(0x7fff_f000_1000, Self.huge, prot: rw, flags: flags | MapFlags.fixed) }
      expectErrno(.invalidArgument) { () throws(Errno) in
        try r.cpu.mmap(0x7fff_f000_1000, Self.huge, prot: rw, flags: flags | MapFlags.fixedNoReplace)
      }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mmap(0x7fff_f000_0100, Self.huge, prot: rw, flags: flags | MapFlags.fixed) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mmap(0, Self.huge, prot: rw, flags: flags, offset: 4096) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mmap(0, Self.huge, prot: rw, flags: flags, offset: 1) }
      expectErrno(.invalidArgument) { () throws(Errno) in
        try r.cpu.mmap(0, Self.huge, prot: rw, flags: MapFlags.anonymous | MapFlags.hugeTLB)
      }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mmap(0, Self.huge, prot: rw, flags: flags | MapFlags.growsDown) }
      expectErrno(.badFileDescriptor) { () throws(Errno) in
        try r.cpu.mmap(0, Self.huge, prot: rw, flags: MapFlags.private | MapFlags.hugeTLB, fd: -1)
      }
      // 1 GiB pages only where the machine has them.
      var noGigantic = MachineProfile.reference
      noGigantic.hugePages1G = false
      let m = try Machine(memoryBytes: 1 << 20, profile: noGigantic)
      let mm = try AddressSpace(machine: m)
      let cpu = try CPU(mm: mm)
      expectErrno(.invalidArgument) { () throws(Errno) in
        try cpu.mmap(0, 1 << 30, prot: rw, flags: flags | MapFlags.huge1GB | Self.noReserve)
      }
    }
  }

  @Test func theSizeBitsWithoutMapHugeTLBAreIgnored() throws {
    try withRig { r in
      let a = try r.cpu.mmap(0, Self.huge, prot: rw, flags: anonPrivate | MapFlags.huge2MB)
      #expect(r.mm.mapsLines() == [anonLine(a, a + Self.huge, "rw-p")])
    }
  }

  // MARK: MAP_NORESERVE: a hugetlb VMA with no pages behind it

  @Test func noReserveMapsAlignedHugeTLBVMAsThatFaultSIGBUS() throws {
    try withRig { r in
      // The host, below a 2 MiB THP-aligned mapping at 0x7ffff7a00000: 0x7ffff7800000.
      let top = try r.cpu.mmap(0, Self.huge, prot: rw, flags: anonPrivate)
      let p = try r.cpu.mmap(0, page, prot: rw, flags: Self.privateHuge | Self.noReserve)
      #expect(p == top - Self.huge)
      let q = try r.cpu.mmap(0, 2 * Self.huge, prot: rw, flags: Self.sharedHuge | Self.noReserve)
      #expect(q == p - 2 * Self.huge)
      // A misaligned hint rounds up to 2 MiB: 0x7fffe0001000 → 0x7fffe0200000.
      let h = try r.cpu.mmap(0x7fff_e000_1000, Self.huge, prot: rw, flags: Self.privateHuge | Self.noReserve)
      #expect(h == 0x7fff_e020_0000)
      let g = try r.cpu.mmap(0, 1 << 30, prot: rw, flags: Self.privateHuge | Self.noReserve | MapFlags.huge1GB)
      #expect(g == 0x7fff_8000_0000)
      let o = try r.cpu.mmap(0, 2 * Self.huge, prot: rw, flags: Self.privateHuge | Self.noReserve, offset: 4 << 20)
      expectErrno(.invalidArgument) { () throws(Errno) in
        try r.cpu.mmap(0, Self.huge, prot: rw, flags: Self.privateHuge | Self.noReserve, offset: 4096)
      }
      #expect(
        r.mm.mapsLines() == [
          Self.hugeLine(g, g + (1 << 30), "rw-p", dev: "00:12", inode: Self.inode(r, g)),
          Self.hugeLine(h, h + Self.huge, "rw-p", inode: Self.inode(r, h)),
          Self.hugeLine(o, o + 2 * Self.huge, "rw-p", offset: 4 << 20, inode: Self.inode(r, o)),
          Self.hugeLine(q, q + 2 * Self.huge, "rw-s", inode: Self.inode(r, q)),
          Self.hugeLine(p, p + Self.huge, "rw-p", inode: Self.inode(r, p)),
          anonLine(top, top + Self.huge, "rw-p"),
        ])
      // No page in the pool: SIGBUS on load and store.
      #expect(throws: Signal.self) { try r.cpu.storeByte(p, 1) }
      #expect(throws: Signal.self) { _ = try r.cpu.loadByte(q + 5) }
      #expect(try r.cpu.mincore(q, 2 * Self.huge).allSatisfy { $0 == 0 })
      // MAP_32BIT: bottom-up from 1 GiB, aligned.
      let low = try r.cpu.mmap(0, Self.huge, prot: rw, flags: Self.privateHuge | Self.noReserve | MapFlags.map32Bit)
      #expect(low == 0x4000_0000)
      // MAP_FIXED_NOREPLACE at an aligned free address, then EEXIST.
      let fixed: UInt64 = 0x6000_0000_0000
      let flags = Self.privateHuge | Self.noReserve | MapFlags.fixedNoReplace
      #expect(try r.cpu.mmap(fixed, Self.huge, prot: rw, flags: flags) == fixed)
      expectErrno(.fileExists) { () throws(Errno) in try r.cpu.mmap(fixed, Self.huge, prot: rw, flags: flags) }
    }
  }

  @Test func smapsShowsTheHugePageSizeAndTheHTFlag() throws {
    try withRig { r in
      let q = try r.cpu.mmap(0, 2 * Self.huge, prot: rw, flags: Self.sharedHuge | Self.noReserve)
      let p = try r.cpu.mmap(0, Self.huge, prot: Prot.read | Prot.exec, flags: Self.privateHuge | Self.noReserve)
      let lines = r.mm.smaps().split(separator: "\n").map(String.init)
      #expect(lines.filter { $0.hasPrefix("KernelPageSize:") } == Array(repeating: "KernelPageSize:     2048 kB", count: 2))
      #expect(lines.filter { $0.hasPrefix("MMUPageSize:") } == Array(repeating: "MMUPageSize:        2048 kB", count: 2))
      // Host: `rd ex mr mw me de nr ht` (private) and `rd wr sh mr mw me ms de nr ht` (shared).
      #expect(lines.filter { $0.hasPrefix("VmFlags:") } == ["VmFlags: rd ex mr mw me de nr ht ", "VmFlags: rd wr sh mr mw me ms de nr ht "])
      #expect(p < q)
    }
  }

  @Test func aHugeTLBVMASplitsOnlyAtHugePageBoundaries() throws {
    try withRig { r in
      let p = try r.cpu.mmap(0, Self.huge, prot: rw, flags: Self.privateHuge | Self.noReserve)
      let q = try r.cpu.mmap(0, 2 * Self.huge, prot: rw, flags: Self.sharedHuge | Self.noReserve)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.munmap(p, page) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mprotect(q + page, page, prot: Prot.read) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mprotect(q, page, prot: Prot.read) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.munmap(q + page, Self.huge) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.munmap(p + Self.huge - page, 2 * page) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(p, page, advice: Advice.dontFork) }
      // Over part of it with an ordinary MAP_FIXED mapping: the unmap's split refuses.
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mmap(p + page, page, prot: rw, flags: anonPrivate | MapFlags.fixed) }
      // Discards: an aligned start, the end rounded down to whole huge pages; never MADV_FREE.
      try r.cpu.madvise(q, page, advice: Advice.dontNeed)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(q + page, page, advice: Advice.dontNeed) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(p, Self.huge, advice: Advice.free) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(p, Self.huge, advice: Advice.cold) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(p, Self.huge, advice: Advice.wipeOnFork) }
      expectErrno(.permissionDenied) { () throws(Errno) in try r.cpu.madvise(p, Self.huge, advice: Advice.remove) }
      try r.cpu.madvise(p, Self.huge, advice: Advice.dontFork)
      // mlock populates, and the pool has no page: ENOMEM; munlock has nothing to do.
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mlock(p, Self.huge) }
      try r.cpu.munlock(p, Self.huge)
      // The length rounds to pages and the range ends where the VMA does: no split needed.
      try r.cpu.mprotect(p, Self.huge - 1, prot: Prot.read)
      try r.cpu.mprotect(q + Self.huge, Self.huge, prot: Prot.read)
      let (ip, iq) = (Self.inode(r, p), Self.inode(r, q))
      #expect(
        r.mm.mapsLines() == [
          Self.hugeLine(q, q + Self.huge, "rw-s", inode: iq),
          Self.hugeLine(q + Self.huge, q + 2 * Self.huge, "r--s", offset: Self.huge, inode: iq),
          Self.hugeLine(p, p + Self.huge, "r--p", inode: ip),
        ])
      try r.cpu.munmap(q + Self.huge, Self.huge)
      try r.cpu.munmap(p, Self.huge - 1)
      #expect(r.mm.mapsLines() == [Self.hugeLine(q, q + Self.huge, "rw-s", inode: iq)])
    }
  }

  @Test func mremapOfAHugeTLBVMAMovesOrShrinksByWholeHugePages() throws {
    try withRig { r in
      let q = try r.cpu.mmap(0, 2 * Self.huge, prot: rw, flags: Self.sharedHuge | Self.noReserve)
      let iq = Self.inode(r, q)
      // Growing is refused; so are misaligned addresses and MREMAP_DONTUNMAP.
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mremap(q, 2 * Self.huge, 4 * Self.huge, flags: MremapFlags.mayMove) }
      expectErrno(.invalidArgument) { () throws(Errno) in
        try r.cpu.mremap(q, 2 * Self.huge, 2 * Self.huge, flags: [.mayMove, .fixed], newAddress: 0x7ffe_0020_1000)
      }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mremap(q + page, 2 * Self.huge - page, Self.huge, flags: []) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mremap(q, Self.huge, Self.huge, flags: [.mayMove, .dontUnmap]) }
      let target: UInt64 = 0x7ffe_0000_0000
      #expect(try r.cpu.mremap(q, 2 * Self.huge, 2 * Self.huge, flags: [.mayMove, .fixed], newAddress: target) == target)
      #expect(try r.cpu.mremap(target, 2 * Self.huge, Self.huge, flags: []) == target)
      // 4096 rounds up to the huge page: nothing changes.
      #expect(try r.cpu.mremap(target, Self.huge, page, flags: []) == target)
      #expect(r.mm.mapsLines() == [Self.hugeLine(target, target + Self.huge, "rw-s", inode: iq)])
    }
  }

  // MARK: Huge pages reserved

  @Test func mappingsReserveTheirPagesAndFaultsTakeThem() throws {
    try withRig(memoryBytes: 32 << 20, profile: Self.pool(4)) { r in
      let pool = r.machine.hugetlb
      let p = try r.cpu.mmap(0, 2 * Self.huge, prot: rw, flags: Self.privateHuge)
      #expect(p % Self.huge == 0)
      #expect(pool.status(.size2M) == HugeTLBPool.Status(total: 4, free: 4, reserved: 2, surplus: 0))
      // Three more do not fit beside the two reserved.
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mmap(0, 3 * Self.huge, prot: rw, flags: Self.sharedHuge) }
      try r.cpu.storeByte(p + 5, 42)
      #expect(try r.cpu.loadByte(p + 5) == 42)
      _ = try r.cpu.loadByte(p + Self.huge - 1)
      #expect(pool.status(.size2M) == HugeTLBPool.Status(total: 4, free: 3, reserved: 1, surplus: 0))
      // mincore: the whole huge page is resident once one byte of it was touched.
      let vec = try r.cpu.mincore(p, 2 * Self.huge)
      #expect(vec.prefix(512).allSatisfy { $0 == 1 } && vec.suffix(512).allSatisfy { $0 == 0 })
      // smaps counts hugetlb pages outside Rss.
      #expect(r.mm.smaps().contains("Rss:                   0 kB"))
      #expect(
        pool.meminfo == """
          HugePages_Total:       4
          HugePages_Free:        3
          HugePages_Rsvd:        1
          HugePages_Surp:        0
          Hugepagesize:       2048 kB
          Hugetlb:            8192 kB

          """)
      // Unmapping the faulted huge page frees it; the rest gives back its reservation.
      try r.cpu.munmap(p, Self.huge)
      #expect(pool.status(.size2M) == HugeTLBPool.Status(total: 4, free: 4, reserved: 1, surplus: 0))
      try r.cpu.munmap(p + Self.huge, Self.huge)
      #expect(pool.status(.size2M) == HugeTLBPool.Status(total: 4, free: 4, reserved: 0, surplus: 0))
    }
  }

  @Test func aPrivateDiscardFreesThePageAndReadsZeroAfter() throws {
    try withRig(memoryBytes: 32 << 20, profile: Self.pool(2)) { r in
      let pool = r.machine.hugetlb
      let p = try r.cpu.mmap(0, Self.huge, prot: rw, flags: Self.privateHuge)
      try r.cpu.storeByte(p, 7)
      try r.cpu.madvise(p, Self.huge, advice: Advice.dontNeed)
      #expect(pool.status(.size2M) == HugeTLBPool.Status(total: 2, free: 2, reserved: 0, surplus: 0))
      // The reservation was consumed: the refault takes an unreserved free page.
      #expect(try r.cpu.loadByte(p) == 0)
      #expect(pool.status(.size2M) == HugeTLBPool.Status(total: 2, free: 1, reserved: 0, surplus: 0))
    }
  }

  @Test func sharedPagesStayWithTheMappingUntilItGoes() throws {
    try withRig(memoryBytes: 32 << 20, profile: Self.pool(2)) { r in
      let pool = r.machine.hugetlb
      let q = try r.cpu.mmap(0, 2 * Self.huge, prot: rw, flags: Self.sharedHuge)
      try r.cpu.storeByte(q + Self.huge, 9)
      try r.cpu.madvise(q + Self.huge, Self.huge, advice: Advice.dontNeed)
      #expect(try r.cpu.loadByte(q + Self.huge) == 9)
      #expect(pool.status(.size2M) == HugeTLBPool.Status(total: 2, free: 1, reserved: 1, surplus: 0))
      try r.cpu.munmap(q, 2 * Self.huge)
      #expect(pool.status(.size2M) == HugeTLBPool.Status(total: 2, free: 2, reserved: 0, surplus: 0))
    }
  }

  @Test func aMovedPrivateMappingKeepsItsPages() throws {
    try withRig(memoryBytes: 32 << 20, profile: Self.pool(2)) { r in
      let pool = r.machine.hugetlb
      let p = try r.cpu.mmap(0, Self.huge, prot: rw, flags: Self.privateHuge)
      try r.cpu.storeByte(p + 100, 5)
      let target: UInt64 = 0x7ffe_0000_0000
      #expect(try r.cpu.mremap(p, Self.huge, Self.huge, flags: [.mayMove, .fixed], newAddress: target) == target)
      #expect(try r.cpu.loadByte(target + 100) == 5)
      #expect(pool.status(.size2M) == HugeTLBPool.Status(total: 2, free: 1, reserved: 0, surplus: 0))
      try r.cpu.munmap(target, Self.huge)
      #expect(pool.status(.size2M) == HugeTLBPool.Status(total: 2, free: 2, reserved: 0, surplus: 0))
    }
  }

  @Test func overcommitGathersSurplusPagesAndReturnsThem() throws {
    try withRig(memoryBytes: 32 << 20, profile: Self.pool(1, overcommit: 2)) { r in
      let pool = r.machine.hugetlb
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mmap(0, 4 * Self.huge, prot: rw, flags: Self.privateHuge) }
      #expect(pool.status(.size2M) == HugeTLBPool.Status(total: 1, free: 1, reserved: 0, surplus: 0))
      let p = try r.cpu.mmap(0, 3 * Self.huge, prot: rw, flags: Self.privateHuge)
      #expect(pool.status(.size2M) == HugeTLBPool.Status(total: 3, free: 3, reserved: 3, surplus: 2))
      try r.cpu.storeByte(p, 1)
      #expect(pool.status(.size2M) == HugeTLBPool.Status(total: 3, free: 2, reserved: 2, surplus: 2))
      try r.cpu.munmap(p, 3 * Self.huge)
      #expect(pool.status(.size2M) == HugeTLBPool.Status(total: 1, free: 1, reserved: 0, surplus: 0))
      // MAP_NORESERVE faults take unreserved pages, then surplus ones, then SIGBUS.
      let n = try r.cpu.mmap(0, 4 * Self.huge, prot: rw, flags: Self.privateHuge | Self.noReserve)
      for i: UInt64 in 0..<3 { try r.cpu.storeByte(n + i * Self.huge, 1) }
      #expect(pool.status(.size2M) == HugeTLBPool.Status(total: 3, free: 0, reserved: 0, surplus: 2))
      #expect(throws: Signal.self) { try r.cpu.storeByte(n + 3 * Self.huge, 1) }
      try r.cpu.munmap(n, 4 * Self.huge)
      #expect(pool.status(.size2M) == HugeTLBPool.Status(total: 1, free: 1, reserved: 0, surplus: 0))
    }
  }
}

/// `exit_mmap` gives a process's huge pages and reservations back before it is gone (issue 13
/// review, F8): the pool's counts are right as soon as `destroy` returns, not after the last
/// reference to the hugetlb objects goes.
@Suite struct HugeTLBDestroyTests {
  @Test func destroyingAnAddressSpaceGivesItsHugePagesBack() throws {
    try withRig(memoryBytes: 32 << 20, profile: HugeTLBTests.pool(4)) { r in
      let pool = r.machine.hugetlb
      let other = try r.mm.fork()
      let c = try CPU(mm: other)
      let p = try c.mmap(0, 2 * HugeTLBTests.huge, prot: rw, flags: HugeTLBTests.privateHuge)
      let q = try c.mmap(0, HugeTLBTests.huge, prot: rw, flags: HugeTLBTests.sharedHuge)
      try c.storeByte(p, 1)
      try c.storeByte(q, 1)
      #expect(pool.status(.size2M) == HugeTLBPool.Status(total: 4, free: 2, reserved: 1, surplus: 0))
      other.destroy()
      #expect(pool.status(.size2M) == HugeTLBPool.Status(total: 4, free: 4, reserved: 0, surplus: 0))
    }
  }
}
