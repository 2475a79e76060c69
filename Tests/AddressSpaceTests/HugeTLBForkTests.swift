import Faultline
import FaultlineTestSupport
import Testing

/// A `MAP_PRIVATE | MAP_HUGETLB` mapping across `fork` is copy-on-write, a huge page at a time,
/// each copy taken from the pool (issue 13 review, F2). Every expectation is what this
/// machine's 6.18 kernel printed for Tests/Probes/hugetlb_private_fork.c (`nr_hugepages` 3)
/// and hugetlb_private_fork2.c (4); comments quote their lines. Each test pins its pool.
@Suite struct HugeTLBForkTests {
  static let huge: UInt64 = 2 << 20
  static let privateHuge = anonPrivate | MapFlags.hugeTLB

  static func pool(_ pages: Int) -> MachineProfile {
    var p = MachineProfile.reference
    p.nrHugepages = pages
    return p
  }

  static func status(free: Int, reserved: Int, total: Int) -> HugeTLBPool.Status {
    HugeTLBPool.Status(total: total, free: free, reserved: reserved, surplus: 0)
  }

  /// hugetlb_private_fork2.c: "child copied: free=2", "child reads 6", "parent reads 5",
  /// "parent wrote while child holds its copy: free=2" (no copy: the page is its own now),
  /// "child reads after parent's write 6", "child DONTNEED: free=3", "child reads after
  /// DONTNEED 0", "child exited: free=3", "parent reads 7", "unmapped: free=4".
  @Test func aWriteOnEitherSideCopiesTheHugePage() throws {
    try withRig(memoryBytes: 32 << 20, profile: Self.pool(4)) { r in
      let pool = r.machine.hugetlb
      let p = try r.cpu.mmap(0, Self.huge, prot: rw, flags: Self.privateHuge)
      try r.cpu.storeByte(p + 100, 5)
      #expect(pool.status(.size2M) == Self.status(free: 3, reserved: 0, total: 4))
      let child = try r.mm.fork()
      let c = try CPU(mm: child)
      try c.storeByte(p + 100, 6)
      #expect(pool.status(.size2M) == Self.status(free: 2, reserved: 0, total: 4))
      #expect(try c.loadByte(p + 100) == 6)
      #expect(try r.cpu.loadByte(p + 100) == 5)
      try r.cpu.storeByte(p + 100, 7)
      #expect(pool.status(.size2M) == Self.status(free: 2, reserved: 0, total: 4))
      #expect(try c.loadByte(p + 100) == 6)
      try c.madvise(p, Self.huge, advice: Advice.dontNeed)
      #expect(pool.status(.size2M) == Self.status(free: 3, reserved: 0, total: 4))
      #expect(try c.loadByte(p + 100) == 0)
      #expect(pool.status(.size2M) == Self.status(free: 2, reserved: 0, total: 4))
      child.destroy()
      #expect(pool.status(.size2M) == Self.status(free: 3, reserved: 0, total: 4))
      #expect(try r.cpu.loadByte(p + 100) == 7)
      try r.cpu.munmap(p, Self.huge)
      #expect(pool.status(.size2M) == Self.status(free: 4, reserved: 0, total: 4))
    }
  }

  /// hugetlb_private_fork.c, a pool of 3 and a mapping of 2 huge pages: the child shares the
  /// parent's page, takes an unreserved page for one the parent never touched, and cannot copy
  /// once the only free page is the parent's reservation.
  @Test func aChildThatCannotCopyGetsSIGBUS() throws {
    try withRig(memoryBytes: 32 << 20, profile: Self.pool(3)) { r in
      let pool = r.machine.hugetlb
      let p = try r.cpu.mmap(0, 2 * Self.huge, prot: rw, flags: Self.privateHuge)
      #expect(pool.status(.size2M) == Self.status(free: 3, reserved: 2, total: 3))  // "mapped 2"
      try r.cpu.storeByte(p + 100, 5)
      #expect(pool.status(.size2M) == Self.status(free: 2, reserved: 1, total: 3))
      let child = try r.mm.fork()
      let c = try CPU(mm: child)
      #expect(try c.loadByte(p + 100) == 5)  // "child reads 5", pool unchanged
      #expect(pool.status(.size2M) == Self.status(free: 2, reserved: 1, total: 3))
      var vec = try c.mincore(p, 2 * Self.huge)
      #expect(vec[0] == 1 && vec[512] == 0)  // "child mincore page0=1 page1=0"
      try c.storeByte(p + Self.huge, 1)  // "child store page1 (unfaulted, parent's reservation): 0"
      #expect(pool.status(.size2M) == Self.status(free: 1, reserved: 1, total: 3))
      #expect(throws: Signal.sigbus(address: p + 100)) { try c.storeByte(p + 100, 6) }  // "child store page0: -1"
      #expect(pool.status(.size2M) == Self.status(free: 1, reserved: 1, total: 3))
      #expect(try c.loadByte(p + 100) == 5)
      try c.madvise(p, Self.huge, advice: Advice.dontNeed)
      #expect(pool.status(.size2M) == Self.status(free: 1, reserved: 1, total: 3))  // the parent holds it
      vec = try c.mincore(p, 2 * Self.huge)
      #expect(vec[0] == 0)  // "child mincore after DONTNEED page0=0"
      #expect(throws: Signal.sigbus(address: p + 100)) { _ = try c.loadByte(p + 100) }  // "child reads after DONTNEED -1"
      child.destroy()
      #expect(pool.status(.size2M) == Self.status(free: 2, reserved: 1, total: 3))  // "child exited"
      #expect(try r.cpu.loadByte(p + 100) == 5)
      vec = try r.cpu.mincore(p, 2 * Self.huge)
      #expect(vec[0] == 1 && vec[512] == 0)  // "parent mincore page0=1 page1=0"
      try r.cpu.munmap(p, 2 * Self.huge)
      #expect(pool.status(.size2M) == Self.status(free: 3, reserved: 0, total: 3))
    }
  }

  /// hugetlb_private_fork.c, on: "parent store page0: 0", "parent COW page 0: free=1", "child2
  /// reads 5", "child2 exited: free=2", "parent reuse: free=2"; with the pool then empty ("q:
  /// free=1 rsvd=1"), "child3 store page0 with empty pool: -1", while the owner's write takes
  /// the page back from the child ("owner COW empty pool: free=1 rsvd=1", "child4 reads -1"),
  /// and "unmapped: free=2 rsvd=0".
  @Test func theOwnerCopiesOrTakesThePageBackFromItsChildren() throws {
    try withRig(memoryBytes: 32 << 20, profile: Self.pool(3)) { r in
      let pool = r.machine.hugetlb
      let p = try r.cpu.mmap(0, 2 * Self.huge, prot: rw, flags: Self.privateHuge)
      try r.cpu.storeByte(p + 100, 5)
      let child2 = try r.mm.fork()
      let c2 = try CPU(mm: child2)
      try r.cpu.storeByte(p + 100, 7)
      #expect(pool.status(.size2M) == Self.status(free: 1, reserved: 1, total: 3))
      #expect(try c2.loadByte(p + 100) == 5)
      child2.destroy()
      #expect(pool.status(.size2M) == Self.status(free: 2, reserved: 1, total: 3))
      try r.cpu.storeByte(p + 100, 8)
      #expect(pool.status(.size2M) == Self.status(free: 2, reserved: 1, total: 3))
      let q = try r.cpu.mmap(0, Self.huge, prot: rw, flags: Self.privateHuge | MapFlags.noReserve)
      try r.cpu.storeByte(q, 1)
      #expect(pool.status(.size2M) == Self.status(free: 1, reserved: 1, total: 3))
      let child3 = try r.mm.fork()
      let c3 = try CPU(mm: child3)
      #expect(throws: Signal.sigbus(address: p + 100)) { try c3.storeByte(p + 100, 9) }
      child3.destroy()
      #expect(pool.status(.size2M) == Self.status(free: 1, reserved: 1, total: 3))
      let child4 = try r.mm.fork()
      let c4 = try CPU(mm: child4)
      try r.cpu.storeByte(p + 100, 10)
      #expect(pool.status(.size2M) == Self.status(free: 1, reserved: 1, total: 3))
      #expect(throws: Signal.sigbus(address: p + 100)) { _ = try c4.loadByte(p + 100) }
      #expect(try r.cpu.loadByte(p + 100) == 10)
      child4.destroy()
      try r.cpu.munmap(p, 2 * Self.huge)
      #expect(pool.status(.size2M) == Self.status(free: 2, reserved: 0, total: 3))
      try r.cpu.munmap(q, Self.huge)
      #expect(pool.status(.size2M) == Self.status(free: 3, reserved: 0, total: 3))
    }
  }
}

/// `mincore` of a hugetlb mapping answers from this mapping's entry for the huge page
/// (`mincore_hugetlb`), not from whether the file holds the page (issue 13 review, F6).
/// Tests/Probes/hugetlb_mincore.c (`nr_hugepages` 1): "touched: 1 1", "child before touching:
/// 0", "child after: 1", "after DONTNEED: 0", "after refault: 1".
@Suite struct HugeTLBMincoreTests {
  @Test func mincoreFollowsTheMappingsEntryNotTheFile() throws {
    try withRig(memoryBytes: 32 << 20, profile: HugeTLBForkTests.pool(1)) { r in
      let huge = HugeTLBForkTests.huge
      let p = try r.cpu.mmap(0, huge, prot: rw, flags: anonShared | MapFlags.hugeTLB)
      try r.cpu.storeByte(p + 100, 5)
      var vec = try r.cpu.mincore(p, huge)
      #expect(vec[0] == 1 && vec[511] == 1)
      let child = try r.mm.fork()
      let c = try CPU(mm: child)
      #expect(try c.mincore(p, huge)[0] == 0)
      #expect(try c.loadByte(p + 100) == 5)
      #expect(try c.mincore(p, huge)[0] == 1)
      child.destroy()
      try r.cpu.madvise(p, huge, advice: Advice.dontNeed)
      vec = try r.cpu.mincore(p, huge)
      #expect(vec[0] == 0 && vec[511] == 0)
      #expect(try r.cpu.loadByte(p + 100) == 5)
      #expect(try r.cpu.mincore(p, huge)[0] == 1)
    }
  }
}
