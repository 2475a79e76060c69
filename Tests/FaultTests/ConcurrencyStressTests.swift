import Faultline
import FaultlineTestSupport
import Synchronization
import Testing

/// Faulting threads race a thread that mmaps, munmaps, mprotects and mremaps the same window, and the
/// DESIGN.md invariants are checked as they go:
/// 1. once munmap(r) returns, no PTE maps an address in r;
/// 2. once mprotect(r, PROT_READ) returns, no PTE in r is writable;
/// 3. no mapped frame is free, and after teardown every frame is free;
/// 7. an access that overlapped no change delivers exactly Linux's result (value or signal).
@Suite struct ConcurrencyStressTests {
  /// Page states published by the mutator.
  enum State: UInt8 { case unmapped = 0, readWrite = 1, readOnly = 2 }

  static let churnPages = 48
  static let stablePagesPerThread = 4
  static let mutatorOps = 400
  static let faulters = 2

  final class Shared: @unchecked Sendable {
    let base: UInt64
    /// Even while no change is in progress; odd during one.
    let sequence = Atomic<UInt64>(0)
    let states: UnsafeMutablePointer<Atomic<UInt8>>
    let done = Atomic<Bool>(false)
    let checkedAccesses = Atomic<Int>(0)
    /// Successful mremap moves and resizes (the mutator's only).
    var moves = 0
    var resizes = 0
    let violations = Atomic<Int>(0)
    let firstViolation = PThreadMutex()
    nonisolated(unsafe) var violationText = ""

    init(base: UInt64, pages: Int) {
      self.base = base
      states = .allocate(capacity: pages)
      for i in 0..<pages { (states + i).initialize(to: Atomic(0)) }
    }
    deinit { states.deallocate() }

    func fail(_ text: String) {
      if violations.wrappingAdd(1, ordering: .relaxed).oldValue == 0 {
        firstViolation.withLock { violationText = text }
      }
    }
  }

  @Test(arguments: FaultDesign.allCases)
  func faultsRacingMmapMunmapMprotectKeepInvariants(design: FaultDesign) throws {
    try withRig(memoryBytes: 32 << 20, design: design) { r in
      let mm = r.mm!
      // The churn window sits below the stable pages, at a fixed place the mutator owns.
      let base: UInt64 = 0x4000_0000
      let stableBase = base + UInt64(Self.churnPages + 16) * page
      let shared = Shared(base: base, pages: Self.churnPages)
      let stableLen = UInt64(Self.faulters * Self.stablePagesPerThread) * page
      _ = try r.cpu.mmap(stableBase, stableLen, prot: rw, flags: anonPrivate | MapFlags.fixed)

      runThreads(Self.faulters + 1) { t in
        if t == Self.faulters {
          Self.mutator(mm, shared)
        } else {
          Self.faulter(mm, shared, thread: t, stableBase: stableBase)
        }
      }
      let text = shared.firstViolation.withLock { shared.violationText }
      #expect(shared.violations.load(ordering: .relaxed) == 0, "\(text)")
      #expect(shared.checkedAccesses.load(ordering: .relaxed) > 0, "no access overlapped a quiet period")
      #expect(shared.moves > 0 && shared.resizes > 0, "mremap never succeeded: \(shared.moves) moves, \(shared.resizes) resizes")
      #expect(r.mm.tree.verify() == r.mm.mapCount)
    }
  }

  static func mutator(_ mm: AddressSpace, _ s: Shared) {
    let cpu = try! CPU(mm: mm)
    var rng = SplitMix64(seed: 0xFA17)
    let n = UInt64(churnPages)
    for _ in 0..<mutatorOps {
      let first = rng.next() % n
      let count = 1 + rng.next() % min(8, n - first)
      let addr = s.base + first * page
      let len = count * page
      let op = rng.next() % 6
      // A destination for a move: inside the window, not overlapping the source.
      let dstFirst = rng.next() % (n - count + 1)
      let dst = s.base + dstFirst * page
      s.sequence.wrappingAdd(1, ordering: .sequentiallyConsistent)
      do {
        switch op {
        case 0:
          _ = try cpu.mmap(addr, len, prot: rw, flags: anonPrivate | MapFlags.fixed)
        case 1:
          try cpu.munmap(addr, len)
          // Invariant 1.
          for p in 0..<count where !mm.pageTable.pte(at: addr + p * page).isNone {
            s.fail("PTE left at 0x\(String(addr + p * page, radix: 16)) after munmap")
          }
        case 2:
          try cpu.mprotect(addr, len, prot: Prot.read)
          // Invariant 2.
          for p in 0..<count where mm.pageTable.pte(at: addr + p * page).isWritable {
            s.fail("writable PTE at 0x\(String(addr + p * page, radix: 16)) after mprotect(PROT_READ)")
          }
        case 3:
          try cpu.mprotect(addr, len, prot: rw)
        case 4:
          // A pure move of every VMA in the range (EFAULT when it starts in a hole).
          guard dst + len <= addr || dst >= addr + len else { break }
          _ = try cpu.mremap(addr, len, len, flags: MremapFlags.mayMove | MremapFlags.fixed, newAddress: dst)
          s.moves += 1
          // Invariant 1 for the source: it was unmapped.
          for p in 0..<count where !mm.pageTable.pte(at: addr + p * page).isNone {
            s.fail("PTE left at 0x\(String(addr + p * page, radix: 16)) after mremap moved it away")
          }
        default:
          // Resize in place: shrinking always works, growing only into a hole.
          let newCount = 1 + rng.next() % min(8, n - first)
          _ = try cpu.mremap(addr, len, newCount * page, flags: 0)
          s.resizes += 1
          for p in newCount..<max(newCount, count) where !mm.pageTable.pte(at: addr + p * page).isNone {
            s.fail("PTE left at 0x\(String(addr + p * page, radix: 16)) after mremap shrank it away")
          }
        }
      } catch {
        // mprotect over a hole fails with ENOMEM after changing what precedes the hole; mremap
        // fails with EFAULT on a hole or a range crossing a VMA's end, and ENOMEM when it
        // cannot grow in place.
        let allowed: Bool
        switch op {
        case 2, 3: allowed = error == .noMemory
        case 4: allowed = error == .badAddress
        case 5: allowed = error == .badAddress || error == .noMemory
        default: allowed = false
        }
        if !allowed { s.fail("unexpected errno \(error) for op \(op)") }
      }
      resync(mm, s)
      checkFrames(mm, s)
      s.sequence.wrappingAdd(1, ordering: .sequentiallyConsistent)
    }
    s.done.store(true, ordering: .releasing)
  }

  /// Recomputes the published states from the VMAs (after a partial mprotect).
  static func resync(_ mm: AddressSpace, _ s: Shared) {
    for p in 0..<churnPages {
      let a = s.base + UInt64(p) * page
      var st = State.unmapped
      for line in mm.mapsLines() {
        let f = line.split(separator: " ")
        let range = f[0].split(separator: "-").map { UInt64($0, radix: 16)! }
        if a >= range[0] && a < range[1] { st = f[1].hasPrefix("rw") ? .readWrite : .readOnly }
      }
      s.states[p].store(st.rawValue, ordering: .relaxed)
    }
  }

  /// Invariant 3 while running: every frame a PTE maps is referenced and mapped, never free.
  static func checkFrames(_ mm: AddressSpace, _ s: Shared) {
    let memory = mm.machine.memory
    for p in 0..<churnPages {
      let a = s.base + UInt64(p) * page
      let e = mm.pageTable.pte(at: a)
      if !e.mapsFrame || e.isSpecial { continue }
      let m = memory.meta(e.pfn)
      if m.refcount == 0 || m.mapcount == 0 || m.flags.contains(.free) {
        s.fail("mapped frame \(e.pfn) at 0x\(String(a, radix: 16)) has refcount \(m.refcount) mapcount \(m.mapcount)")
      }
      if Int(e.pfn.raw) >= memory.frameCount { s.fail("PTE names a frame outside the arena") }
      if (s.states[p].load(ordering: .relaxed) == State.unmapped.rawValue) {
        s.fail("PTE present at 0x\(String(a, radix: 16)) in an unmapped page")
      }
    }
  }

  static func faulter(_ mm: AddressSpace, _ s: Shared, thread: Int, stableBase: UInt64) {
    let cpu = try! CPU(mm: mm)
    var rng = SplitMix64(seed: 77 + UInt64(thread))
    let mine = stableBase + UInt64(thread * stablePagesPerThread) * page
    var shadow = [UInt8](repeating: 0, count: stablePagesPerThread)
    var iterations = 0
    // Keep going for a while after the mutator is done, so that some accesses meet a quiet
    // window however the threads were scheduled (under TSan every access may otherwise overlap
    // a change).
    var afterDone = 0
    while !s.done.load(ordering: .acquiring) || iterations < 1000 || afterDone < 200 {
      if s.done.load(ordering: .relaxed) { afterDone += 1 }
      iterations += 1
      // Stable pages: only this thread writes them, so every value is exact.
      let sp = Int(rng.next() % UInt64(stablePagesPerThread))
      let sa = mine + UInt64(sp) * page + rng.next() % page
      do {
        if rng.next() % 2 == 0 {
          shadow[sp] &+= 1
          try cpu.fill(mine + UInt64(sp) * page, value: shadow[sp], count: Int(page))
        } else if try cpu.loadByte(sa) != shadow[sp] {
          s.fail("stable page \(sp) of thread \(thread) lost a store")
        }
      } catch {
        s.fail("stable access raised \(error)")
      }
      // Churn pages: any outcome is legal while a change overlaps; none otherwise.
      let p = Int(rng.next() % UInt64(churnPages))
      let a = s.base + UInt64(p) * page + rng.next() % page
      let write = rng.next() % 2 == 0
      let before = s.sequence.load(ordering: .sequentiallyConsistent)
      // The page's state is read inside the window the sequence checks bound: read after the
      // closing check, it could already be the next change's.
      let state = State(rawValue: s.states[p].load(ordering: .sequentiallyConsistent))!
      var result: Signal?
      do {
        if write { try cpu.storeByte(a, UInt8(truncatingIfNeeded: thread + 1)) } else { _ = try cpu.loadByte(a) }
      } catch {
        result = error
      }
      let after = s.sequence.load(ordering: .sequentiallyConsistent)
      if before != after || before & 1 == 1 { continue }
      s.checkedAccesses.wrappingAdd(1, ordering: .relaxed)
      let expected: Signal?
      switch state {
      case .unmapped: expected = .sigsegv(.mapErr, address: a)
      case .readOnly: expected = write ? .sigsegv(.accErr, address: a) : nil
      case .readWrite: expected = nil
      }
      if result != expected {
        s.fail("\(write ? "store" : "load") at 0x\(String(a, radix: 16)) in a \(state) page gave \(String(describing: result)), expected \(String(describing: expected))")
      }
    }
  }
}
