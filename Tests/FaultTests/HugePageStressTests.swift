import Faultline
import FaultlineTestSupport
import Synchronization
import Testing

/// Faulting threads race a mutator over `MADV_HUGEPAGE` 2 MiB-aligned ranges (issue 18,
/// acceptance 3), under every fault design, on a machine pinned to THP `madvise`:
/// ```
/// base          +2 MiB         +4 MiB          +6 MiB          +8 MiB
/// [ owned 0     ][ owned 1     ][ churn 2      ][ churn 3      ]
///   lower half: each faulter's own pages; upper half: the mutator's splits
/// ```
/// - **Owned ranges**: each faulter stores increasing values into its own two pages of the lower
///   half (the first store maps a huge page) and checks before every store that its page still
///   holds its last value. The mutator splits the huge PMD under them: mprotect of the upper
///   half read-only and back, `MADV_DONTNEED` of an upper-half page (no PTE there once it
///   returned), munmap of the upper half and a fresh mapping there; and forks: the child must
///   hold, in every owned page, a value between the last store completed before fork and the
///   last started after it (invariant 6), and the child's own stores stay in the child.
/// - **Churn ranges**: the mutator unmaps a whole range and maps it again with
///   `MADV_HUGEPAGE` (a new huge fault next), or makes its upper half read-only and back;
///   faulters load and store anywhere in them. An access that overlapped no change must give
///   Linux's result (invariant 7), and a load reads 0 or a faulter's mark, never anything else.
///
/// While running, every frame mapped is live and no huge PMD straddles a VMA boundary; at the
/// end, mapcounts and refcounts match the page tables exactly, mincore agrees with them, and
/// after munmap of everything frames and page-table pages are back to their baseline.
@Suite struct HugePageStressTests {
  static let huge = TransparentHugePage.size
  static let base: UInt64 = 0x4000_0000
  static let ownedRanges = 2
  static let churnRanges = 2
  static var ranges: Int { ownedRanges + churnRanges }
  static let faulters = 2
  static let mutatorOps = 120
  /// Faulter f's pages in owned range r: pages 1 + f and 64 + f of its lower half.
  static func ownedPage(_ r: Int, _ f: Int, _ i: Int) -> UInt64 {
    base + UInt64(r) * huge + UInt64(i == 0 ? 1 + f : 64 + f) * page
  }
  static var ownedSlots: Int { ownedRanges * faulters * 2 }
  static func slot(_ r: Int, _ f: Int, _ i: Int) -> Int { (r * faulters + f) * 2 + i }

  static var profile: MachineProfile {
    var p = MachineProfile.reference
    p.thpEnabled = .madvise
    p.thpUseZeroPage = true
    return p
  }

  final class Shared: @unchecked Sendable {
    /// Per owned slot: the value whose store is about to begin, and the last one completed.
    let started: UnsafeMutablePointer<Atomic<UInt64>>
    let completed: UnsafeMutablePointer<Atomic<UInt64>>
    /// Even while no change to the churn ranges is in progress; odd during one.
    let sequence = Atomic<UInt64>(0)
    /// Per churn range: whether its upper half is read-only now (set while `sequence` is odd).
    let readOnly: UnsafeMutablePointer<Atomic<Bool>>
    let done = Atomic<Bool>(false)
    let checkedAccesses = Atomic<Int>(0)
    let checkedChildren = Atomic<Int>(0)
    let log = ViolationLog()

    init() {
      started = .allocate(capacity: HugePageStressTests.ownedSlots)
      completed = .allocate(capacity: HugePageStressTests.ownedSlots)
      for i in 0..<HugePageStressTests.ownedSlots {
        (started + i).initialize(to: Atomic(0))
        (completed + i).initialize(to: Atomic(0))
      }
      readOnly = .allocate(capacity: HugePageStressTests.churnRanges)
      for i in 0..<HugePageStressTests.churnRanges { (readOnly + i).initialize(to: Atomic(false)) }
    }
    deinit {
      started.deallocate()
      completed.deallocate()
      readOnly.deallocate()
    }

    func fail(_ text: String) { log.fail(text) }
  }

  @Test(arguments: FaultDesign.allCases)
  func faultsSplitsAndForksOverHugePagesKeepInvariants(design: FaultDesign) throws {
    try withRig(memoryBytes: 64 << 20, design: design, profile: Self.profile) { r in
      let mm = r.mm!
      r.machine.drainDeferredFrees()
      let baselineFrames = r.machine.memory.framesInUse
      let baselineTables = mm.pageTable.tablePages
      let length = UInt64(Self.ranges) * Self.huge
      _ = try r.cpu.mmap(Self.base, length, prot: rw, flags: anonPrivate | MapFlags.fixed)
      try r.cpu.madvise(Self.base, length, advice: .hugePage)
      let shared = Shared()
      // The last thread mutates; the others fault.
      runThreads(Self.faulters + 1) { t in
        t == Self.faulters ? Self.mutator(mm, shared) : Self.faulter(mm, shared, faulter: t)
      }
      #expect(shared.log.violations == 0, "\(shared.log.firstViolation)")
      #expect(shared.checkedAccesses.load(ordering: .relaxed) > 0, "no churn access overlapped a quiet period")
      #expect(shared.checkedChildren.load(ordering: .relaxed) > 0, "no fork was checked")
      // The run faulted huge pages and split them.
      #expect(r.machine.vmstat[.thpFaultAlloc] > 0 && r.machine.vmstat[.thpSplitPmd] > 0)

      r.machine.drainDeferredFrees()
      var problems: [String] = []
      MappingAudit(memory: r.machine.memory).checkExact([mm], Self.base, Self.base + length, &problems)
      #expect(problems.isEmpty, "\(problems.prefix(5))")
      let vec = try r.cpu.mincore(Self.base, length)
      for (i, a) in stride(from: Self.base, to: Self.base + length, by: Int(page)).enumerated()
      where (vec[i] & 1 == 1) != mm.pageTable.pte(at: a).isPresent {
        Issue.record("mincore reads \(vec[i]) at 0x\(String(a, radix: 16)), the page tables disagree")
        break
      }
      // Every owned page holds its faulter's last completed store.
      for rr in 0..<Self.ownedRanges {
        for f in 0..<Self.faulters {
          for i in 0..<2 {
            let want = shared.completed[Self.slot(rr, f, i)].load(ordering: .relaxed)
            #expect(try Self.loadWord(r.cpu, Self.ownedPage(rr, f, i)) == want)
          }
        }
      }
      #expect(r.mm.tree.verify() == r.mm.mapCount)
      try r.cpu.munmap(Self.base, length)
      r.machine.drainDeferredFrees()
      #expect(r.machine.memory.framesInUse == baselineFrames)
      #expect(mm.pageTable.tablePages == baselineTables)
    }
  }

  static func faulter(_ mm: AddressSpace, _ s: Shared, faulter f: Int) {
    let cpu = try! CPU(mm: mm)
    var rng = SplitMix64(seed: 0x7A9E + UInt64(f))
    var next: UInt64 = 1
    var iterations = 0
    var afterDone = 0
    let mark = UInt8(f + 1)
    while !s.done.load(ordering: .acquiring) || iterations < 600 || afterDone < 100 {
      if s.done.load(ordering: .relaxed) { afterDone += 1 }
      iterations += 1
      // An owned page: it must hold the last value stored, then takes the next one.
      let rr = Int(rng.next() % UInt64(ownedRanges))
      let i = Int(rng.next() % 2)
      let slot = Self.slot(rr, f, i)
      let a = ownedPage(rr, f, i)
      do {
        let last = s.completed[slot].load(ordering: .relaxed)
        let v = try loadWord(cpu, a)
        if v != last { s.fail("owned page 0x\(String(a, radix: 16)) holds \(v), its faulter stored \(last) last") }
        s.started[slot].store(next, ordering: .sequentiallyConsistent)
        try storeWord(cpu, a, next)
        s.completed[slot].store(next, ordering: .sequentiallyConsistent)
        next += 1
      } catch {
        s.fail("owned access at 0x\(String(a, radix: 16)) raised \(error)")
      }
      // A churn access: any result while a change overlaps, Linux's otherwise.
      let c = Int(rng.next() % UInt64(churnRanges))
      let offset = rng.next() % huge
      let ca = base + UInt64(ownedRanges + c) * huge + offset
      let write = rng.next() % 2 == 0
      let before = s.sequence.load(ordering: .sequentiallyConsistent)
      // Read inside the window: a read after `after` could see the next change's value.
      let readOnly = offset >= huge / 2 && s.readOnly[c].load(ordering: .sequentiallyConsistent)
      var result: Signal?
      var loaded: UInt8 = 0
      do {
        if write { try cpu.storeByte(ca, mark) } else { loaded = try cpu.loadByte(ca) }
      } catch {
        result = error
      }
      if !write && result == nil && loaded > UInt8(faulters) {
        s.fail("churn load at 0x\(String(ca, radix: 16)) read \(loaded), which no faulter stores")
      }
      let after = s.sequence.load(ordering: .sequentiallyConsistent)
      if before != after || before & 1 == 1 { continue }
      s.checkedAccesses.wrappingAdd(1, ordering: .relaxed)
      let expected: Signal? = write && readOnly ? .sigsegv(.accErr, address: ca) : nil
      if result != expected {
        s.fail("churn \(write ? "store" : "load") at 0x\(String(ca, radix: 16)) gave \(String(describing: result)), expected \(String(describing: expected))")
      }
    }
  }

  static func mutator(_ mm: AddressSpace, _ s: Shared) {
    let cpu = try! CPU(mm: mm)
    var rng = SplitMix64(seed: 0x5EED)
    let audit = MappingAudit(memory: mm.machine.memory)
    for _ in 0..<mutatorOps {
      let op = rng.next() % 6
      do {
        if op < 4 {
          let rr = Int(rng.next() % UInt64(ownedRanges))
          let start = base + UInt64(rr) * huge
          let upper = start + huge / 2
          switch op {
          case 0:
            try cpu.mprotect(upper, huge / 2, prot: Prot.read)
            for a in stride(from: upper, to: start + huge, by: Int(page)) where mm.pageTable.pte(at: a).isWritable {
              s.fail("writable PTE at 0x\(String(a, radix: 16)) after mprotect(PROT_READ) returned")
              break
            }
            try cpu.mprotect(upper, huge / 2, prot: rw)
          case 1:
            let a = upper + (rng.next() % 256) * page
            try cpu.madvise(a, page, advice: .dontNeed)
            if mm.pageTable.pte(at: a).mapsFrame { s.fail("PTE at 0x\(String(a, radix: 16)) after MADV_DONTNEED returned") }
          case 2:
            try cpu.munmap(upper, huge / 2)
            for a in stride(from: upper, to: start + huge, by: Int(page)) where mm.pageTable.pte(at: a).mapsFrame {
              s.fail("PTE at 0x\(String(a, radix: 16)) after munmap returned")
              break
            }
            if isHuge(mm, start) { s.fail("a huge PMD maps 0x\(String(start, radix: 16)) after munmap of its upper half") }
            _ = try cpu.mmap(upper, huge / 2, prot: rw, flags: anonPrivate | MapFlags.fixed)
            try cpu.madvise(upper, huge / 2, advice: .hugePage)
            // Touch the new upper half, so the fork below copies split tables with both halves.
            try cpu.storeByte(upper + (rng.next() % 256) * page, 0)
          default:
            forkAndCheck(mm, s, &rng)
          }
        } else {
          let c = Int(rng.next() % UInt64(churnRanges))
          let start = base + UInt64(ownedRanges + c) * huge
          s.sequence.wrappingAdd(1, ordering: .sequentiallyConsistent)
          if op == 4 {
            try cpu.munmap(start, huge)
            _ = try cpu.mmap(start, huge, prot: rw, flags: anonPrivate | MapFlags.fixed)
            try cpu.madvise(start, huge, advice: .hugePage)
            s.readOnly[c].store(false, ordering: .sequentiallyConsistent)
          } else {
            let makeReadOnly = !s.readOnly[c].load(ordering: .relaxed)
            try cpu.mprotect(start + huge / 2, huge / 2, prot: makeReadOnly ? Prot.read : rw)
            if makeReadOnly && isHuge(mm, start) {
              s.fail("a huge PMD maps 0x\(String(start, radix: 16)) after mprotect of its upper half")
            }
            s.readOnly[c].store(makeReadOnly, ordering: .sequentiallyConsistent)
          }
          s.sequence.wrappingAdd(1, ordering: .sequentiallyConsistent)
        }
      } catch {
        s.fail("mutator op \(op) failed: \(error)")
      }
      var problems: [String] = []
      audit.checkLive(mm, base, base + UInt64(ranges) * huge, when: "(mutator)", &problems)
      if let p = problems.first { s.fail(p) }
    }
    s.done.store(true, ordering: .releasing)
  }

  /// Forks; the child's owned pages must hold a value between the last store completed before
  /// fork and the last started after it; then the child stores its own values, which the
  /// faulters (checking their pages before every store) must never see.
  static func forkAndCheck(_ mm: AddressSpace, _ s: Shared, _ rng: inout SplitMix64) {
    let low = (0..<ownedSlots).map { s.completed[$0].load(ordering: .sequentiallyConsistent) }
    let child: AddressSpace
    do { child = try mm.fork() } catch {
      s.fail("fork: \(error)")
      return
    }
    defer { child.destroy() }
    let high = (0..<ownedSlots).map { s.started[$0].load(ordering: .sequentiallyConsistent) }
    do {
      let cpu = try CPU(mm: child)
      for rr in 0..<ownedRanges {
        for f in 0..<faulters {
          for i in 0..<2 {
            let slot = Self.slot(rr, f, i)
            let v = try loadWord(cpu, ownedPage(rr, f, i))
            if v < low[slot] || v > high[slot] {
              s.fail("the child reads \(v) in owned slot \(slot), outside [\(low[slot]), \(high[slot])]")
            }
          }
        }
      }
      // Child stores: a split and a 4 KiB copy on the child's side only.
      let rr = Int(rng.next() % UInt64(ownedRanges))
      let a = ownedPage(rr, Int(rng.next() % UInt64(faulters)), Int(rng.next() % 2))
      try storeWord(cpu, a, UInt64.max)
      if try loadWord(cpu, a) != UInt64.max { s.fail("the child lost its own store") }
      s.checkedChildren.wrappingAdd(1, ordering: .relaxed)
    } catch {
      s.fail("child access failed: \(error)")
    }
  }

  static func loadWord(_ cpu: CPU, _ a: UInt64) throws(Signal) -> UInt64 {
    var v: UInt64 = 0
    try withUnsafeMutableBytes(of: &v) { (b) throws(Signal) in try cpu.load(a, into: b) }
    return v
  }

  static func storeWord(_ cpu: CPU, _ a: UInt64, _ value: UInt64) throws(Signal) {
    try withUnsafeBytes(of: value) { (b) throws(Signal) in try cpu.store(a, from: b) }
  }

  static func isHuge(_ mm: AddressSpace, _ start: UInt64) -> Bool {
    guard let pmd = mm.pageTable.lookupPMD(start) else { return false }
    return PTE(raw: pmd.pointee.load(ordering: .acquiring)).isHugePMD
  }
}
