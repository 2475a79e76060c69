import Faultline
import FaultlineTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Faulting threads in the parent race a thread that forks repeatedly (DESIGN.md invariant 6,
/// issue 7's stress test), under every fault design.
///
/// Each faulter owns pages it keeps writing with increasing values: "stable" pages that stay
/// mapped (after each fork their next write is a COW fault, or a reuse once the child is gone)
/// and "churn" pages it munmaps and maps again now and then (so fresh write faults and
/// mmap_lock writers keep coming). Every store writes the pair `[v, v ^ pairKey]` (16 bytes), so a
/// torn or foreign page shows. Per page, the faulter publishes `started` (the value whose store
/// is about to begin) before the store and `completed` after it.
///
/// The forker reads `completed` (L) before `fork` and `started` (U) after it returns. In the
/// child, right away, every page must hold a value v with L <= v <= U: the last store that
/// completed before fork began is there, and nothing the parent started after fork returned
/// is. The child then writes markers into some pages; a while later, with the parent still
/// writing, the child must see exactly its markers and its snapshot. Each faulter checks before
/// every store that its page still holds what it wrote last, so a child's marker (or a lost
/// parent store) in the parent is caught there. After the run every frame must come back.
@Suite struct ForkStressTests {
  static let faulters = 2
  static let stablePages = 6
  static let churnPages = 6
  static var pagesPerFaulter: Int { stablePages + churnPages }
  static let forks = 40
  /// The second word of every stored pair is `v ^ pairKey`.
  static let pairKey: UInt64 = 0x5A5A_A5A5_0F0F_F0F0
  /// Marker values written by children carry this bit; faulters never do.
  static let markerBit: UInt64 = 1 << 63

  final class Shared: @unchecked Sendable {
    let pages: Int
    let started: UnsafeMutablePointer<Atomic<UInt64>>
    let completed: UnsafeMutablePointer<Atomic<UInt64>>
    /// Per faulter: odd while its churn pages are being remapped.
    let epoch: UnsafeMutablePointer<Atomic<UInt64>>
    /// Per faulter: stores done, so that the forker waits for progress between forks.
    let progress: UnsafeMutablePointer<Atomic<UInt64>>
    let done = Atomic<Bool>(false)
    let violations = Atomic<Int>(0)
    let checkedPages = Atomic<Int>(0)
    let firstViolation = PThreadMutex()
    nonisolated(unsafe) var violationText = ""

    init(pages: Int, faulters: Int) {
      self.pages = pages
      started = .allocate(capacity: pages)
      completed = .allocate(capacity: pages)
      for i in 0..<pages {
        (started + i).initialize(to: Atomic(0))
        (completed + i).initialize(to: Atomic(0))
      }
      epoch = .allocate(capacity: faulters)
      progress = .allocate(capacity: faulters)
      for i in 0..<faulters {
        (epoch + i).initialize(to: Atomic(0))
        (progress + i).initialize(to: Atomic(0))
      }
    }

    deinit {
      started.deallocate()
      completed.deallocate()
      epoch.deallocate()
      progress.deallocate()
    }

    func fail(_ text: String) {
      if violations.wrappingAdd(1, ordering: .relaxed).oldValue == 0 {
        firstViolation.withLock { violationText = text }
      }
    }
  }

  /// Where page `p` (global index) lives: faulter f's stable pages, then its churn pages, with
  /// an unmapped page between faulters so that their VMAs stay apart.
  static func address(_ base: UInt64, _ p: Int) -> UInt64 {
    let f = p / pagesPerFaulter
    return base + UInt64(f * (pagesPerFaulter + 1) + p % pagesPerFaulter) * page
  }

  static func churnBase(_ base: UInt64, faulter f: Int) -> UInt64 {
    address(base, f * pagesPerFaulter + stablePages)
  }

  @Test(arguments: FaultDesign.allCases)
  func childrenSeeTheirSnapshotWhileParentFaults(design: FaultDesign) throws {
    try withRig(memoryBytes: 32 << 20, design: design) { r in
      let clock = ContinuousClock()
      let t0 = clock.now
      let mm = r.mm!
      let base: UInt64 = 0x5000_0000
      let total = Self.faulters * Self.pagesPerFaulter
      let shared = Shared(pages: total, faulters: Self.faulters)
      for f in 0..<Self.faulters {
        let a = Self.address(base, f * Self.pagesPerFaulter)
        _ = try r.cpu.mmap(a, UInt64(Self.pagesPerFaulter) * page, prot: rw, flags: anonPrivate | MapFlags.fixed)
        try r.cpu.fill(a, value: 0, count: Int(UInt64(Self.pagesPerFaulter) * page))
      }
      r.machine.drainDeferredFrees()
      let populated = r.machine.memory.framesInUse

      runThreads(Self.faulters + 1) { t in
        if t == Self.faulters {
          Self.forker(mm, shared, base: base)
        } else {
          Self.faulter(mm, shared, faulter: t, base: base)
        }
      }
      let text = shared.firstViolation.withLock { shared.violationText }
      #expect(shared.violations.load(ordering: .relaxed) == 0, "\(text)")
      #expect(shared.checkedPages.load(ordering: .relaxed) > 0, "no page was checked against its bounds")
      #expect(r.mm.tree.verify() == r.mm.mapCount)

      // Every page present again, every child gone: the frames are exactly those of the start.
      for p in 0..<total { try r.cpu.storeByte(Self.address(base, p) + 100, 1) }
      r.machine.drainDeferredFrees()
      #expect(r.machine.memory.framesInUse == populated)
      let elapsed = clock.now - t0
      print(
        "ForkStress \(design): \(Self.forks) forks, \(shared.checkedPages.load(ordering: .relaxed)) pages checked, \(elapsed)"
      )
    }
  }

  // MARK: A fork inside the reuse window

  final class ForkBox: @unchecked Sendable {
    let go = Atomic<Bool>(false)
    let forked = Atomic<Bool>(false)
    let storeDone = Atomic<Bool>(false)
    let fired = Atomic<Bool>(false)
    let storeFailed = Atomic<Bool>(false)
    nonisolated(unsafe) var child: AddressSpace?
  }

  /// A write fault on a write-protected page whose only other user (an earlier child) is gone
  /// decides to reuse it; a fork that runs between that decision and the PTL must not leave the
  /// parent writing into a page the new child maps (the race that `vma_start_write` in
  /// `dup_mmap`, and deciding reuse under the PTL, close). The fault hook starts the fork at
  /// `.beforePTEMapLock` and waits for it a while (a design whose fault holds a lock fork needs
  /// makes fork wait instead). Either way the child must see a consistent snapshot and the
  /// two address spaces must stay apart.
  @Test(arguments: FaultDesign.allCases)
  func forkInsideTheReuseWindowKeepsParentAndChildApart(design: FaultDesign) throws {
    try withRig(design: design) { r in
      let mm = r.mm!
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      try r.cpu.storeByte(a, 1)
      try mm.fork().destroy()
      r.machine.drainDeferredFrees()
      let e = mm.pageTable.pte(at: a)
      #expect(!e.isWritable)
      #expect(r.machine.memory.meta(e.pfn).refcount == 1, "the page must be reusable for this test")

      let box = ForkBox()
      mm.faultHook = { point, addr in
        guard point == .beforePTEMapLock, addr & ~0xFFF == a else { return }
        guard !box.fired.exchange(true, ordering: .relaxed) else { return }
        box.go.store(true, ordering: .releasing)
        var spins = 0
        while !box.forked.load(ordering: .acquiring) && spins < 2_000 {
          usleep(50)
          spins += 1
        }
      }
      runThreads(2) { t in
        if t == 0 {
          let cpu = try! CPU(mm: mm)
          if (try? cpu.storeByte(a, 2)) == nil { box.storeFailed.store(true, ordering: .relaxed) }
          box.storeDone.store(true, ordering: .releasing)
        } else {
          while !box.go.load(ordering: .acquiring) && !box.storeDone.load(ordering: .acquiring) { sched_yield() }
          box.child = try? mm.fork()
          box.forked.store(true, ordering: .releasing)
        }
      }
      mm.faultHook = nil
      guard let child = box.child else {
        Issue.record("fork failed")
        return
      }
      defer {
        child.destroy()
        r.machine.drainDeferredFrees()
      }
      let fired = box.fired.load(ordering: .relaxed)
      let storeFailed = box.storeFailed.load(ordering: .relaxed)
      #expect(fired, "the reuse fault never reached pteMapLock")
      #expect(!storeFailed, "the parent's store raised a signal")
      let cc = try CPU(mm: child)
      let seen = try cc.loadByte(a)
      #expect(seen == 1 || seen == 2)
      // A writable parent entry must not map the child's page.
      let pe = mm.pageTable.pte(at: a)
      let ce = child.pageTable.pte(at: a)
      if pe.isWritable && ce.mapsFrame { #expect(pe.pfn != ce.pfn, "parent writes into the child's page") }
      try r.cpu.storeByte(a, 3)
      #expect(try cc.loadByte(a) == seen, "the parent's later write shows in the child")
      try cc.storeByte(a, 4)
      #expect(try r.cpu.loadByte(a) == 3, "the child's write shows in the parent")
      #expect(try cc.loadByte(a) == 4)
    }
  }

  // MARK: The faulters

  static func faulter(_ mm: AddressSpace, _ s: Shared, faulter f: Int, base: UInt64) {
    let cpu = try! CPU(mm: mm)
    var rng = SplitMix64(seed: 0xF0_4C + UInt64(f))
    let first = f * pagesPerFaulter
    let tag = UInt64(f + 1) << 56
    var seq: UInt64 = 0
    var shadow = [UInt64](repeating: 0, count: pagesPerFaulter)
    var stores = 0
    var pair: (UInt64, UInt64) = (0, 0)
    var afterDone = 0
    while !s.done.load(ordering: .acquiring) || afterDone < 50 {
      if s.done.load(ordering: .relaxed) { afterDone += 1 }
      // Now and then: unmap the churn pages and map them again (fresh, zero-filled).
      if stores % 97 == 96 {
        let cb = churnBase(base, faulter: f)
        s.epoch[f].wrappingAdd(1, ordering: .sequentiallyConsistent)
        for i in stablePages..<pagesPerFaulter {
          s.started[first + i].store(0, ordering: .sequentiallyConsistent)
          s.completed[first + i].store(0, ordering: .sequentiallyConsistent)
          shadow[i] = 0
        }
        do {
          try cpu.munmap(cb, UInt64(churnPages) * page)
          _ = try cpu.mmap(cb, UInt64(churnPages) * page, prot: rw, flags: anonPrivate | MapFlags.fixed)
        } catch {
          s.fail("faulter \(f): churn remap failed with \(error)")
        }
        s.epoch[f].wrappingAdd(1, ordering: .sequentiallyConsistent)
      }
      let i = Int(rng.next() % UInt64(pagesPerFaulter))
      let p = first + i
      let a = address(base, p)
      do {
        try withUnsafeMutableBytes(of: &pair) { try cpu.load(a, into: $0) }
        let expected = shadow[i]
        let want: (UInt64, UInt64) = expected == 0 ? (0, 0) : (expected, expected ^ pairKey)
        if pair != want {
          s.fail(
            "faulter \(f) page \(i): holds (\(hex(pair.0)), \(hex(pair.1))), last wrote \(hex(expected))"
              + (pair.0 & markerBit != 0 ? " (a child's marker)" : ""))
        }
        seq += 1
        let v = tag | seq
        s.started[p].store(v, ordering: .sequentiallyConsistent)
        pair = (v, v ^ pairKey)
        try withUnsafeBytes(of: &pair) { try cpu.store(a, from: $0) }
        s.completed[p].store(v, ordering: .sequentiallyConsistent)
        shadow[i] = v
      } catch {
        s.fail("faulter \(f) page \(i): access raised \(error)")
      }
      stores += 1
      s.progress[f].wrappingAdd(1, ordering: .relaxed)
    }
  }

  // MARK: The forker and the children's checks

  static func forker(_ mm: AddressSpace, _ s: Shared, base: UInt64) {
    defer { s.done.store(true, ordering: .releasing) }
    let total = s.pages
    var low = [UInt64](repeating: 0, count: total)
    var high = [UInt64](repeating: 0, count: total)
    var seen = [UInt64?](repeating: nil, count: total)
    var e1 = [UInt64](repeating: 0, count: faulters)
    var e2 = [UInt64](repeating: 0, count: faulters)
    var pair: (UInt64, UInt64) = (0, 0)
    for n in 0..<forks {
      // Let the faulters make progress (COW faults on the pages the last fork protected).
      let target = (0..<faulters).map { s.progress[$0].load(ordering: .relaxed) + 20 }
      var spins = 0
      while (0..<faulters).contains(where: { s.progress[$0].load(ordering: .relaxed) < target[$0] }) && spins < 20_000 {
        sched_yield()
        spins += 1
      }

      for f in 0..<faulters { e1[f] = s.epoch[f].load(ordering: .sequentiallyConsistent) }
      for p in 0..<total { low[p] = s.completed[p].load(ordering: .sequentiallyConsistent) }
      let child: AddressSpace
      do {
        child = try mm.fork()
      } catch {
        s.fail("fork \(n) failed with \(error)")
        return
      }
      for p in 0..<total { high[p] = s.started[p].load(ordering: .sequentiallyConsistent) }
      for f in 0..<faulters { e2[f] = s.epoch[f].load(ordering: .sequentiallyConsistent) }

      do {
        let cc = try! CPU(mm: child)
        let marker = markerBit | UInt64(n)
        for p in 0..<total {
          let f = p / pagesPerFaulter
          let churn = p % pagesPerFaulter >= stablePages
          let bounded = !churn || (e1[f] == e2[f] && e1[f] & 1 == 0)
          let a = address(base, p)
          seen[p] = nil
          do {
            try withUnsafeMutableBytes(of: &pair) { try cc.load(a, into: $0) }
          } catch {
            if bounded { s.fail("fork \(n): child load of page \(p) raised \(error)") }
            continue
          }
          let v = pair.0
          if pair != (0, 0) && pair.1 != v ^ pairKey {
            s.fail("fork \(n): child page \(p) torn: (\(hex(pair.0)), \(hex(pair.1)))")
            continue
          }
          if v != 0 && v >> 56 != UInt64(f + 1) {
            s.fail("fork \(n): child page \(p) holds a foreign value \(hex(v))")
            continue
          }
          seen[p] = v
          if bounded {
            s.checkedPages.wrappingAdd(1, ordering: .relaxed)
            if v < low[p] || v > high[p] {
              s.fail(
                "fork \(n) (\(mm.design)): child page \(p) holds \(hex(v)), expected within [\(hex(low[p])), \(hex(high[p]))]"
              )
            }
          }
        }
        // The child writes markers into every other page it could read.
        for p in stride(from: n % 2, to: total, by: 2) where seen[p] != nil {
          var m = (marker, marker ^ pairKey)
          do {
            try withUnsafeBytes(of: &m) { try cc.store(address(base, p), from: $0) }
            seen[p] = marker
          } catch {
            s.fail("fork \(n): child store to page \(p) raised \(error)")
          }
        }
        // Give the parent time to write (and COW) over the same pages, then look again.
        let later = (0..<faulters).map { s.progress[$0].load(ordering: .relaxed) + 10 }
        spins = 0
        while (0..<faulters).contains(where: { s.progress[$0].load(ordering: .relaxed) < later[$0] }) && spins < 20_000 {
          sched_yield()
          spins += 1
        }
        for p in 0..<total {
          guard let v = seen[p] else { continue }
          do {
            try withUnsafeMutableBytes(of: &pair) { try cc.load(address(base, p), into: $0) }
          } catch {
            s.fail("fork \(n): child reload of page \(p) raised \(error)")
            continue
          }
          let want: (UInt64, UInt64) = v == 0 ? (0, 0) : (v, v ^ pairKey)
          if pair != want {
            s.fail("fork \(n): child page \(p) changed from \(hex(v)) to \(hex(pair.0)) (the parent's write leaked?)")
          }
        }
      }
      child.destroy()
      if n % 8 == 7 { mm.machine.drainDeferredFrees() }
    }
  }
}

fileprivate func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
