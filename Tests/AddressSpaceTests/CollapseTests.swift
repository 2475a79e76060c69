@testable import Faultline
import FaultlineTestSupport
import Synchronization
import Testing

/// `MADV_COLLAPSE` on private anonymous memory (the host's answers are in
/// `Fixtures/thp-collapse.replay`): what the collapsed page holds, what it frees, and that a
/// store racing the collapse is never lost.
@Suite struct CollapseTests {
  let base: UInt64 = 0x2000_0000_0000
  let huge = TransparentHugePage.size

  /// 4 KiB pages with a pattern, holes and a zero page become one huge page with the same bytes;
  /// the old pages and nothing else go back, and unmapping it returns every frame.
  @Test(arguments: FaultDesign.allCases)
  func collapseKeepsTheBytesAndFreesTheOldPages(_ design: FaultDesign) throws {
    try withRig(memoryBytes: 32 << 20, design: design) { r in
      r.machine.drainDeferredFrees()
      r.cpu.drainFrameCache()
      let baseline = r.machine.memory.framesInUse
      _ = try r.cpu.mmap(base, 2 * huge, prot: rw, flags: anonPrivate | MapFlags.fixed)
      for i in stride(from: 0, to: 512, by: 3) { try r.cpu.storeByte(base + UInt64(i) * Page.size + 7, UInt8(i & 0xFF) | 1) }
      _ = try r.cpu.loadByte(base + 4 * Page.size)  // the zero page
      r.machine.drainDeferredFrees()
      r.cpu.drainFrameCache()
      // 171 pages and the PUD, PMD and PTE tables.
      #expect(r.machine.memory.framesInUse == baseline + 171 + 3)
      try r.cpu.madvise(base, huge, advice: Advice.collapse)
      #expect(r.machine.vmstat[.thpCollapseAlloc] == 1)
      #expect(PTE(raw: r.mm.pageTable.lookupPMD(base)!.pointee.load(ordering: .relaxed)).isHugePMD)
      #expect(r.mm.smaps().contains("AnonHugePages:      2048 kB"))
      for i in 0..<512 {
        let want: UInt8 = i % 3 == 0 ? UInt8(i & 0xFF) | 1 : 0
        #expect(try r.cpu.loadByte(base + UInt64(i) * Page.size + 7) == want)
      }
      // The huge page, the PUD and PMD tables and the old PTE table, deposited beside the huge
      // PMD; the 171 pages are gone.
      r.machine.drainDeferredFrees()
      r.cpu.drainFrameCache()
      #expect(r.machine.memory.framesInUse == baseline + 512 + 3)
      #expect(r.machine.vmstat[.pgfree] == 171)
      try r.cpu.munmap(base, 2 * huge)
      r.machine.drainDeferredFrees()
      r.cpu.drainFrameCache()
      #expect(r.machine.memory.framesInUse == baseline)
    }
  }

  /// A collapse clears the PMD and waits for a grace period before it copies: another thread
  /// storing into the range all the while loses no store, and reads back every value it wrote.
  @Test(arguments: FaultDesign.allCases)
  func storesRacingACollapseAreNeverLost(_ design: FaultDesign) throws {
    try withRig(memoryBytes: 64 << 20, design: design) { r in
      let mm = r.mm!
      let base = self.base
      let huge = self.huge
      _ = try r.cpu.mmap(base, huge, prot: rw, flags: anonPrivate | MapFlags.fixed)
      try r.cpu.storeByte(base, 1)
      let lost = Atomic<Int>(0)
      let collapses = Atomic<Int>(0)
      nonisolated(unsafe) let flag = UnsafeMutablePointer<Atomic<Bool>>.allocate(capacity: 1)
      flag.initialize(to: Atomic(false))
      defer { flag.deallocate() }
      runThreads(2) { t in
        guard let cpu = try? CPU(mm: mm) else { return }
        if t == 0 {
          for _ in 0..<20 {
            // DONTDUMP of one page splits the VMA and so the huge PMD (data kept); DODUMP
            // merges the VMA back, and the collapse makes one huge page again.
            try? cpu.madvise(base + Page.size, Page.size, advice: Advice.dontDump)
            try? cpu.madvise(base + Page.size, Page.size, advice: Advice.doDump)
            if (try? cpu.madvise(base, huge, advice: Advice.collapse)) != nil { collapses.wrappingAdd(1, ordering: .relaxed) }
          }
          flag.pointee.store(true, ordering: .releasing)
        } else {
          var value: UInt8 = 1
          var i: UInt64 = 0
          while !flag.pointee.load(ordering: .acquiring) {
            let a = base + (i % 512) * Page.size + 9
            try? cpu.storeByte(a, value)
            if (try? cpu.loadByte(a)) != value { lost.wrappingAdd(1, ordering: .relaxed) }
            value = value == 255 ? 1 : value + 1
            i += 1
          }
        }
      }
      #expect(lost.load(ordering: .relaxed) == 0)
      #expect(collapses.load(ordering: .relaxed) == 20)
      #expect(r.machine.vmstat[.thpCollapseAlloc] == 20)
      #expect(r.machine.vmstat[.thpSplitPmd] >= 19)
    }
  }
}
