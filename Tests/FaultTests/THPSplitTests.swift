@testable import Faultline
import FaultlineTestSupport
import Synchronization
import Testing

/// What happens to a huge PMD afterwards: splits by operations that cut through it (each
/// `thp_split_pmd` +1 with the data kept byte for byte), a zap of the whole of it (no split),
/// `fork` (shared, write-protected, split and copied 4 KiB at a time by a write),
/// `mremap` (moved whole when aligned). Each expectation was first seen on the host's 6.18
/// kernel (see `THPFaultTests`); every test ends with frames and page tables at baseline.
@Suite struct THPSplitTests {
  let base = thpBase
  let huge = thpSize

  /// An operation on the fourth 4 KiB page of a huge page.
  enum PartialOp: String, CaseIterable, Sendable {
    case mprotect, munmap, dontNeed, mlock, noHugePage

    func apply(_ cpu: CPU, _ addr: UInt64) throws {
      switch self {
      case .mprotect: try cpu.mprotect(addr, page, prot: Prot.read)
      case .munmap: try cpu.munmap(addr, page)
      case .dontNeed: try cpu.madvise(addr, page, advice: Advice.dontNeed)
      case .mlock: try cpu.mlock(addr, page)
      case .noHugePage: try cpu.madvise(addr, page, advice: Advice.noHugePage)
      }
    }
  }

  @Test(arguments: FaultDesign.allCases, PartialOp.allCases)
  func anOperationOnPartOfAHugePageSplitsItAndKeepsEveryByte(design: FaultDesign, op: PartialOp) throws {
    try withTHPRig(design) { r, _ in
      try mapTHP(r)
      #expect(try thpDelta(r) { try writePattern(r.cpu, base, count: Int(huge)) } == [.thpFaultAlloc: 1])
      let cut = base + 3 * page
      let before = thpCounters.map { r.machine.vmstat[$0] }
      try op.apply(r.cpu, cut)
      // (mlock's populate meets present entries: fault_raced, which Linux does not have.)
      let splits = thpCounters.indices.dropLast().map { r.machine.vmstat[thpCounters[$0]] - before[$0] }
      #expect(splits == [0, 0, 1, 0], "thp_fault_alloc, thp_fault_fallback, thp_split_pmd, thp_zero_page_alloc")
      #expect(!isHugePMD(r.mm, base))
      #expect(try holdsPattern(r.cpu, base, count: Int(3 * page), origin: base))
      #expect(try holdsPattern(r.cpu, cut + page, count: Int(huge - 4 * page), origin: base))
      switch op {
      case .munmap:
        expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mincore(cut, page) }
      case .dontNeed:
        var v = [UInt8](repeating: 1, count: 512)
        v[3] = 0
        #expect(try r.cpu.mincore(base, huge) == v)
        #expect(try r.cpu.loadBytes(cut, count: 2) == [0, 0])
      case .mprotect, .mlock, .noHugePage:
        #expect(try holdsPattern(r.cpu, cut, count: Int(page), origin: base))
        #expect(try r.cpu.mincore(base, huge) == [UInt8](repeating: 1, count: 512))
      }
      #expect(smapsFigures(r.mm, base)!.anonHuge == 0)
      try r.cpu.munmap(base, 2 * huge)
    }
  }

  /// `MADV_DONTNEED` over a whole huge PMD zaps it without a split; a later read maps the
  /// huge zero page there.
  @Test(arguments: FaultDesign.allCases)
  func dontNeedOverAWholeHugePageZapsItWithoutASplit(design: FaultDesign) throws {
    try withTHPRig(design) { r, baseline in
      try mapTHP(r)
      try r.cpu.storeByte(base + 1, 1)
      #expect(try thpDelta(r) { try r.cpu.madvise(base, huge, advice: Advice.dontNeed) } == [:])
      #expect(try r.cpu.mincore(base, 4 * page) == [0, 0, 0, 0])
      #expect(smapsFigures(r.mm, base)! == (0, 0))
      r.cpu.drainFrameCache()
      r.machine.drainDeferredFrees()
      #expect(r.machine.memory.framesInUse == baseline.frames + 2)
      var v: UInt8 = 1
      #expect(try thpDelta(r) { v = try r.cpu.loadByte(base + 100) } == [.thpZeroPageAlloc: 1])
      #expect(v == 0)
      #expect(isHugePMD(r.mm, base))
      #expect(try r.cpu.mincore(base, 4 * page) == [1, 1, 1, 1])
      #expect(smapsFigures(r.mm, base)! == (0, 0))
      try r.cpu.munmap(base, 2 * huge)
    }
  }

  /// `mprotect` over a whole huge PMD changes it in place (`change_huge_pmd`), PROT_NONE
  /// included: no split, the data kept, and a write after PROT_READ|PROT_WRITE reuses the page.
  @Test(arguments: FaultDesign.allCases)
  func mprotectOfAWholeHugePageKeepsItHuge(design: FaultDesign) throws {
    try withTHPRig(design) { r, _ in
      try mapTHP(r)
      try writePattern(r.cpu, base, count: Int(huge))
      let d = try thpDelta(r) {
        try r.cpu.mprotect(base, huge, prot: Prot.none)
        #expect(isHugePMD(r.mm, base))
        #expect(try r.cpu.mincore(base, 2 * page) == [1, 1])
        #expect(throws: Signal.self) { try r.cpu.loadByte(base + 5) }
        try r.cpu.mprotect(base, huge, prot: rw)
        try r.cpu.storeByte(base + 2 * page, 0xEE)
      }
      #expect(d == [:])
      #expect(isHugePMD(r.mm, base) && smapsFigures(r.mm, base)!.anonHuge == 2048)
      #expect(try holdsPattern(r.cpu, base, count: Int(2 * page), origin: base))
      #expect(try r.cpu.loadByte(base + 2 * page) == 0xEE)
      try r.cpu.munmap(base, 2 * huge)
    }
  }

  /// After `fork` both map the huge page read-only and see the same bytes. A write in either
  /// splits its own PMD and copies 4 KiB there only; the other keeps reading its own bytes.
  @Test(arguments: FaultDesign.allCases)
  func forkSharesAHugePageAndAWriteSplitsAndCopies4KiBOnlyInTheWriter(design: FaultDesign) throws {
    try withTHPRig(design) { r, _ in
      try mapTHP(r)
      try writePattern(r.cpu, base, count: Int(huge))
      let child = try r.cpu.fork()
      var childCPU: CPU? = try CPU(mm: child)
      #expect(isHugePMD(child, base) && isHugePMD(r.mm, base))
      #expect(try holdsPattern(childCPU!, base, count: Int(huge), origin: base))
      #expect(smapsFigures(child, base)!.anonHuge == 2048)
      r.cpu.drainFrameCache()
      r.machine.drainDeferredFrees()
      var inUse = r.machine.memory.framesInUse
      #expect(try thpDelta(r) { try childCPU!.storeByte(base + 5 * page, 0x55) } == [.thpSplitPmd: 1])
      childCPU!.drainFrameCache()
      r.machine.drainDeferredFrees()
      #expect(r.machine.memory.framesInUse == inUse + 1)
      #expect(smapsFigures(child, base)!.anonHuge == 0 && smapsFigures(r.mm, base)!.anonHuge == 2048)
      #expect(try childCPU!.loadByte(base + 5 * page) == 0x55)
      #expect(try holdsPattern(r.cpu, base, count: Int(huge), origin: base))
      inUse = r.machine.memory.framesInUse
      #expect(try thpDelta(r) { try r.cpu.storeByte(base + 9 * page, 0x66) } == [.thpSplitPmd: 1])
      r.cpu.drainFrameCache()
      r.machine.drainDeferredFrees()
      #expect(r.machine.memory.framesInUse == inUse + 1)
      #expect(smapsFigures(r.mm, base)!.anonHuge == 0)
      #expect(try r.cpu.loadByte(base + 5 * page) == thpPattern(5 * Int(page)))
      #expect(try childCPU!.loadByte(base + 9 * page) == thpPattern(9 * Int(page)))
      #expect(try holdsPattern(childCPU!, base + 10 * page, count: Int(huge - 10 * page), origin: base))
      childCPU = nil
      child.destroy()
      try r.cpu.munmap(base, 2 * huge)
    }
  }

  /// The huge zero page is shared by `fork` too; a write in the child maps a new huge page
  /// there (`do_huge_zero_wp_pmd`), the parent keeps reading zeros.
  @Test(arguments: FaultDesign.allCases)
  func forkSharesTheHugeZeroPage(design: FaultDesign) throws {
    try withTHPRig(design) { r, _ in
      try mapTHP(r)
      _ = try r.cpu.loadByte(base)
      let child = try r.cpu.fork()
      var childCPU: CPU? = try CPU(mm: child)
      #expect(try thpDelta(r) { try childCPU!.storeByte(base + 3, 3) } == [.thpFaultAlloc: 1])
      #expect(smapsFigures(child, base)! == (2048, 2048) && smapsFigures(r.mm, base)! == (0, 0))
      #expect(try r.cpu.loadByte(base + 3) == 0)
      childCPU = nil
      child.destroy()
      try r.cpu.munmap(base, 2 * huge)
    }
  }

  /// A write to a huge PMD that `fork` made read-only: split and copied while the child shares
  /// it, reused in place (no split, no copy) once the child is gone. Under per-VMA locks both
  /// run under the VMA lock alone (no fallback to `mmap_lock`).
  @Test(arguments: FaultDesign.allCases)
  func aWriteToAReadOnlyHugePMDSplitsWhileSharedAndReusesOnceExclusive(design: FaultDesign) throws {
    try withTHPRig(design) { r, _ in
      try mapTHP(r)
      try r.cpu.storeByte(base, 1)
      try r.cpu.storeByte(base + huge, 1)
      let child = try r.cpu.fork()
      let aborts = r.machine.vmstat[.vmaLockAbort]
      #expect(try thpDelta(r) { try r.cpu.storeByte(base + 7, 7) } == [.thpSplitPmd: 1])
      child.destroy()
      #expect(try thpDelta(r) { try r.cpu.storeByte(base + huge + 7, 7) } == [:])
      #expect(isHugePMD(r.mm, base + huge) && !isHugePMD(r.mm, base))
      #expect(smapsFigures(r.mm, base)!.anonHuge == 2048)
      if design == .perVMALock { #expect(r.machine.vmstat[.vmaLockAbort] == aborts) }
      try r.cpu.munmap(base, 2 * huge)
    }
  }

  @Test(arguments: FaultDesign.allCases)
  func mremapMovesAnAlignedHugePageWholeAndSplitsAnUnalignedOne(design: FaultDesign) throws {
    try withTHPRig(design) { r, _ in
      let to = base + 8 * huge
      for (dst, splits) in [(to, UInt64(0)), (to + page, 1)] {
        try mapTHP(r)
        try writePattern(r.cpu, base, count: Int(huge))
        var moved: UInt64 = 0
        let d = try thpDelta(r) {
          moved = try r.cpu.mremap(base, huge, huge, flags: [.mayMove, .fixed], newAddress: dst)
        }
        #expect(moved == dst)
        #expect(d == (splits == 0 ? [:] : [.thpSplitPmd: splits]))
        #expect(isHugePMD(r.mm, dst) == (splits == 0))
        #expect(smapsFigures(r.mm, dst)! == (2048, splits == 0 ? 2048 : 0))
        #expect(try holdsPattern(r.cpu, dst, count: Int(huge), origin: dst))
        try r.cpu.munmap(dst, huge)
        try r.cpu.munmap(base, 2 * huge)
      }
    }
  }
  /// A huge PMD split after a zap's walk read it (a COW fault or a partial `MADV_DONTNEED`,
  /// both under `mmap_lock` read, can split it while a whole-2 MiB `MADV_DONTNEED` walks):
  /// `zapHugePMD` finds no huge leaf under the lock and says so, and the walk zaps the PTE table
  /// instead, as `zap_pmd_range` falls through to `zap_pte_range`. The split is made inside the
  /// walk's callback, between its read and the zap's lock.
  @Test func aZapOfAHugePMDSplitAfterTheWalkReadItZapsItsTable() throws {
    try withTHPRig(.mmapLock) { r, _ in
      try mapTHP(r)
      try writePattern(r.cpu, base, count: Int(huge))
      let table = r.mm.pageTable
      var gather = MMUGather()
      var cleared = 0
      table.forEachPTETable(base, base + huge, huge: { pmd, _ in
        table.splitHugePMD(pmd)
        return table.zapHugePMD(pmd, gather: &gather)
      }) { t, from, to, _ in
        cleared += to - from
        let lock = table.ptl(for: t)
        lock.lock()
        for i in from..<to {
          let old = PTE(raw: t[i].exchange(0, ordering: .acquiringAndReleasing))
          if !old.isNone { table.releaseZapped(old, gather: &gather) }
        }
        lock.unlock()
      }
      gather.finish(machine: r.machine, synchronous: true)
      #expect(cleared == 512)
      #expect(try r.cpu.mincore(base, 4 * page) == [0, 0, 0, 0])
      #expect(try r.cpu.loadByte(base + 5 * page) == 0)
      try r.cpu.munmap(base, 2 * huge)
    }
  }
  /// `MADV_GUARD_INSTALL` zaps before it installs markers: over a whole huge page without a
  /// split, over part of one with a split that keeps the other pages.
  @Test(arguments: FaultDesign.allCases)
  func guardInstallOverAWholeHugePageZapsItAndOverPartSplitsIt(design: FaultDesign) throws {
    try withTHPRig(design) { r, _ in
      try mapTHP(r)
      try writePattern(r.cpu, base, count: Int(2 * huge))
      let whole = try thpDelta(r) { try r.cpu.madvise(base, huge, advice: Advice.guardInstall) }
      #expect(whole == [:])
      #expect(try r.cpu.mincore(base, 4 * page) == [0, 0, 0, 0])
      #expect(throws: Signal.self) { try r.cpu.loadByte(base + 5) }
      let part = try thpDelta(r) { try r.cpu.madvise(base + huge + page, page, advice: Advice.guardInstall) }
      #expect(part == [.thpSplitPmd: 1])
      #expect(try r.cpu.mincore(base + huge, 4 * page) == [1, 0, 1, 1])
      #expect(try holdsPattern(r.cpu, base + huge + 2 * page, count: Int(huge - 2 * page), origin: base))
      try r.cpu.munmap(base, 2 * huge)
    }
  }
}
