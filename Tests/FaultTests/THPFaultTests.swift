@testable import Faultline
import FaultlineTestSupport
import Synchronization
import Testing

/// Faulting transparent huge pages in (`do_huge_pmd_anonymous_page`, the huge zero page,
/// `do_huge_zero_wp_pmd`, the fallback to 4 KiB pages), under every design. Each expectation
/// was first seen on the host's 6.18 kernel (THP `madvise`) with a C program that mapped at a
/// 2 MiB-aligned address with MAP_FIXED and read `/proc/self/smaps`, mincore and `/proc/vmstat`
/// deltas; the `always`/`never`/`use_zero_page=0` variants pin the profile. Every test ends
/// with frames and page tables back at their baseline after munmap (the huge zero page freed
/// with the rest).
/// ```
/// 0x200000000000        0x200000200000        0x200000400000
/// [ first 2 MiB extent ][ second 2 MiB extent ]   one VMA, MADV_HUGEPAGE
/// ```
@Suite struct THPFaultTests {
  let base = thpBase
  let huge = thpSize

  @Test(arguments: FaultDesign.allCases)
  func aWriteInAnAdvisedRangeMapsA2MiBPage(design: FaultDesign) throws {
    try withTHPRig(design) { r, baseline in
      try mapTHP(r)
      let d = try thpDelta(r) { try r.cpu.storeByte(base + 0x1234, 0x5A) }
      #expect(d == [.thpFaultAlloc: 1])
      #expect(isHugePMD(r.mm, base))
      #expect(try r.cpu.mincore(base, huge) == [UInt8](repeating: 1, count: 512))
      #expect(try r.cpu.mincore(base + huge, 4 * page) == [0, 0, 0, 0])
      #expect(smapsFigures(r.mm, base)! == (2048, 2048))
      // PGD, PUD and PMD: no PTE table under the huge PMD (4 KiB faults would use a fourth), and
      // the deposited table, the 512 frames of the page.
      #expect(r.mm.pageTable.tablePages == baseline.tables + 2)
      r.cpu.drainFrameCache()
      #expect(r.machine.memory.framesInUse == baseline.frames + 2 + 1 + 512)
      // The rest of the page is zero and every 4 KiB of it is mapped: no further fault.
      let faults = r.machine.vmstat[.pgfault]
      #expect(try r.cpu.loadByte(base + 0x1234) == 0x5A)
      #expect(try r.cpu.loadBytes(base + huge - 3, count: 3) == [0, 0, 0])
      try r.cpu.storeByte(base + huge - 1, 1)
      #expect(r.machine.vmstat[.pgfault] == faults)
      try r.cpu.munmap(base, 2 * huge)
    }
  }

  @Test(arguments: FaultDesign.allCases)
  func aReadMapsTheHugeZeroPageOncePerMachine(design: FaultDesign) throws {
    try withTHPRig(design) { r, baseline in
      try mapTHP(r, length: 3 * huge)
      var v: UInt8 = 1
      let d = try thpDelta(r) { v = try r.cpu.loadByte(base + 0x777) }
      #expect(v == 0)
      #expect(d == [.thpZeroPageAlloc: 1])
      #expect(isHugePMD(r.mm, base))
      #expect(try r.cpu.mincore(base, huge) == [UInt8](repeating: 1, count: 512))
      // The huge zero page is neither Rss nor AnonHugePages.
      #expect(smapsFigures(r.mm, base)! == (0, 0))
      // A second read maps the same page: not allocated again while mapped.
      #expect(try thpDelta(r) { _ = try r.cpu.loadByte(base + huge) } == [:])
      r.cpu.drainFrameCache()
      #expect(r.machine.memory.framesInUse == baseline.frames + 2 + 2 + 512)
      // Unmapping one of them keeps it; unmapping both frees it (and the next read allocates).
      try r.cpu.munmap(base, huge)
      r.machine.drainDeferredFrees()
      #expect(r.machine.memory.framesInUse == baseline.frames + 2 + 1 + 512)
      try r.cpu.munmap(base + huge, huge)
      r.machine.drainDeferredFrees()
      #expect(try thpDelta(r) { _ = try r.cpu.loadByte(base + 2 * huge + 5) } == [.thpZeroPageAlloc: 1])
      try r.cpu.munmap(base + 2 * huge, huge)
    }
  }

  @Test(arguments: FaultDesign.allCases)
  func aWriteAfterAReadReplacesTheHugeZeroPageWithAHugePage(design: FaultDesign) throws {
    try withTHPRig(design) { r, baseline in
      try mapTHP(r)
      _ = try r.cpu.loadByte(base + 5)
      let d = try thpDelta(r) { try r.cpu.storeByte(base + 7, 1) }
      #expect(d == [.thpFaultAlloc: 1])
      #expect(isHugePMD(r.mm, base))
      #expect(smapsFigures(r.mm, base)! == (2048, 2048))
      #expect(try r.cpu.loadBytes(base + 6, count: 3) == [0, 1, 0])
      // The huge zero page went once nothing mapped it: only the new page is left.
      r.cpu.drainFrameCache()
      r.machine.drainDeferredFrees()
      #expect(r.machine.memory.framesInUse == baseline.frames + 2 + 1 + 512)
      try r.cpu.munmap(base, 2 * huge)
    }
  }

  @Test(arguments: FaultDesign.allCases)
  func withoutTheHugeZeroPageAReadAllocatesAHugePage(design: FaultDesign) throws {
    try withTHPRig(design, profile: thpProfile(useZeroPage: false)) { r, _ in
      try mapTHP(r)
      var v: UInt8 = 1
      let d = try thpDelta(r) { v = try r.cpu.loadByte(base + 5) }
      #expect(v == 0)
      #expect(d == [.thpFaultAlloc: 1])
      #expect(smapsFigures(r.mm, base)! == (2048, 2048))
      try r.cpu.munmap(base, 2 * huge)
    }
  }

  /// `maybe_pmd_mkwrite`: a huge page a read fault maps in a read-only VMA (no huge zero page)
  /// is not writable, so a store is a SIGSEGV, as for a 4 KiB page.
  @Test(arguments: FaultDesign.allCases)
  func aHugePageMappedByAReadInAReadOnlyVMAIsNotWritable(design: FaultDesign) throws {
    try withTHPRig(design, profile: thpProfile(useZeroPage: false)) { r, _ in
      _ = try r.cpu.mmap(base, 2 * huge, prot: Prot.read, flags: anonPrivate | MapFlags.fixed)
      try r.cpu.madvise(base, 2 * huge, advice: Advice.hugePage)
      #expect(try thpDelta(r) { _ = try r.cpu.loadByte(base + 5) } == [.thpFaultAlloc: 1])
      #expect(throws: Signal.self) { try r.cpu.storeByte(base + 5, 1) }
      #expect(try r.cpu.loadByte(base + 5) == 0)
      try r.cpu.munmap(base, 2 * huge)
    }
  }

  /// No free 2 MiB block: `thp_fault_fallback`, and the fault maps 4 KiB, for a write and for
  /// a read (no huge zero page either).
  @Test(arguments: FaultDesign.allCases)
  func noFree2MiBBlockFallsBackTo4KiBPages(design: FaultDesign) throws {
    try withTHPRig(design, memoryBytes: 16 << 20) { r, baseline in
      try mapTHP(r)
      let memory = r.machine.memory
      // Some 4 KiB frames on the free stack, then every whole block taken.
      let small = try #require(memory.allocateZeroed(flags: []))
      memory.put(small)
      var held: [PFN] = []
      while let h = memory.allocateHuge(flags: .anon) { held.append(h) }
      #expect(try thpDelta(r) { try r.cpu.storeByte(base + 5, 1) } == [.thpFaultFallback: 1])
      #expect(!isHugePMD(r.mm, base))
      #expect(try r.cpu.mincore(base, 4 * page) == [1, 0, 0, 0])
      #expect(smapsFigures(r.mm, base)! == (4, 0))
      var v: UInt8 = 1
      #expect(try thpDelta(r) { v = try r.cpu.loadByte(base + huge) } == [.thpFaultFallback: 1])
      #expect(v == 0)
      #expect(try r.cpu.mincore(base + huge, 2 * page) == [1, 0])
      try r.cpu.munmap(base, 2 * huge)
      for h in held { memory.frames.putFolio(h) }
      _ = baseline
    }
  }

  /// A 2 MiB range that the VMA does not cover whole, or a VMA whose start is not aligned, gets
  /// 4 KiB pages (`thp_vma_suitable_order`); the aligned extents inside it still get huge ones.
  @Test(arguments: FaultDesign.allCases)
  func aRangeNotWhollyInsideTheVMAGets4KiBPages(design: FaultDesign) throws {
    try withTHPRig(design) { r, _ in
      // [base, base + 3 MiB): the second extent sticks out.
      try mapTHP(r, length: 3 * huge / 2)
      #expect(try thpDelta(r) { try r.cpu.storeByte(base + huge + page, 1) } == [:])
      #expect(try r.cpu.mincore(base + huge, 4 * page) == [0, 1, 0, 0])
      #expect(try thpDelta(r) { try r.cpu.storeByte(base, 1) } == [.thpFaultAlloc: 1])
      try r.cpu.munmap(base, 3 * huge / 2)
      // [base + 4 KiB, base + 4 MiB + 4 KiB): the first extent starts before the VMA.
      _ = try r.cpu.mmap(base + page, 2 * huge, prot: rw, flags: anonPrivate | MapFlags.fixed)
      try r.cpu.madvise(base + page, 2 * huge, advice: Advice.hugePage)
      #expect(try thpDelta(r) { try r.cpu.storeByte(base + 3 * page, 1) } == [:])
      #expect(try r.cpu.mincore(base + page, 8 * page) == [0, 0, 1, 0, 0, 0, 0, 0])
      try r.cpu.munmap(base + page, 2 * huge)
    }
  }

  /// Which VMAs may get a huge page: `madvise` needs `MADV_HUGEPAGE`, `always` does not,
  /// `never` refuses even with it, and `MADV_NOHUGEPAGE` refuses under `always`.
  @Test(arguments: FaultDesign.allCases)
  func theSettingAndTheAdviceDecideWhetherAFaultIsHuge(design: FaultDesign) throws {
    let cases: [(MachineProfile.THPEnabled, Advice?, Bool)] = [
      (.madvise, nil, false), (.madvise, Advice.hugePage, true), (.madvise, Advice.noHugePage, false),
      (.always, nil, true), (.always, Advice.noHugePage, false), (.never, Advice.hugePage, false),
    ]
    for (enabled, advice, isHuge) in cases {
      try withTHPRig(design, profile: thpProfile(enabled: enabled)) { r, baseline in
        try mapTHP(r, advise: false)
        if let advice { try r.cpu.madvise(base, 2 * huge, advice: advice) }
        let d = try thpDelta(r) { try r.cpu.storeByte(base + 5, 1) }
        #expect(d == (isHuge ? [.thpFaultAlloc: 1] : [:]), "\(enabled) \(String(describing: advice))")
        #expect(smapsFigures(r.mm, base)! == (isHuge ? (2048, 2048) : (4, 0)))
        #expect(r.mm.pageTable.tablePages == baseline.tables + (isHuge ? 2 : 3))
        try r.cpu.munmap(base, 2 * huge)
      }
    }
  }

  /// SPF v12 and the sequenced design abort where a huge page may go (`spf_thp_eligible`), and
  /// the locked fallback faults it in; per-VMA locks fault it under the VMA lock.
  @Test(arguments: FaultDesign.allCases)
  func theSpeculativeDesignsLeaveAHugeFaultToTheLockedPath(design: FaultDesign) throws {
    try withTHPRig(design) { r, _ in
      try mapTHP(r)
      try r.cpu.storeByte(base, 1)  // the anon_vma
      let eligible = VMStatItem(abort: .thpEligible)
      let before = (r.machine.vmstat[eligible], r.machine.vmstat[.vmaLockSuccess], r.machine.vmstat[.vmaLockAbort])
      let d = try thpDelta(r) { try r.cpu.storeByte(base + huge + 9, 1) }
      #expect(d == [.thpFaultAlloc: 1])
      #expect(isHugePMD(r.mm, base + huge))
      let aborts = r.machine.vmstat[eligible] - before.0
      switch design {
      case .speculative, .sequenced: #expect(aborts == 1)
      case .mmapLock, .perVMALock: #expect(aborts == 0)
      }
      if design == .perVMALock {
        #expect(r.machine.vmstat[.vmaLockSuccess] - before.1 == 1)
        #expect(r.machine.vmstat[.vmaLockAbort] == before.2)
      }
      #expect(eligible.name == "spf_thp_eligible")
      try r.cpu.munmap(base, 2 * huge)
    }
  }

  /// Two threads fault the same 2 MiB at once: the one that installs second finds the PMD
  /// taken under the PMD lock, frees what it prepared and counts `fault_raced`; one huge page
  /// (one `thp_fault_alloc`, or one huge zero page) is mapped, with both writes in it. The
  /// first fault is held after its page is prepared while the second runs whole.
  @Test(arguments: FaultDesign.allCases, [true, false])
  func twoThreadsFaultingOneRangeInstallOneHugePage(design: FaultDesign, write: Bool) throws {
    try withTHPRig(design) { r, _ in
      try mapTHP(r)
      try r.cpu.storeByte(base + huge, 1)  // the anon_vma, so per-VMA locks need no fallback
      let state = HookState()
      let mm = r.mm!
      r.mm.faultHook = { point, _ in
        guard point == .pagePrepared, state.fire() else { return }
        runThreads(1) { _ in
          guard let other = try? CPU(mm: mm) else {
            state.failures.add(1, ordering: .relaxed)
            return
          }
          if write {
            if (try? other.storeByte(thpBase + 0x10_000, 0xB0)) == nil { state.failures.add(1, ordering: .relaxed) }
          } else if (try? other.loadByte(thpBase + 0x10_000)) != 0 {
            state.failures.add(1, ordering: .relaxed)
          }
        }
      }
      let d = try thpDelta(r) {
        if write { try r.cpu.storeByte(base + 0x20_000, 0xA0) } else { _ = try r.cpu.loadByte(base + 0x20_000) }
      }
      r.mm.faultHook = nil
      #expect(state.acted.load(ordering: .relaxed) == 1 && state.failures.load(ordering: .relaxed) == 0)
      #expect(d == (write ? [.thpFaultAlloc: 1, .faultRaced: 1] : [.thpZeroPageAlloc: 1, .faultRaced: 1]))
      #expect(isHugePMD(r.mm, base))
      if write {
        #expect(try r.cpu.loadByte(base + 0x10_000) == 0xB0 && r.cpu.loadByte(base + 0x20_000) == 0xA0)
        #expect(smapsFigures(r.mm, base)! == (4096, 4096))
      }
      try r.cpu.munmap(base, 2 * huge)
    }
  }
  /// Two threads write to the huge zero page at once: the second to take the PMD lock finds a
  /// new huge page there, frees the one it prepared and counts `fault_raced`, not
  /// `thp_fault_alloc` (Linux counts a huge page once it is mapped, in `map_anon_folio_pmd`).
  @Test(arguments: FaultDesign.allCases)
  func twoThreadsWritingToTheHugeZeroPageMapOneHugePage(design: FaultDesign) throws {
    try withTHPRig(design) { r, _ in
      try mapTHP(r)
      _ = try r.cpu.loadByte(base)
      let state = HookState()
      let mm = r.mm!
      r.mm.faultHook = { point, _ in
        guard point == .pagePrepared, state.fire() else { return }
        runThreads(1) { _ in
          guard let other = try? CPU(mm: mm), (try? other.storeByte(thpBase + 0x10_000, 0xB0)) != nil else {
            state.failures.add(1, ordering: .relaxed)
            return
          }
        }
      }
      let d = try thpDelta(r) { try r.cpu.storeByte(base + 0x20_000, 0xA0) }
      r.mm.faultHook = nil
      #expect(state.acted.load(ordering: .relaxed) == 1 && state.failures.load(ordering: .relaxed) == 0)
      #expect(d == [.thpFaultAlloc: 1, .faultRaced: 1])
      #expect(try r.cpu.loadByte(base + 0x10_000) == 0xB0 && r.cpu.loadByte(base + 0x20_000) == 0xA0)
      #expect(smapsFigures(r.mm, base)! == (2048, 2048))
      try r.cpu.munmap(base, 2 * huge)
    }
  }
}
