import Faultline
import FaultlineTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Threads fault and access a region while another thread flips the key of its middle with
/// `pkey_mprotect` between an access-disabled key and key 0 (splitting the VMA in three and
/// merging it back each time), under every fault design, on `.x86PKU`.
///
/// The region is `pages` pages; pages `flipped` change key, the pages at either end stay on key
/// 0. Each accessor owns every `accessors`-th page, loads and stores an 8-byte value there, now
/// and then `MADV_DONTNEED`s one (so that faults keep coming, not only PTE hits), and now and
/// then changes its own PKRU for the key (open, write-disabled, access-disabled) with wrpkru.
///
/// The flipper bumps `phase` before and after each `pkey_mprotect`: with `phase` even, the
/// middle has key 0 when `phase % 4 == 0` and the key when `phase % 4 == 2`; odd means a change
/// is in flight. An accessor reads `phase` before and after each access. Invariant (DESIGN.md
/// 7 with keys): every access either completes or gets SEGV_PKUERR; a PKUERR carries the key,
/// at the accessed address, on a middle page, for an access the accessor's PKRU denies for the
/// key, and not when the middle had key 0 throughout the access; an access that PKRU denies
/// while the middle had the key throughout does not complete. Never ACCERR, MAPERR or SIGBUS;
/// a load reads what the owner last stored. After the run every frame comes back.
@Suite struct ProtectionKeyStressTests {
  static let pages = 8
  static let flipped = 2..<6
  static let accessors = 2
  static let flips = 300

  final class Shared: @unchecked Sendable {
    let base: UInt64
    let key: Int
    let phase = Atomic<UInt64>(0)
    let done = Atomic<Bool>(false)
    /// Per accessor: accesses done, so that the flipper waits for progress between flips.
    let progress: UnsafeMutablePointer<Atomic<UInt64>>
    let pkuErrors = Atomic<Int>(0)
    let deniedChecks = Atomic<Int>(0)
    let completedFlipped = Atomic<Int>(0)
    /// Accesses during which a flip was in flight or happened.
    let overlapping = Atomic<Int>(0)
    let violations = Atomic<Int>(0)
    let firstViolation = PThreadMutex()
    nonisolated(unsafe) var violationText = ""

    init(base: UInt64, key: Int) {
      self.base = base
      self.key = key
      progress = .allocate(capacity: ProtectionKeyStressTests.accessors)
      for i in 0..<ProtectionKeyStressTests.accessors { (progress + i).initialize(to: Atomic(0)) }
    }

    deinit { progress.deallocate() }

    var totalProgress: UInt64 {
      (0..<ProtectionKeyStressTests.accessors).reduce(0) { $0 + progress[$1].load(ordering: .relaxed) }
    }

    func fail(_ text: String) {
      if violations.wrappingAdd(1, ordering: .relaxed).oldValue == 0 {
        firstViolation.withLock { violationText = text }
      }
    }
  }

  /// An explicit loop over the designs (not FAULTLINE_DESIGN): the race differs in each.
  @Test func accessesRacingKeyFlipsGetPKUErrOnlyForAKeyTheVMAHad() throws {
    for design in FaultDesign.allCases {
      try withRig(design: design, profile: .x86PKU) { r throws in
        let clock = ContinuousClock()
        let t0 = clock.now
        let k = try r.cpu.pkeyAlloc(accessRights: PkeyAccessRights.disableAccess)
        let len = UInt64(Self.pages) * page
        let base = try r.cpu.mmap(0, len, prot: rw, flags: anonPrivate)
        // Written once, so that the VMA has its anon_vma and the speculative designs take
        // their own paths from the start.
        try r.cpu.fill(base, value: 0, count: Int(len))
        let shared = Shared(base: base, key: k)
        let mm = r.mm!

        runThreads(Self.accessors + 1) { t in
          if t == Self.accessors {
            Self.flipper(mm, shared)
          } else {
            Self.accessor(mm, shared, index: t)
          }
        }
        let text = shared.firstViolation.withLock { shared.violationText }
        #expect(shared.violations.load(ordering: .relaxed) == 0, "\(design): \(text)")
        #expect(shared.pkuErrors.load(ordering: .relaxed) > 0, "\(design): no access was ever denied")
        #expect(shared.deniedChecks.load(ordering: .relaxed) > 0, "\(design): no access ran within a stable keyed phase")
        #expect(shared.completedFlipped.load(ordering: .relaxed) > 0, "\(design): no access to a flipped page completed")
        #expect(shared.overlapping.load(ordering: .relaxed) > 0, "\(design): no access overlapped a flip")
        // An even number of flips leaves the middle on key 0, merged back into one VMA.
        #expect(r.mm.mapsLines().count == 1, "\(design)")
        #expect(r.mm.tree.findW(base + 2 * page)?.flags.pkey == 0)
        #expect(r.mm.tree.verify() == r.mm.mapCount)
        print(
          "ProtectionKeyStress \(design): \(Self.flips) flips, \(shared.pkuErrors.load(ordering: .relaxed)) PKUERR, "
            + "\(shared.completedFlipped.load(ordering: .relaxed)) flipped-page accesses completed, "
            + "\(shared.overlapping.load(ordering: .relaxed)) overlapping a flip, \(clock.now - t0)")
      }
    }
  }

  // MARK: The flipper

  static func flipper(_ mm: AddressSpace, _ s: Shared) {
    defer { s.done.store(true, ordering: .releasing) }
    let cpu = try! CPU(mm: mm)
    let from = s.base + UInt64(flipped.lowerBound) * page
    let len = UInt64(flipped.count) * page
    for n in 0..<flips {
      // Let the accessors run inside the stable phase first.
      // Spin rather than yield at once: on two cores sched_yield can give away a whole slice.
      let target = s.totalProgress + 16
      var spins = 0
      while s.totalProgress < target && spins < 1_000_000 {
        spins += 1
        if spins % 256 == 0 { sched_yield() }
      }
      s.phase.wrappingAdd(1, ordering: .sequentiallyConsistent)
      do {
        try cpu.pkeyMprotect(from, len, prot: rw, pkey: n % 2 == 0 ? s.key : 0)
      } catch {
        s.fail("flip \(n): pkey_mprotect failed with \(error)")
      }
      s.phase.wrappingAdd(1, ordering: .sequentiallyConsistent)
    }
  }

  // MARK: The accessors

  /// PKRU rights for the key: open, write-disabled, access-disabled.
  static let rightsCycle: [UInt32] = [0, 2, 1]

  static func accessor(_ mm: AddressSpace, _ s: Shared, index: Int) {
    let cpu = try! CPU(mm: mm)
    var rng = SplitMix64(seed: 0x9E_C0DE + UInt64(index))
    let mine = stride(from: index, to: pages, by: accessors).map { $0 }
    var shadow = [UInt64](repeating: 0, count: pages)
    let shift = UInt32(2 * s.key)
    var rights: UInt32 = 0
    let tag = UInt64(index + 1) << 56
    var seq: UInt64 = 0
    var ops = 0
    var afterDone = 0
    while !s.done.load(ordering: .acquiring) || afterDone < 20 {
      if s.done.load(ordering: .relaxed) { afterDone += 1 }
      ops += 1
      if ops % 16 == 1 {
        rights = rightsCycle[Int(rng.next() % 3)]
        do {
          try cpu.wrpkru((CPU.initPKRU & ~(3 << shift)) | (rights << shift))
        } catch {
          s.fail("accessor \(index): wrpkru failed with \(error)")
        }
      }
      let p = mine[Int(rng.next() % UInt64(mine.count))]
      let a = s.base + UInt64(p) * page + UInt64(index) * 8
      if ops % 29 == 0 {
        // Drop the page so that the next access faults (and reads zero).
        do {
          try cpu.madvise(s.base + UInt64(p) * page, page, advice: Advice.dontNeed)
          shadow[p] = 0
        } catch {
          s.fail("accessor \(index): MADV_DONTNEED failed with \(error)")
        }
      }
      let write = rng.next() & 1 == 0
      let denied = write ? rights != 0 : rights == 1
      let keyed = flipped.contains(p)
      var value: UInt64 = 0
      let c0 = s.phase.load(ordering: .sequentiallyConsistent)
      var result: Signal?
      do {
        if write {
          seq += 1
          value = tag | seq
          try withUnsafeBytes(of: &value) { try cpu.store(a, from: $0) }
        } else {
          try withUnsafeMutableBytes(of: &value) { try cpu.load(a, into: $0) }
        }
      } catch let signal as Signal {
        result = signal
      } catch {
        s.fail("accessor \(index): \(error)")
      }
      let c1 = s.phase.load(ordering: .sequentiallyConsistent)
      s.progress[index].wrappingAdd(1, ordering: .relaxed)
      let stable = c0 == c1 && c0 & 1 == 0
      let zeroThroughout = !keyed || (stable && c0 % 4 == 0)
      let keyThroughout = keyed && stable && c0 % 4 == 2
      let what = "accessor \(index) \(write ? "store" : "load") page \(p) rights \(rights) phase \(c0)..\(c1)"
      switch result {
      case nil:
        if keyed { s.completedFlipped.wrappingAdd(1, ordering: .relaxed) }
        if keyThroughout && denied {
          s.fail("\(what): completed although PKRU denied the key the VMA had throughout")
        }
        if write {
          shadow[p] = value
        } else if value != shadow[p] {
          s.fail("\(what): read \(value), last stored \(shadow[p])")
        }
      case .sigsegv(.pkuErr(let key), let addr)?:
        s.pkuErrors.wrappingAdd(1, ordering: .relaxed)
        if key != s.key || addr != a || zeroThroughout || !denied {
          s.fail("\(what): SEGV_PKUERR key \(key) at 0x\(String(addr, radix: 16)) (expected key \(s.key) at 0x\(String(a, radix: 16)))")
        }
      case let signal?:
        s.fail("\(what): \(signal)")
      }
      if keyThroughout && denied { s.deniedChecks.wrappingAdd(1, ordering: .relaxed) }
      if !stable && keyed { s.overlapping.wrappingAdd(1, ordering: .relaxed) }
    }
  }
}
