import Faultline
import FaultlineTestSupport
import Synchronization
import Testing

/// Bugs a review of the mremap/fork/madvise code found, each reproduced first.
@Suite struct ReviewRegressionTests {
  /// A fault that got its shmem page before MADV_REMOVE punched it must not map that page after
  /// the punch (shmem_fault holds the folio lock through finish_fault): the writer and a forked
  /// child then see the same page.
  @Test func shmemFaultRacingAHolePunchMapsNoOrphan() throws {
    try withRig(design: .mmapLock) { r throws in
      let s = try r.cpu.mmap(0, page, prot: rw, flags: anonShared)
      let child = try r.mm.fork()
      let cc = try CPU(mm: child)
      let mm = r.mm!
      let fired = Atomic<Bool>(false)
      mm.faultHook = { point, _ in
        if point == .pagePrepared && !fired.exchange(true, ordering: .relaxed) {
          try? CPU(mm: mm).madvise(s, page, advice: Advice.remove)
        }
      }
      try r.cpu.storeByte(s, 7)
      mm.faultHook = nil
      let didFire = fired.load(ordering: .relaxed)
      #expect(didFire)
      let parentSees = try r.cpu.loadByte(s)
      let childSees = try cc.loadByte(s)
      #expect(parentSees == 7 && childSees == 7)
      child.destroy()
      r.machine.drainDeferredFrees()
    }
  }

  /// mremap growing in place in a fork child: `vma_merge_extend` has no `copied_from`, so the
  /// grown VMA merges with an adjacent VMA without an anon_vma.
  @Test func growInPlaceInAForkChildMergesWithTheNextVMA() throws {
    try withRig(design: .mmapLock) { r throws in
      let a = try r.cpu.mmap(0, 8 * page, prot: rw, flags: anonPrivate)
      try r.cpu.munmap(a + 2 * page, 6 * page)
      try r.cpu.storeByte(a, 1)
      let child = try r.mm.fork()
      let cc = try CPU(mm: child)
      _ = try cc.mmap(a + 3 * page, 2 * page, prot: rw, flags: anonPrivate | MapFlags.fixed)
      let before = child.mapCount
      _ = try cc.mremap(a, 2 * page, 3 * page, flags: 0)
      #expect(child.mapCount == before - 1)
      child.destroy()
      r.machine.drainDeferredFrees()
    }
  }

  /// `new_address` is looked at only with MREMAP_FIXED or MREMAP_DONTUNMAP (host: ignored).
  @Test func mremapIgnoresNewAddressWithoutFixed() throws {
    try withRig { r in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      #expect(throws: Never.self) {
        try r.cpu.mremap(a, page, 2 * page, flags: MremapFlags.mayMove, newAddress: 0xFFFF_FFFF_FFFF_0000)
      }
    }
  }
}
