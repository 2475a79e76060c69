import Faultline
import FaultlineTestSupport
import Testing

// The 4-level page table as faults, munmap and mprotect leave it.

let gib: UInt64 = 1 << 30
let mib2: UInt64 = 2 << 20

extension Rig {
  /// Frames in use once deferred (RCU) frees have run and this thread's cache is drained.
  func settledFramesInUse() -> Int {
    machine.drainDeferredFrees()
    cpu.drainFrameCache()
    return machine.memory.framesInUse
  }
}

@Suite struct PageTableTests {
  @Test func freshAddressSpaceHasOnlyTheRootTable() throws {
    try withRig { r in
      #expect(r.mm.pageTable.tablePages == 1)
      #expect(r.settledFramesInUse() == 1)
    }
  }

  /// Touching a page builds PUD, PMD and PTE tables; a page in another 2 MiB region needs one
  /// more PTE table; another 1 GiB region a PMD and a PTE table; another 512 GiB region all three.
  /// Unmapping everything frees every table but the root.
  @Test func scatteredTouchesGrowTablesAndMunmapFreesThemBackToTheRoot() throws {
    try withRig { r in
      let a: UInt64 = 1 * gib  // PGD 0, PUD 1, PMD 0
      let b: UInt64 = a + mib2  // same PMD table, next PTE table
      let c: UInt64 = 2 * gib + 5 * mib2  // same PUD table, next PMD table
      let d: UInt64 = 512 * gib + 3 * gib  // PGD 1
      for x in [a, b, c, d] { _ = try r.cpu.mmap(x, 4 * page, prot: rw, flags: anonPrivate | MapFlags.fixed) }
      // mmap alone allocates no tables.
      #expect(r.mm.pageTable.tablePages == 1)

      try r.cpu.storeByte(a, 1)
      #expect(r.mm.pageTable.tablePages == 4)
      try r.cpu.storeByte(a + page, 1)  // same PTE table
      #expect(r.mm.pageTable.tablePages == 4)
      try r.cpu.storeByte(b, 1)
      #expect(r.mm.pageTable.tablePages == 5)
      try r.cpu.storeByte(c, 1)
      #expect(r.mm.pageTable.tablePages == 7)
      try r.cpu.storeByte(d, 1)
      #expect(r.mm.pageTable.tablePages == 10)
      // 10 tables and 5 data pages.
      #expect(r.settledFramesInUse() == 15)

      // The last mapping is alone under PGD 1: its PUD, PMD and PTE tables go.
      try r.cpu.munmap(d, 4 * page)
      #expect(r.mm.pageTable.tablePages == 7)
      // `b`'s PTE table spans only [a + 2 MiB, a + 4 MiB), between `a` and `c`: it goes; the PMD
      // table is still needed by `a`.
      try r.cpu.munmap(b, 4 * page)
      #expect(r.mm.pageTable.tablePages == 6)
      try r.cpu.munmap(a, 4 * page)
      try r.cpu.munmap(c, 4 * page)
      #expect(r.mm.pageTable.tablePages == 1)
      #expect(r.mm.mapCount == 0)
      #expect(r.settledFramesInUse() == 1)
    }
  }

  @Test func munmapOfOneOfTwoMappingsSharingAPTETableKeepsTheTable() throws {
    try withRig { r in
      let a: UInt64 = 1 * gib
      _ = try r.cpu.mmap(a, 2 * page, prot: rw, flags: anonPrivate | MapFlags.fixed)
      _ = try r.cpu.mmap(a + 8 * page, 2 * page, prot: Prot.read, flags: anonPrivate | MapFlags.fixed)
      try r.cpu.storeByte(a, 1)
      #expect(try r.cpu.loadByte(a + 8 * page) == 0)
      #expect(r.mm.pageTable.tablePages == 4)
      try r.cpu.munmap(a, 2 * page)
      #expect(r.mm.pageTable.tablePages == 4)
      #expect(r.mm.pageTable.pte(at: a).isNone)
      #expect(r.mm.pageTable.pte(at: a + 8 * page).isPresent)
      try r.cpu.munmap(a + 8 * page, 2 * page)
      #expect(r.mm.pageTable.tablePages == 1)
      #expect(r.settledFramesInUse() == 1)
    }
  }

  @Test func storeInstallsAPresentWritableDirtyAccessedPTE() throws {
    try withRig { r in
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      #expect(r.mm.pageTable.pte(at: a).isNone)
      try r.cpu.storeByte(a + 10, 0xAB)
      let e = r.mm.pageTable.pte(at: a)
      #expect(e.isPresent)
      #expect(e.isWritable)
      #expect(e.isDirty)
      #expect(e.raw & PTE.accessed != 0)
      #expect(e.raw & PTE.user != 0)
      #expect(e.raw & PTE.noExecute != 0)  // not PROT_EXEC
      #expect(!e.isSpecial)
      #expect(e.pfn != PFN.zero)
      #expect(r.machine.memory.meta(e.pfn).mapcount == 1)
      #expect(r.machine.memory.address(of: e.pfn).load(fromByteOffset: 10, as: UInt8.self) == 0xAB)
      // The other page stays untouched.
      #expect(r.mm.pageTable.pte(at: a + page).isNone)
    }
  }

  @Test func loadOfUntouchedPrivatePageMapsTheZeroFrameReadOnly() throws {
    try withRig { r in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      #expect(try r.cpu.loadByte(a + 100) == 0)
      let e = r.mm.pageTable.pte(at: a)
      #expect(e.isPresent)
      #expect(e.pfn == PFN.zero)
      #expect(e.isSpecial)
      #expect(!e.isWritable)
      #expect(!e.isDirty)
      #expect(e.raw & PTE.accessed != 0)
      #expect(r.settledFramesInUse() == 4)  // tables only

      // A store breaks COW from the zero frame into a fresh private frame.
      try r.cpu.storeByte(a, 3)
      let w = r.mm.pageTable.pte(at: a)
      #expect(w.isPresent && w.isWritable && w.isDirty)
      #expect(!w.isSpecial)
      #expect(w.pfn != PFN.zero)
      #expect(try r.cpu.loadByte(a) == 3)
      #expect(try r.cpu.loadByte(a + 100) == 0)
      #expect(r.settledFramesInUse() == 5)
    }
  }

  @Test func mprotectReadOnlyLeavesNoWritablePTEInRange() throws {
    try withRig { r in
      let n = 16
      let a = try r.cpu.mmap(0, UInt64(n) * page, prot: rw, flags: anonPrivate)
      for i in 0..<n { try r.cpu.storeByte(a + UInt64(i) * page, UInt8(i + 1)) }
      for i in 0..<n { #expect(r.mm.pageTable.pte(at: a + UInt64(i) * page).isWritable) }
      let frames = (0..<n).map { r.mm.pageTable.pte(at: a + UInt64($0) * page).pfn }

      try r.cpu.mprotect(a + 4 * page, 8 * page, prot: Prot.read)
      for i in 0..<n {
        let e = r.mm.pageTable.pte(at: a + UInt64(i) * page)
        let inRange = i >= 4 && i < 12
        #expect(e.isPresent)
        #expect(e.isWritable == !inRange, "page \(i): \(e)")
        #expect(e.pfn == frames[i])
      }
      #expect(throws: Signal.sigsegv(.accErr, address: a + 4 * page)) { try r.cpu.storeByte(a + 4 * page, 0) }
      #expect(try r.cpu.loadByte(a + 4 * page) == 5)

      // Whole range read-only.
      try r.cpu.mprotect(a, UInt64(n) * page, prot: Prot.read)
      for i in 0..<n { #expect(!r.mm.pageTable.pte(at: a + UInt64(i) * page).isWritable) }
    }
  }

  @Test func protNoneKeepsFramesAndRestoringReadWriteGivesTheSameData() throws {
    try withRig { r in
      let n = 8
      let a = try r.cpu.mmap(0, UInt64(n) * page, prot: rw, flags: anonPrivate)
      for i in 0..<n { try r.cpu.storeBytes(a + UInt64(i) * page, [UInt8(i), 0xEE, UInt8(0xF0 + i)]) }
      let frames = (0..<n).map { r.mm.pageTable.pte(at: a + UInt64($0) * page).pfn }
      let inUse = r.settledFramesInUse()

      try r.cpu.mprotect(a, UInt64(n) * page, prot: Prot.none)
      for i in 0..<n {
        let e = r.mm.pageTable.pte(at: a + UInt64(i) * page)
        #expect(!e.isPresent, "page \(i): \(e)")
        #expect(e.isProtNone)
        #expect(!e.isWritable)
        #expect(e.pfn == frames[i])
      }
      #expect(throws: Signal.sigsegv(.accErr, address: a)) { try r.cpu.loadByte(a) }
      #expect(throws: Signal.sigsegv(.accErr, address: a + page)) { try r.cpu.storeByte(a + page, 1) }
      // No frame was freed.
      #expect(r.settledFramesInUse() == inUse)

      try r.cpu.mprotect(a, UInt64(n) * page, prot: rw)
      for i in 0..<n {
        #expect(try r.cpu.loadBytes(a + UInt64(i) * page, count: 3) == [UInt8(i), 0xEE, UInt8(0xF0 + i)])
        let e = r.mm.pageTable.pte(at: a + UInt64(i) * page)
        #expect(e.isPresent && !e.isProtNone)
        #expect(e.pfn == frames[i])
      }
      // The frames are exclusive: writing reuses them in place.
      try r.cpu.storeByte(a, 0x77)
      let w = r.mm.pageTable.pte(at: a)
      #expect(w.isWritable)
      #expect(w.pfn == frames[0])
      #expect(try r.cpu.loadByte(a) == 0x77)
      #expect(r.settledFramesInUse() == inUse)
    }
  }

  @Test func munmapClearsEveryPTEAndFreesTheFrames() throws {
    try withRig { r in
      let n = 32
      let a = try r.cpu.mmap(0, UInt64(n) * page, prot: rw, flags: anonPrivate)
      for i in 0..<n { try r.cpu.storeByte(a + UInt64(i) * page, 1) }
      #expect(r.settledFramesInUse() == 4 + n)
      try r.cpu.munmap(a + 8 * page, 8 * page)
      for i in 8..<16 { #expect(r.mm.pageTable.pte(at: a + UInt64(i) * page).isNone) }
      for i in 0..<8 { #expect(r.mm.pageTable.pte(at: a + UInt64(i) * page).isPresent) }
      #expect(r.settledFramesInUse() == 4 + n - 8)
    }
  }

  @Test func madviseDontNeedZapsPTEsAndReadsZeroAgain() throws {
    try withRig { r in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      for i in 0..<4 { try r.cpu.storeByte(a + UInt64(i) * page, 9) }
      try r.cpu.madvise(a, 2 * page, advice: Advice.dontNeed)
      #expect(r.mm.pageTable.pte(at: a).isNone)
      #expect(r.mm.pageTable.pte(at: a + page).isNone)
      #expect(r.mm.pageTable.pte(at: a + 2 * page).isPresent)
      #expect(try r.cpu.loadByte(a) == 0)
      #expect(r.mm.pageTable.pte(at: a).pfn == PFN.zero)
      #expect(try r.cpu.loadByte(a + 2 * page) == 9)
      #expect(r.settledFramesInUse() == 4 + 2)
    }
  }
}
