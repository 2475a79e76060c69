import Faultline
import FaultlineTestSupport
import Testing

// MADV_GUARD_INSTALL / MADV_GUARD_REMOVE (issue 13, rule 9): guard markers in PTEs.
//
// Ground truth: mm/madvise.c (madvise_guard_install, madvise_guard_remove, is_valid_guard_vma),
// mm/memory.c (handle_pte_marker, zap_nonpresent_ptes), and the behaviours the kernel's selftest
// tools/testing/selftests/mm/guard-regions.c lists. The rows were run on this machine's 6.18
// kernel by Tests/Probes/guard_regions.c and guard_regions2.c (outputs beside them); comments
// quote their lines.

@Suite struct GuardRegionTests {
  private func expectSegv(_ r: Rig, _ addr: UInt64, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(throws: Signal.sigsegv(.mapErr, address: addr), sourceLocation: sourceLocation) { try r.cpu.loadByte(addr) }
    #expect(throws: Signal.sigsegv(.mapErr, address: addr), sourceLocation: sourceLocation) {
      try r.cpu.storeByte(addr, 1)
    }
  }

  /// "rd p0 sig=11 wr=11 rd p1=0 val=6", "mincore: 0 1 ...": the guarded page faults with
  /// SIGSEGV (SEGV_MAPERR, as the probe `si.c` showed), its page was dropped, the next page
  /// keeps its byte; mincore says 0 for the guard.
  @Test func installZapsThePageAndEveryAccessIsSigsegv() throws {
    try withRig { r throws in
      let p = try r.cpu.mmap(0, 10 * page, prot: rw, flags: anonPrivate)
      try r.cpu.storeByte(p, 5)
      try r.cpu.storeByte(p + page, 6)
      try r.cpu.madvise(p, page, advice: .guardInstall)
      expectSegv(r, p)
      #expect(try r.cpu.loadByte(p + page) == 6)
      #expect(try r.cpu.mincore(p, 3 * page) == [0, 1, 0])
      // The maps line does not change: a guard is a PTE, not a VMA.
      #expect(r.mm.mapsLines().contains(anonLine(p, p + 10 * page, "rw-p")))
      try r.cpu.munmap(p, 10 * page)
    }
  }

  /// "after dontneed rd=11", "after free rd=11", "after mprotect rd=11", POPULATE_READ/WRITE
  /// = EFAULT, WILLNEED/COLD/PAGEOUT = 0; "after remove rd=0 val=0".
  @Test func guardsSurviveDontneedFreeAndMprotectUntilRemoved() throws {
    try withRig { r throws in
      let p = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      try r.cpu.storeByte(p, 5)
      try r.cpu.madvise(p, page, advice: .guardInstall)
      try r.cpu.madvise(p, page, advice: .dontNeed)
      expectSegv(r, p)
      try r.cpu.madvise(p, page, advice: .free)
      expectSegv(r, p)
      expectErrno(.badAddress) { () throws(Errno) in try r.cpu.madvise(p, 2 * page, advice: .populateRead) }
      expectErrno(.badAddress) { () throws(Errno) in try r.cpu.madvise(p, 2 * page, advice: .populateWrite) }
      try r.cpu.madvise(p, page, advice: .willNeed)
      try r.cpu.madvise(p, page, advice: .cold)
      try r.cpu.madvise(p, page, advice: .pageOut)
      try r.cpu.mprotect(p, page, prot: .read)
      // A store is refused by the VMA first (SEGV_ACCERR); a load reaches the marker.
      #expect(throws: Signal.sigsegv(.mapErr, address: p)) { try r.cpu.loadByte(p) }
      try r.cpu.mprotect(p, page, prot: rw)
      try r.cpu.madvise(p, page, advice: .guardRemove)
      #expect(try r.cpu.loadByte(p) == 0)
      try r.cpu.storeByte(p, 3)
      // Removing where there is no guard is 0 and leaves the page.
      try r.cpu.madvise(p, 2 * page, advice: .guardRemove)
      #expect(try r.cpu.loadByte(p) == 3)
    }
  }

  /// "child rd guard=11", "child shared guard rd=11", "child file guard rd=11": fork copies the
  /// markers; "child dontfork rd=11" (no VMA); "child wipeonfork rd=0".
  @Test func forkCopiesGuardsButNotIntoWipeOnForkMemory() throws {
    try withRig { r throws in
      let p = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      try r.cpu.madvise(p, page, advice: .guardInstall)
      let s = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonShared)
      try r.cpu.storeByte(s, 1)
      try r.cpu.madvise(s, page, advice: .guardInstall)
      let w = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      try r.cpu.madvise(w, 2 * page, advice: .wipeOnFork)
      try r.cpu.madvise(w, page, advice: .guardInstall)
      let child = try r.cpu.fork()
      defer { child.destroy() }
      let c = try CPU(mm: child)
      #expect(throws: Signal.sigsegv(.mapErr, address: p)) { try c.loadByte(p) }
      #expect(throws: Signal.sigsegv(.mapErr, address: s)) { try c.loadByte(s) }
      #expect(try c.loadByte(w) == 0)
      #expect(try c.loadByte(p + page) == 0)
    }
  }

  /// "mremap ... rd moved guard=11", "grow ... rd=11", "shared moved rd=11": the markers move
  /// with the entries; "remap rd=0": munmap drops them.
  @Test func mremapMovesGuardsAndMunmapDropsThem() throws {
    try withRig { r throws in
      let p = try r.cpu.mmap(0, 10 * page, prot: rw, flags: anonPrivate)
      try r.cpu.madvise(p + 2 * page, page, advice: .guardInstall)
      let target = p - 100 * page
      let q = try r.cpu.mremap(p, 10 * page, 10 * page, flags: [.mayMove, .fixed], newAddress: target)
      #expect(q == target)
      expectSegv(r, q + 2 * page)
      let q2 = try r.cpu.mremap(q, 10 * page, 20 * page, flags: .mayMove)
      expectSegv(r, q2 + 2 * page)
      try r.cpu.munmap(q2 + 2 * page, page)
      let m = try r.cpu.mmap(q2 + 2 * page, page, prot: rw, flags: anonPrivate | .fixed)
      #expect(try r.cpu.loadByte(m) == 0)
    }
  }

  /// "madvise(l,ps,GI) = EINVAL" on MAP_LOCKED memory, "madvise(l,ps,GR) = 0"; "mlock(g,4*ps) =
  /// ENOMEM" over a guard (the populate fails), MLOCK_ONFAULT 0; shared anonymous and file
  /// mappings (6.15+) and PROT_NONE ones take guards; "madvise(0,ps,GI) = ENOMEM",
  /// "madvise(pn+1,ps,GI) = EINVAL"; over a hole ENOMEM after guarding the mapped pages.
  @Test func installErrnosAsTheHostGaveThem() throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.capIPCLock = true
    try withRig(config: config) { r throws in
      let l = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate | .locked)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(l, page, advice: .guardInstall) }
      try r.cpu.madvise(l, page, advice: .guardRemove)
      let g = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      try r.cpu.madvise(g + page, page, advice: .guardInstall)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mlock(g, 4 * page) }
      try r.cpu.madvise(g + page, page, advice: .guardRemove)
      try r.cpu.munlock(g, 4 * page)
      try r.cpu.madvise(g + page, page, advice: .guardInstall)
      try r.cpu.mlock(g, 4 * page, flags: .onFault)
      let pn = try r.cpu.mmap(0, 2 * page, prot: .none, flags: anonPrivate)
      try r.cpu.madvise(pn, page, advice: .guardInstall)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.madvise(0, page, advice: .guardInstall) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(pn + 1, page, advice: .guardInstall) }
      let h = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      try r.cpu.munmap(h + page, page)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.madvise(h, 4 * page, advice: .guardInstall) }
      expectSegv(r, h)
      expectSegv(r, h + 2 * page)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.madvise(h, 4 * page, advice: .guardRemove) }
      #expect(try r.cpu.loadByte(h) == 0)
    }
  }

  /// "madvise(r,ps,GI) = EPERM" on sealed read-only anonymous memory, "madvise(r,ps,GR) = 0";
  /// sealed writable memory takes the guard ("sealed rw rd=11").
  @Test func sealedReadOnlyAnonymousMemoryRefusesInstall() throws {
    try withRig { r throws in
      let ro = try r.cpu.mmap(0, 2 * page, prot: .read, flags: anonPrivate)
      try r.cpu.mseal(ro, 2 * page)
      expectErrno(.notPermitted) { () throws(Errno) in try r.cpu.madvise(ro, page, advice: .guardInstall) }
      try r.cpu.madvise(ro, page, advice: .guardRemove)
      let w = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      try r.cpu.mseal(w, 2 * page)
      try r.cpu.madvise(w, page, advice: .guardInstall)
      expectSegv(r, w)
    }
  }

  /// A guard in a shared anonymous mapping hides the page in this mapping only: the shmem page
  /// stays, and removing the guard maps it again.
  @Test func sharedMemoryKeepsItsPageBehindAGuard() throws {
    try withRig { r throws in
      let s = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonShared)
      try r.cpu.storeByte(s, 7)
      try r.cpu.madvise(s, page, advice: .guardInstall)
      expectSegv(r, s)
      try r.cpu.madvise(s, page, advice: .guardRemove)
      #expect(try r.cpu.loadByte(s) == 7)
    }
  }
}
