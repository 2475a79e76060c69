import Faultline
import FaultlineTestSupport
import Testing

/// Loads and stores through the MMU: values, signals and where a multi-page access stops.
@Suite struct LoadStoreTests {
  @Test func storeThenLoadAcrossAPageBoundaryRoundTrips() throws {
    try withRig { r in
      let a = try r.cpu.mmap(0, 3 * page, prot: rw, flags: anonPrivate)
      let bytes = (0..<6000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
      try r.cpu.storeBytes(a + 100, bytes)
      #expect(try r.cpu.loadBytes(a + 100, count: bytes.count) == bytes)
      // Untouched bytes read as zero.
      #expect(try r.cpu.loadBytes(a, count: 100) == [UInt8](repeating: 0, count: 100))
      #expect(r.machine.vmstat[.pgallocNormal] == 2)
    }
  }

  @Test func loadOfUnmappedAddressIsSegvMapErr() throws {
    try withRig { r in
      #expect(throws: Signal.sigsegv(.mapErr, address: 0x1234_5000)) { try r.cpu.loadByte(0x1234_5000) }
      #expect(r.machine.vmstat[.segvMaperr] == 1)
    }
  }

  @Test func storeToReadOnlyMappingIsSegvAccErrAndLoadWorks() throws {
    try withRig { r in
      let a = try r.cpu.mmap(0, page, prot: Prot.read, flags: anonPrivate)
      #expect(try r.cpu.loadByte(a) == 0)
      #expect(throws: Signal.sigsegv(.accErr, address: a + 9)) { try r.cpu.storeByte(a + 9, 1) }
    }
  }

  @Test func protNoneMappingRefusesLoadsAndStores() throws {
    try withRig { r in
      let a = try r.cpu.mmap(0, page, prot: Prot.none, flags: anonPrivate)
      #expect(throws: Signal.sigsegv(.accErr, address: a)) { try r.cpu.loadByte(a) }
      #expect(throws: Signal.sigsegv(.accErr, address: a)) { try r.cpu.storeByte(a, 1) }
    }
  }

  @Test func writeOnlyAndExecOnlyMappingsAreReadableOnX86() throws {
    try withRig { r in
      let w = try r.cpu.mmap(0, page, prot: Prot.write, flags: anonPrivate)
      try r.cpu.storeByte(w, 5)
      #expect(try r.cpu.loadByte(w) == 5)
      let x = try r.cpu.mmap(0, page, prot: Prot.exec, flags: anonPrivate)
      #expect(try r.cpu.loadByte(x) == 0)
      #expect(throws: Signal.sigsegv(.accErr, address: x)) { try r.cpu.storeByte(x, 1) }
    }
  }

  @Test func multiPageStoreStopsAtTheFirstBadPageAndKeepsEarlierBytes() throws {
    try withRig { r in
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      try r.cpu.mprotect(a + page, page, prot: Prot.read)
      let bytes = [UInt8](repeating: 0xAB, count: Int(page) + 10)
      #expect(throws: Signal.sigsegv(.accErr, address: a + page)) { try r.cpu.storeBytes(a + 10, bytes) }
      #expect(try r.cpu.loadByte(a + page - 1) == 0xAB)
      #expect(try r.cpu.loadByte(a + page) == 0)
    }
  }

  @Test func readFaultMapsZeroPageThenWriteFaultCopiesIt() throws {
    try withRig { r in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      #expect(try r.cpu.loadByte(a) == 0)
      #expect(r.mm.pageTable.pte(at: a).pfn == PFN.zero)
      #expect(r.machine.vmstat[.zeroPageMap] == 1)
      try r.cpu.storeByte(a, 3)
      let e = r.mm.pageTable.pte(at: a)
      #expect(e.pfn != PFN.zero && e.isWritable && e.isDirty)
      #expect(r.machine.vmstat[.pgcow] == 1)
      #expect(try r.cpu.loadByte(a) == 3)
      // The zero frame itself stays zero.
      #expect(r.machine.memory.address(of: .zero).load(as: UInt8.self) == 0)
    }
  }

  @Test func mprotectReadOnlyThenWritableReusesTheExclusivePage() throws {
    try withRig { r in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      try r.cpu.storeByte(a, 1)
      let frame = r.mm.pageTable.pte(at: a).pfn
      try r.cpu.mprotect(a, page, prot: Prot.read)
      try r.cpu.mprotect(a, page, prot: rw)
      try r.cpu.storeByte(a, 2)
      #expect(r.mm.pageTable.pte(at: a).pfn == frame)
      #expect(r.machine.vmstat[.pgreuse] == 1)
      #expect(try r.cpu.loadByte(a) == 2)
    }
  }

  @Test func nonCanonicalAddressesNeverAliasMappedMemory() throws {
    try withRig { r in
      let a = try r.cpu.mmap(0x1000_0000, page, prot: rw, flags: anonPrivate | MapFlags.fixed)
      try r.cpu.storeByte(a, 9)
      // Bits 48..63 set: the same page-table indices, but not a user address.
      let alias = a | (0xFFFF << 48)
      #expect(throws: Signal.sigsegv(.mapErr, address: alias)) { try r.cpu.loadByte(alias) }
      #expect(throws: Signal.sigsegv(.mapErr, address: a | (1 << 47))) { try r.cpu.loadByte(a | (1 << 47)) }
    }
  }

  @Test func sharedAnonymousMappingIsSharedBetweenSplitPieces() throws {
    try withRig { r in
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonShared)
      try r.cpu.storeByte(a + page, 7)
      try r.cpu.mprotect(a, page, prot: Prot.read)
      #expect(try r.cpu.loadByte(a + page) == 7)
      // DONTNEED drops the PTEs; the shmem page keeps the data.
      try r.cpu.madvise(a, 2 * page, advice: Advice.dontNeed)
      #expect(r.mm.pageTable.pte(at: a + page).isNone)
      #expect(try r.cpu.loadByte(a + page) == 7)
    }
  }

  @Test func fillWritesEveryByteOfTheRange() throws {
    try withRig { r in
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      try r.cpu.fill(a + 1, value: 0x5A, count: Int(page))
      #expect(try r.cpu.loadByte(a) == 0)
      #expect(try r.cpu.loadBytes(a + 1, count: Int(page)) == [UInt8](repeating: 0x5A, count: Int(page)))
      #expect(try r.cpu.loadByte(a + page + 1) == 0)
    }
  }

  @Test func populateMapsEveryPageUpFront() throws {
    try withRig { r in
      let a = try r.cpu.mmap(0, 8 * page, prot: rw, flags: anonPrivate | MapFlags.populate)
      for p in 0..<8 {
        let e = r.mm.pageTable.pte(at: a + UInt64(p) * page)
        #expect(e.isPresent && e.isWritable && e.pfn != PFN.zero)
      }
      let faults = r.machine.vmstat[.pgfault]
      try r.cpu.storeByte(a + 3 * page, 1)
      #expect(r.machine.vmstat[.pgfault] == faults)
    }
  }
}
