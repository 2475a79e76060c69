import Faultline
import FaultlineTestSupport
import Testing

// mseal(2) (issue 13, rule 9): VM_SEALED on every VMA of a hole-free range, and the calls that
// refuse a sealed VMA with EPERM.
//
// Ground truth: mm/mseal.c (do_mseal, range_contains_unmapped, mseal_apply), and the per-VMA
// checks of 6.18: vms_gather_munmap_vmas (munmap, MAP_FIXED, MREMAP_FIXED), check_prep_vma
// (mremap), mprotect_fixup, can_madvise_modify (mm/madvise.c). The rows were run on this
// machine's 6.18 kernel by Tests/Probes/mseal_mlockall.c (as an unprivileged user); its output
// is Tests/Probes/mseal_mlockall.txt, whose row names the comments quote.

extension Rig {
  /// The `VmFlags:` line of the smaps entry that starts at `addr`.
  func vmFlagsLine(_ addr: UInt64) -> String? {
    let lines = mm.smaps().split(separator: "\n").map(String.init)
    guard let i = lines.firstIndex(where: { $0.hasPrefix(hex8(addr) + "-") }) else { return nil }
    return lines[(i + 1)...].first { $0.hasPrefix("VmFlags:") }
  }
}

@Suite struct MsealTests {
  // MARK: Arguments

  /// "mseal flags=1", "unaligned addr", "len 0", "len -1 (wraps)".
  @Test func msealChecksFlagsAlignmentAndLength() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mseal(a, page, flags: 1) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mseal(a + 1, page) }
      try r.cpu.mseal(a, 0)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mseal(a, UInt64.max) }
      // A range that wraps after aligning.
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mseal(a, 0 &- a) }
      #expect(r.vmFlagsLine(a) == "VmFlags: rd wr mr mw me ac ")
    }
  }

  /// "mseal over a hole", "past the end of the mapping": ENOMEM, and nothing is sealed.
  @Test func msealOfARangeWithAHoleIsENOMEMAndSealsNothing() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      try r.cpu.munmap(a + 2 * page, page)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mseal(a, 4 * page) }
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mseal(a, 3 * page) }
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mseal(a + 2 * page, page) }
      #expect(!r.mm.smaps().contains(" sl "))
      try r.cpu.munmap(a, 4 * page)
    }
  }

  // MARK: VMAs

  /// "mseal middle page (unaligned len)": the length is page-aligned up, the VMA split, and
  /// smaps shows `sl`; sealing again is 0.
  @Test func msealSplitsTheVMAAndSmapsShowsSl() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      try r.cpu.mseal(a + page, 1)
      #expect(
        r.mm.mapsLines() == [
          anonLine(a, a + page, "rw-p"), anonLine(a + page, a + 2 * page, "rw-p"), anonLine(a + 2 * page, a + 4 * page, "rw-p"),
        ])
      #expect(r.vmFlagsLine(a + page) == "VmFlags: rd wr mr mw me ac sl ")
      #expect(r.vmFlagsLine(a) == "VmFlags: rd wr mr mw me ac ")
      try r.cpu.mseal(a + page, page)
      // Sealed VMAs merge with sealed ones only.
      try r.cpu.mseal(a + 2 * page, page)
      #expect(r.mm.mapsLines() == [anonLine(a, a + page, "rw-p"), anonLine(a + page, a + 3 * page, "rw-p"), anonLine(a + 3 * page, a + 4 * page, "rw-p")])
    }
  }

  /// fork copies the seal (it is a VMA flag, not one fork clears).
  @Test func forkKeepsTheSeal() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      try r.cpu.mseal(a, 2 * page)
      let child = try r.cpu.fork()
      defer { child.destroy() }
      #expect(child.tree.findW(a)?.flags.contains(.sealed) == true)
      expectErrno(.notPermitted) { () throws(Errno) in try child.munmap(a, page) }
    }
  }

  // MARK: Refusals

  /// "munmap sealed", "munmap range ending in sealed", "munmap [unsealed, sealed, unsealed)":
  /// EPERM, and what precedes the sealed VMA stays mapped.
  @Test func munmapOfASealedVMAIsEPERM() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      try r.cpu.mseal(a + page, page)
      expectErrno(.notPermitted) { () throws(Errno) in try r.cpu.munmap(a + page, page) }
      expectErrno(.notPermitted) { () throws(Errno) in try r.cpu.munmap(a, 2 * page) }
      expectErrno(.notPermitted) { () throws(Errno) in try r.cpu.munmap(a, 4 * page) }
      #expect(
        r.mm.mapsLines() == [
          anonLine(a, a + page, "rw-p"), anonLine(a + page, a + 2 * page, "rw-p"), anonLine(a + 2 * page, a + 4 * page, "rw-p"),
        ])
      // brk's unmap and MAP_FIXED's refuse the same way.
      expectErrno(.notPermitted) { () throws(Errno) in
        try r.cpu.mmap(a + page, page, prot: .read, flags: anonPrivate | MapFlags.fixed)
      }
      expectErrno(.notPermitted) { () throws(Errno) in
        try r.cpu.mmap(a, 3 * page, prot: .read, flags: anonPrivate | MapFlags.fixed)
      }
      #expect(r.mm.mapsLines()[0] == anonLine(a, a + page, "rw-p"))
    }
  }

  /// "mprotect sealed", "same prot", "[unsealed, sealed)": EPERM, after the unsealed VMA
  /// before it changed (mprotect_fixup checks each VMA as it comes).
  @Test func mprotectOfASealedVMAIsEPERMAfterTheVMAsBeforeIt() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      try r.cpu.mseal(a + page, page)
      expectErrno(.notPermitted) { () throws(Errno) in try r.cpu.mprotect(a + page, page, prot: .read) }
      expectErrno(.notPermitted) { () throws(Errno) in try r.cpu.mprotect(a + page, page, prot: rw) }
      expectErrno(.notPermitted) { () throws(Errno) in try r.cpu.mprotect(a, 2 * page, prot: .read) }
      #expect(r.mm.mapsLines() == [anonLine(a, a + page, "r--p"), anonLine(a + page, a + 2 * page, "rw-p")])
    }
  }

  /// "mremap sealed shrink", "same size", "expand", "FIXED onto sealed".
  @Test func mremapOfOrOntoASealedVMAIsEPERM() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      try r.cpu.mseal(a + page, page)
      expectErrno(.notPermitted) { () throws(Errno) in try r.cpu.mremap(a + page, page, 0x800, flags: []) }
      expectErrno(.notPermitted) { () throws(Errno) in try r.cpu.mremap(a + page, page, page, flags: []) }
      expectErrno(.notPermitted) { () throws(Errno) in try r.cpu.mremap(a + page, page, 2 * page, flags: .mayMove) }
      expectErrno(.notPermitted) { () throws(Errno) in
        try r.cpu.mremap(a + 3 * page, page, page, flags: [.mayMove, .fixed], newAddress: a + page)
      }
      expectErrno(.notPermitted) { () throws(Errno) in
        try r.cpu.mremap(a + page, page, page, flags: [.mayMove, .fixed], newAddress: a + 0x100 * page)
      }
      #expect(r.mm.mapsLines().count == 3)
    }
  }

  /// "madvise DONTNEED sealed rw anon" is 0; on read-only anonymous memory every discarding
  /// advice is EPERM and the others are 0; shared anonymous memory may discard.
  @Test func madviseDiscardOfSealedReadOnlyAnonymousMemoryIsEPERM() throws {
    try withRig { r throws in
      let w = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      try r.cpu.mseal(w, page)
      try r.cpu.madvise(w, page, advice: .dontNeed)
      let c = try r.cpu.mmap(0, 2 * page, prot: .read, flags: anonPrivate)
      try r.cpu.mseal(c, 2 * page)
      for advice in [Advice.dontNeed, .free, .dontFork, .wipeOnFork, .remove, .dontNeedLocked] {
        expectErrno(.notPermitted) { () throws(Errno) in try r.cpu.madvise(c, page, advice: advice) }
      }
      try r.cpu.madvise(c, page, advice: .normal)
      try r.cpu.madvise(c, page, advice: .dontDump)
      let s = try r.cpu.mmap(0, page, prot: .read, flags: anonShared)
      try r.cpu.mseal(s, page)
      try r.cpu.madvise(s, page, advice: .dontNeed)
    }
  }
}
