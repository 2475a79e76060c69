@testable import Faultline
import FaultlineTestSupport
import Synchronization
import Testing

/// A huge PMD (`_PAGE_PSE`) as a leaf: the MMU's loads and stores go through it, `pte(at:)` and
/// mincore see its 512 pages, the walks never read it as a PTE table, and a speculative fault
/// that meets one aborts with `spf_pmd_huge`. The VMAs here are not THP-eligible (the reference
/// profile's `madvise`, no `MADV_HUGEPAGE`), so each test installs the entry by hand, with a
/// deposited table, and zaps it before teardown (`THPFaultTests` covers faulting them in):
/// ```
/// 0x200000000000            0x200000200000            0x200000400000
/// [ huge PMD: one 2 MiB page ][ 4 KiB PTEs as usual    ]
/// ```
@Suite struct HugePMDTests {
  let base: UInt64 = 0x2000_0000_0000
  let huge = TransparentHugePage.size

  /// Maps `[base, base + 4 MiB)` and installs a huge PMD over its first 2 MiB with `bits`;
  /// returns the head frame and the PMD slot.
  func installHuge(_ r: Rig, bits: UInt64, map: Bool = true) throws -> (PFN, UnsafeMutablePointer<Atomic<UInt64>>) {
    if map { _ = try r.cpu.mmap(base, 2 * huge, prot: rw, flags: anonPrivate | MapFlags.fixed) }
    let head = try #require(r.machine.memory.allocateHuge(flags: .anon))
    let table = try #require(r.machine.memory.allocateZeroed(flags: .pageTable))
    let pmd = try #require(r.mm.pageTable.walker.allocPMD(base, cache: nil))
    let lock = r.mm.pageTable.pmdLock(for: pmd)
    lock.lock()
    r.mm.pageTable.depositTable(pmd, table)
    r.machine.memory.frames.addEntireMap(head, 1)
    pmd.pointee.store(head.physicalAddress | PTE.present | PTE.user | PTE.huge | bits, ordering: .releasing)
    lock.unlock()
    return (head, pmd)
  }

  /// Takes the huge PMD out again (`zap_huge_pmd`) and frees the page and its deposited table.
  func removeHuge(_ r: Rig, _ head: PFN, _ pmd: UnsafeMutablePointer<Atomic<UInt64>>) {
    var gather = MMUGather()
    r.mm.pageTable.zapHugePMD(pmd, gather: &gather)
    gather.finish(machine: r.machine, synchronous: true)
    _ = head
  }

  @Test func loadsAndStoresGoThroughAHugePMDAndSetItsAccessedAndDirtyBits() throws {
    try withRig(memoryBytes: 16 << 20, design: .mmapLock) { r in
      let (head, pmd) = try installHuge(r, bits: PTE.write)
      try r.cpu.storeByte(base + 0x1234, 0x5A)
      try r.cpu.storeByte(base + huge - 1, 0xA5)
      // Byte 0x1234 of the huge page: frame head + 1, offset 0x234.
      #expect(r.machine.memory.address(of: PFN(head.raw + 1)).load(fromByteOffset: 0x234, as: UInt8.self) == 0x5A)
      #expect(try r.cpu.loadByte(base + huge - 1) == 0xA5)
      let e = PTE(raw: pmd.pointee.load(ordering: .relaxed))
      #expect(e.isHugePMD && e.isDirty && e.raw & PTE.accessed != 0)
      // No fault was needed, and no PTE table was made under it.
      #expect(r.machine.vmstat[.pgfault] == 0)
      #expect(r.mm.pageTable.lookupPTE(base) == nil)
      removeHuge(r, head, pmd)
    }
  }

  @Test func aReadOnlyHugePMDRefusesAStoreToTheMMU() throws {
    try withRig(memoryBytes: 16 << 20, design: .mmapLock) { r in
      let (head, pmd) = try installHuge(r, bits: 0)
      #expect(r.cpu.translateHuge(base + 8, write: false) != nil)
      #expect(r.cpu.translateHuge(base + 8, write: true) == nil)
      #expect(r.cpu.translateHuge(base + huge, write: false) == nil)
      removeHuge(r, head, pmd)
    }
  }

  @Test func mincoreAndPTEAtSeeEveryPageOfAHugePMD() throws {
    try withRig(memoryBytes: 16 << 20, design: .mmapLock) { r in
      let (head, pmd) = try installHuge(r, bits: PTE.write)
      #expect(try r.cpu.mincore(base, 8 * Page.size) == [1, 1, 1, 1, 1, 1, 1, 1])
      #expect(try r.cpu.mincore(base + huge - 2 * Page.size, 4 * Page.size) == [1, 1, 0, 0])
      let sub = r.mm.pageTable.pte(at: base + 3 * Page.size + 17)
      #expect(sub.pfn == PFN(head.raw + 3))
      #expect(sub.isPresent && sub.isWritable && sub.raw & PTE.huge == 0)
      // The tables: PGD, PUD, PMD; no PTE table under the huge entry.
      #expect(r.mm.pageTable.tablePages == 3)
      var tables = 0
      var huges = 0
      r.mm.pageTable.forEachPTETable(base, base + huge, huge: { _, _ in huges += 1; return true }) { _, _, _, _ in
        tables += 1
      }
      #expect(tables == 0 && huges == 1)
      removeHuge(r, head, pmd)
    }
  }

  @Test func allocPTENeverTurnsAHugePMDIntoATable() throws {
    try withRig(memoryBytes: 16 << 20, design: .mmapLock) { r in
      let (head, pmd) = try installHuge(r, bits: PTE.write)
      #expect(r.mm.pageTable.allocPTE(base + Page.size, cache: nil) == nil)
      #expect(PTE(raw: pmd.pointee.load(ordering: .relaxed)).isHugePMD)
      // The next PMD is an ordinary one.
      #expect(r.mm.pageTable.allocPTE(base + huge, cache: nil) != nil)
      removeHuge(r, head, pmd)
    }
  }

  /// SPF v12 and Lespinasse's series never handled a huge PMD speculatively: the walk aborts
  /// with its own reason, and the locked fallback takes over (here after the huge PMD is gone,
  /// so it maps a 4 KiB page as usual).
  @Test(arguments: [FaultDesign.speculative, .sequenced])
  func aSpeculativeWalkMeetingAHugePMDAbortsWithSPFPMDHuge(_ design: FaultDesign) throws {
    try withRig(memoryBytes: 16 << 20, design: design) { r in
      _ = try r.cpu.mmap(base, 2 * huge, prot: rw, flags: anonPrivate | MapFlags.fixed)
      try r.cpu.storeByte(base + 3 * huge / 2, 1)  // the VMA's anon_vma, and a PTE table next door
      // A write to the read-only huge PMD needs the fault path.
      let (head, pmd) = try installHuge(r, bits: 0, map: false)
      let seen = Seen()
      let machine = r.machine
      let pageTable = r.mm.pageTable
      nonisolated(unsafe) let slot = pmd
      _ = head
      r.mm.faultHook = { point, _ in
        guard case .aborted(let reason) = point else { return }
        seen.reasons.withLock { $0.append(reason) }
        var gather = MMUGather()
        pageTable.zapHugePMD(slot, gather: &gather)
        gather.finish(machine: machine, synchronous: false)
      }
      try r.cpu.storeByte(base + 0x10, 7)
      r.mm.faultHook = nil
      #expect(seen.reasons.withLock { $0 } == [.pmdHuge])
      #expect(r.machine.vmstat[VMStatItem(abort: .pmdHuge)] == 1)
      #expect(VMStatItem(abort: .pmdHuge).name == "spf_pmd_huge")
      #expect(try r.cpu.loadByte(base + 0x10) == 7)
      #expect(r.mm.pageTable.pte(at: base).raw & PTE.huge == 0)
      #expect(r.machine.memory.freeHugeBlocks > 0)
    }
  }

  /// The abort reasons a fault hook saw.
  final class Seen: Sendable {
    let reasons = Locked<[SPFAbort?]>([])
  }
}
