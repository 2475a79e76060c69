import Faultline
import FaultlineTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A fixed 2 MiB-aligned place for the mapping under test (below `mmap_base`, away from where
/// a hint-less mmap would place things).
let testBase: UInt64 = 0x4000_0000

/// Maps `pages` private read-write pages at `testBase` and writes page 0, which (through the
/// `mmap_lock` fallback) gives the VMA its anon_vma and allocates the page-table levels of the
/// first 2 MiB. Later faults on other pages of that region can then complete speculatively.
@discardableResult
func mapPrepared(_ r: Rig, pages: UInt64 = 8) throws -> UInt64 {
  let base = try r.cpu.mmap(testBase, pages * page, prot: rw, flags: anonPrivate | MapFlags.fixed)
  try r.cpu.storeByte(base, 0x11)
  return base
}

// MARK: Speculative aborts

/// Forces every `SPFAbort` reason of the speculative designs (SPF v12 `.speculative`, Lespinasse
/// `.sequenced`) deterministically from one thread, checks the exact counter increments, and
/// checks that the `mmap_lock` fallback gives Linux's result.
///
/// Not covered: an odd `vmSequence`/`mmapSeq` at lookup (needs a writer paused inside its
/// `mmap_lock` hold; there is no writer-side hook), so `vmaChanged` is forced through the later
/// re-checks instead.
@Suite struct SpeculativeAbortTests {
  static let designs: [FaultDesign] = [.speculative, .sequenced]

  // MARK: vmaNoAnon

  @Test(arguments: designs)
  func firstWriteToAFreshPrivateMappingAbortsNoAnonThenTheNextPageIsSpeculative(design: FaultDesign) throws {
    try withRig(design: design) { r in
      let a = try r.cpu.mmap(testBase, 4 * page, prot: rw, flags: anonPrivate | MapFlags.fixed)
      let first = try counterDelta(r) { try r.cpu.storeByte(a + 3, 0xA1) }
      #expect(first == [.pgfault: 1, .spfVmaNoAnon: 1])
      // Same VMA (now with an anon_vma), same PTE table: no lock needed.
      let second = try counterDelta(r) { try r.cpu.storeByte(a + page + 7, 0xB2) }
      #expect(second == [.pgfault: 1, .speculativePgfault: 1])
      #expect(try r.cpu.loadByte(a + 3) == 0xA1)
      #expect(try r.cpu.loadByte(a + page + 7) == 0xB2)
    }
  }

  @Test(arguments: designs)
  func firstReadOfAFreshPrivateMappingAbortsNoAnonAndMapsTheZeroPage(design: FaultDesign) throws {
    try withRig(design: design) { r in
      let a = try r.cpu.mmap(testBase, 4 * page, prot: rw, flags: anonPrivate | MapFlags.fixed)
      var v: UInt8 = 0xFF
      let d = try counterDelta(r) { v = try r.cpu.loadByte(a + 100) }
      #expect(d == [.pgfault: 1, .spfVmaNoAnon: 1])
      #expect(v == 0)
      #expect(r.mm.pageTable.pte(at: a).pfn == PFN.zero)
    }
  }

  // MARK: vmaNotSup

  @Test(arguments: designs)
  func sharedAnonymousMappingAbortsNotSupOnEveryFaultAndFallbackWorks(design: FaultDesign) throws {
    try withRig(design: design) { r in
      let a = try r.cpu.mmap(testBase, 4 * page, prot: rw, flags: anonShared | MapFlags.fixed)
      let w = try counterDelta(r) { try r.cpu.storeByte(a + 5, 0x5A) }
      #expect(w == [.pgfault: 1, .spfVmaNotSup: 1])
      // Not a one-time condition: every fault on shmem aborts.
      var v: UInt8 = 0xFF
      let rd = try counterDelta(r) { v = try r.cpu.loadByte(a + page) }
      #expect(rd == [.pgfault: 1, .spfVmaNotSup: 1])
      #expect(v == 0)
      #expect(try r.cpu.loadByte(a + 5) == 0x5A)
    }
  }

  @Test(arguments: designs)
  func growsDownMappingAbortsNotSupOnEveryFaultAndFallbackWorks(design: FaultDesign) throws {
    try withRig(design: design) { r in
      let a = try r.cpu.mmap(testBase, 4 * page, prot: rw, flags: anonPrivate | MapFlags.fixed | MapFlags.growsDown)
      let first = try counterDelta(r) { try r.cpu.storeByte(a + 2 * page, 0x21) }
      #expect(first == [.pgfault: 1, .spfVmaNotSup: 1])
      // The anon_vma exists now and the PTE table too; VM_GROWSDOWN still aborts.
      let second = try counterDelta(r) { try r.cpu.storeByte(a + 3 * page, 0x31) }
      #expect(second == [.pgfault: 1, .spfVmaNotSup: 1])
      #expect(try r.cpu.loadByte(a + 2 * page) == 0x21)
      #expect(try r.cpu.loadByte(a + 3 * page) == 0x31)
    }
  }

  // MARK: vmaAccess

  @Test(arguments: designs)
  func storeToAReadOnlyMappingAbortsAccessAndFallbackIsSegvAccErr(design: FaultDesign) throws {
    try withRig(design: design) { r in
      let a = try r.cpu.mmap(testBase, 2 * page, prot: Prot.read, flags: anonPrivate | MapFlags.fixed)
      // Fresh VMA: the access check comes before the anon_vma check.
      let d = counterDelta(r) {
        #expect(throws: Signal.sigsegv(.accErr, address: a + 9)) { try r.cpu.storeByte(a + 9, 1) }
      }
      #expect(d == [.pgfault: 1, .spfVmaAccess: 1, .segvAccerr: 1])
      #expect(r.mm.pageTable.pte(at: a).isNone)
    }
  }

  @Test(arguments: designs)
  func storeAfterMprotectReadOnlyWithAnonVMAAbortsAccess(design: FaultDesign) throws {
    try withRig(design: design) { r in
      let a = try mapPrepared(r, pages: 4)
      try r.cpu.mprotect(a, 4 * page, prot: Prot.read)
      // Page 0 is present but read-only now; page 1 is untouched. Both abort with vmaAccess.
      for target in [a + 17, a + page + 17] {
        let d = counterDelta(r) {
          #expect(throws: Signal.sigsegv(.accErr, address: target)) { try r.cpu.storeByte(target, 2) }
        }
        #expect(d == [.pgfault: 1, .spfVmaAccess: 1, .segvAccerr: 1])
      }
      #expect(try r.cpu.loadByte(a) == 0x11)
    }
  }

  @Test(arguments: designs)
  func loadFromAProtNoneMappingAbortsAccess(design: FaultDesign) throws {
    try withRig(design: design) { r in
      let a = try r.cpu.mmap(testBase, page, prot: Prot.none, flags: anonPrivate | MapFlags.fixed)
      let d = counterDelta(r) {
        #expect(throws: Signal.sigsegv(.accErr, address: a + 1)) { try r.cpu.loadByte(a + 1) }
      }
      #expect(d == [.pgfault: 1, .spfVmaAccess: 1, .segvAccerr: 1])
    }
  }

  // MARK: vmaMiss

  @Test(arguments: designs)
  func loadAboveEveryVMAAbortsMissAndFallbackIsSegvMapErr(design: FaultDesign) throws {
    try withRig(design: design) { r in
      _ = try mapPrepared(r, pages: 2)
      let hole: UInt64 = 0x7000_0000_0123
      let d = counterDelta(r) {
        #expect(throws: Signal.sigsegv(.mapErr, address: hole)) { try r.cpu.loadByte(hole) }
      }
      #expect(d == [.pgfault: 1, .spfVmaMiss: 1, .segvMaperr: 1])
    }
  }

  /// An address in a hole below a VMA: `find_vma` returns the VMA above. Lespinasse's design
  /// counts it as a miss; the SPF v12 design keeps v12's tracing, where an address outside the
  /// VMA it found is `spf_vma_changed` (`SpeculativeFaults.swift`). Either way the fallback
  /// delivers SEGV_MAPERR.
  @Test(arguments: designs)
  func loadFromAHoleBelowAVMAAbortsAndFallbackIsSegvMapErr(design: FaultDesign) throws {
    try withRig(design: design) { r in
      _ = try mapPrepared(r, pages: 2)
      let hole = testBase - 5 * page + 3
      let d = counterDelta(r) {
        #expect(throws: Signal.sigsegv(.mapErr, address: hole)) { try r.cpu.loadByte(hole) }
      }
      let reason: VMStatItem = design == .sequenced ? .spfVmaMiss : .spfVmaChanged
      #expect(d == [.pgfault: 1, reason: 1, .segvMaperr: 1])
    }
  }

  // MARK: pteAlloc

  @Test(arguments: designs)
  func firstFaultInANewPMDRegionAbortsPteAlloc(design: FaultDesign) throws {
    try withRig(design: design) { r in
      // One VMA over two 2 MiB regions; page 0 prepares the anon_vma and the first region's table.
      let a = try r.cpu.mmap(testBase, 2 * PageTable.pmdSize, prot: rw, flags: anonPrivate | MapFlags.fixed)
      try r.cpu.storeByte(a, 1)
      let target = a + PageTable.pmdSize + 3 * page
      #expect(r.mm.pageTable.lookupPTE(target) == nil)
      let d = try counterDelta(r) { try r.cpu.storeByte(target, 0x77) }
      #expect(d == [.pgfault: 1, .spfPteAlloc: 1])
      #expect(try r.cpu.loadByte(target) == 0x77)
      // The fallback allocated the table: the next page of that region is speculative.
      let next = try counterDelta(r) { try r.cpu.storeByte(target + page, 0x78) }
      #expect(next == [.pgfault: 1, .speculativePgfault: 1])
    }
  }

  @Test(arguments: designs)
  func speculativeAllocatesTablesTurnsThePteAllocAbortIntoASpeculativeFault(design: FaultDesign) throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.speculativeAllocatesTables = true
    try withRig(config: config, design: design) { r in
      let a = try r.cpu.mmap(testBase, 2 * PageTable.pmdSize, prot: rw, flags: anonPrivate | MapFlags.fixed)
      try r.cpu.storeByte(a, 1)
      let target = a + PageTable.pmdSize + 3 * page
      #expect(r.mm.pageTable.lookupPTE(target) == nil)
      let d = try counterDelta(r) { try r.cpu.storeByte(target, 0x77) }
      #expect(d == [.pgfault: 1, .speculativePgfault: 1])
      #expect(r.mm.pageTable.lookupPTE(target) != nil)
      #expect(try r.cpu.loadByte(target) == 0x77)
    }
  }

  // MARK: vmaChanged

  /// An `mprotect` of another page of the same VMA while the fault has its page prepared: SPF
  /// sees the VMA's `vmSequence` move (the split adjusts the VMA), Lespinasse sees `mmapSeq` move.
  @Test(arguments: designs)
  func mprotectOfAnotherPageBeforePteMapLockAbortsVmaChanged(design: FaultDesign) throws {
    try withRig(design: design) { r in
      let a = try mapPrepared(r, pages: 4)
      let target = a + page
      let mm = r.mm!
      let s = HookState()
      mm.faultHook = { point, addr in
        s.noteAbort(point)
        guard point == .beforePTEMapLock, addr == target, s.fire() else { return }
        do { try CPU(mm: mm).mprotect(a + 3 * page, page, prot: Prot.read) } catch { s.failures.add(1, ordering: .relaxed) }
      }
      let d = try counterDelta(r) { try r.cpu.storeByte(target + 1, 0xC3) }
      mm.faultHook = nil
      #expect(d == [.pgfault: 1, .spfVmaChanged: 1])
      #expect(s.acted.load(ordering: .relaxed) == 1)
      #expect(s.failures.load(ordering: .relaxed) == 0)
      #expect(s.lastAbort.load(ordering: .relaxed) == SPFAbort.vmaChanged.rawValue)
      #expect(try r.cpu.loadByte(target + 1) == 0xC3)
      // The mprotect did happen.
      #expect(throws: Signal.sigsegv(.accErr, address: a + 3 * page)) { try r.cpu.storeByte(a + 3 * page, 1) }
    }
  }

  /// The same change made right after the lookup is caught by the check before the page-table
  /// walk instead of at `pteMapLock`.
  @Test(arguments: designs)
  func mprotectOfAnotherPageAfterLookupAbortsVmaChanged(design: FaultDesign) throws {
    try withRig(design: design) { r in
      let a = try mapPrepared(r, pages: 4)
      let target = a + 2 * page
      let mm = r.mm!
      let s = HookState()
      mm.faultHook = { point, addr in
        s.noteAbort(point)
        guard point == .afterLookup, addr == target, s.fire() else { return }
        do { try CPU(mm: mm).mprotect(a + 3 * page, page, prot: Prot.read) } catch { s.failures.add(1, ordering: .relaxed) }
      }
      let d = try counterDelta(r) { try r.cpu.storeByte(target, 0xC4) }
      mm.faultHook = nil
      #expect(d == [.pgfault: 1, .spfVmaChanged: 1])
      #expect(s.acted.load(ordering: .relaxed) == 1)
      #expect(s.failures.load(ordering: .relaxed) == 0)
      #expect(try r.cpu.loadByte(target) == 0xC4)
    }
  }

  /// An `mmap` of an unrelated region while the fault is in flight: Lespinasse's mm-wide
  /// `mmapSeq` aborts the fault; SPF v12's per-VMA `vmSequence` does not, and the fault
  /// completes speculatively.
  @Test(arguments: designs)
  func unrelatedMmapAbortsOnlyTheSequencedDesign(design: FaultDesign) throws {
    try withRig(design: design) { r in
      let a = try mapPrepared(r, pages: 4)
      let target = a + page
      let elsewhere = testBase + 64 * PageTable.pmdSize
      let mm = r.mm!
      let s = HookState()
      mm.faultHook = { point, addr in
        guard point == .beforePTEMapLock, addr == target, s.fire() else { return }
        do {
          _ = try CPU(mm: mm).mmap(elsewhere, page, prot: rw, flags: anonPrivate | MapFlags.fixed)
        } catch { s.failures.add(1, ordering: .relaxed) }
      }
      let d = try counterDelta(r) { try r.cpu.storeByte(target, 0xD5) }
      mm.faultHook = nil
      if design == .sequenced {
        #expect(d == [.pgfault: 1, .spfVmaChanged: 1])
      } else {
        #expect(d == [.pgfault: 1, .speculativePgfault: 1])
      }
      #expect(s.failures.load(ordering: .relaxed) == 0)
      #expect(try r.cpu.loadByte(target) == 0xD5)
      #expect(r.mm.mapCount == 2)
    }
  }

  /// The key semantic of the speculative designs: `munmap` of the faulting VMA, made while the
  /// fault has its page prepared and holds no lock, completes first. The fault notices at
  /// `pteMapLock`, installs nothing, and its `mmap_lock` retry finds no VMA: SIGSEGV MAPERR.
  /// (Run from the faulting thread, which under `.mmapLock`/`.perVMALock` would self-deadlock;
  /// `SpeculativeAbortTests.MunmapOrderingTests` runs those with two threads.)
  @Test(arguments: designs)
  func munmapOfTheFaultingVMABeforePteMapLockOvertakesTheFault(design: FaultDesign) throws {
    try withRig(design: design) { r in
      let a = try mapPrepared(r, pages: 4)
      let target = a + page
      let mm = r.mm!
      let s = HookState()
      mm.faultHook = { point, addr in
        s.noteAbort(point)
        guard point == .beforePTEMapLock, addr == target, s.fire() else { return }
        do { try mm.munmap(a, 4 * page) } catch { s.failures.add(1, ordering: .relaxed) }
      }
      let d = counterDelta(r) {
        #expect(throws: Signal.sigsegv(.mapErr, address: target + 8)) { try r.cpu.storeByte(target + 8, 0xE6) }
      }
      mm.faultHook = nil
      #expect(d == [.pgfault: 1, .spfVmaChanged: 1, .segvMaperr: 1])
      #expect(s.acted.load(ordering: .relaxed) == 1)
      #expect(s.failures.load(ordering: .relaxed) == 0)
      #expect(s.aborts.load(ordering: .relaxed) == 1)
      #expect(s.lastAbort.load(ordering: .relaxed) == SPFAbort.vmaChanged.rawValue)
      #expect(r.mm.pageTable.pte(at: target).isNone)
      #expect(r.mm.pageTable.pte(at: a).isNone)
      #expect(r.mm.mapCount == 0)
    }
  }

  // MARK: pmdChanged

  /// No system call changes a PMD while leaving the VMA (and `mmapSeq`) alone: a PTE table is
  /// freed only when no VMA needs it. This flips the hardware-maintained accessed bit of the PMD
  /// entry directly (the table it points at is the same), which `pmd_same` sees as a change,
  /// and restores it when the fault reports the abort.
  @Test(arguments: designs)
  func pmdValueChangeBeforePteMapLockAbortsPmdChanged(design: FaultDesign) throws {
    try withRig(design: design) { r in
      let a = try mapPrepared(r, pages: 4)
      let target = a + page
      let mm = r.mm!
      let s = HookState()
      mm.faultHook = { point, addr in
        s.noteAbort(point)
        if point == .aborted(.pmdChanged), addr & ~0xFFF == target {
          mm.pageTable.lookupPMD(target)!.pointee.store(s.saved.load(ordering: .relaxed), ordering: .releasing)
          return
        }
        guard point == .beforePTEMapLock, addr == target, s.fire() else { return }
        let pmd = mm.pageTable.lookupPMD(target)!
        let orig = pmd.pointee.load(ordering: .acquiring)
        s.saved.store(orig, ordering: .relaxed)
        pmd.pointee.store(orig ^ PTE.accessed, ordering: .releasing)
      }
      let d = try counterDelta(r) { try r.cpu.storeByte(target, 0xF7) }
      mm.faultHook = nil
      #expect(d == [.pgfault: 1, .spfPmdChanged: 1])
      #expect(s.lastAbort.load(ordering: .relaxed) == SPFAbort.pmdChanged.rawValue)
      #expect(r.mm.pageTable.lookupPMD(target)!.pointee.load(ordering: .relaxed) == s.saved.load(ordering: .relaxed))
      #expect(try r.cpu.loadByte(target) == 0xF7)
    }
  }

  // MARK: ptlBusy

  @Test(arguments: designs)
  func heldPTLAbortsPtlBusyAndTheLockedRetryInstalls(design: FaultDesign) throws {
    try withRig(design: design) { r in
      let a = try mapPrepared(r, pages: 4)
      let target = a + page
      let mm = r.mm!
      let s = HookState()
      mm.faultHook = { point, addr in
        s.noteAbort(point)
        if point == .aborted(.ptlBusy), addr & ~0xFFF == target {
          mm.pageTable.ptl(for: mm.pageTable.lookupPTE(target)!).unlock()
          return
        }
        guard point == .beforePTEMapLock, addr == target, s.fire() else { return }
        mm.pageTable.ptl(for: mm.pageTable.lookupPTE(target)!).lock()
      }
      let d = try counterDelta(r) { try r.cpu.storeByte(target + 2, 0x99) }
      mm.faultHook = nil
      #expect(d == [.pgfault: 1, .spfPtlBusy: 1])
      #expect(s.aborts.load(ordering: .relaxed) == 1)
      #expect(!r.mm.pageTable.ptl(for: r.mm.pageTable.lookupPTE(target)!).isLocked)
      #expect(try r.cpu.loadByte(target + 2) == 0x99)
    }
  }

  // MARK: Trace

  @Test(arguments: designs)
  func abortIsTracedInFtraceFormat(design: FaultDesign) throws {
    try withRig(design: design) { r in
      let a = try r.cpu.mmap(testBase, 2 * page, prot: rw, flags: anonPrivate | MapFlags.fixed)
      r.machine.trace.enabled = true
      _ = r.machine.trace.drain()
      try r.cpu.storeByte(a + 0x10, 1)
      // A speculative success is not traced.
      try r.cpu.storeByte(a + page, 2)
      let lines = r.machine.trace.drain()
      r.machine.trace.enabled = false
      #expect(lines.count == 1)
      let prefix = "spf_vma_noanon: addr=0x\(String(a + 0x10, radix: 16)) design=\(design.rawValue) tid="
      let line = lines.first ?? ""
      #expect(line.hasPrefix(prefix), "\(line)")
      let tid = line.hasPrefix(prefix) ? Int(line.dropFirst(prefix.count)) : nil
      #expect(tid != nil && tid! > 0, "\(line)")
    }
  }

  @Test func traceIsOffByDefault() throws {
    try withRig(design: .speculative) { r in
      let a = try r.cpu.mmap(testBase, page, prot: rw, flags: anonPrivate | MapFlags.fixed)
      try r.cpu.storeByte(a, 1)
      #expect(r.machine.vmstat[.spfVmaNoAnon] == 1)
      #expect(r.machine.trace.drain().isEmpty)
    }
  }
}

// MARK: munmap against a fault in flight, two threads

extension SpeculativeAbortTests {
  /// Thread A faults on a page and pauses at `.beforePTEMapLock` (its page prepared, holding what
  /// its design holds across the fault body); thread B then calls `munmap` on the whole VMA.
  ///
  /// - `.mmapLock`: A holds `mmap_lock` for read, so B's `munmap` cannot take it for write and
  ///   does not return while A is paused. Released, A installs its page and its fault returns
  ///   `.ok`; then B's `munmap` runs and zaps it.
  /// - `.perVMALock`: A holds the VMA's read lock; B's `vma_start_write` waits for it. Same order.
  /// - `.speculative`, `.sequenced`: A holds nothing (a VMA reference at most), so B's `munmap`
  ///   returns while A is still paused. Released, A's `pteMapLock` sees the VMA detached (or
  ///   `mmapSeq` moved), aborts with `vmaChanged`, and the `mmap_lock` retry finds no VMA:
  ///   SIGSEGV MAPERR. Linux with SPF orders them the same way.
  ///
  /// In every design no PTE is left in the range once both have finished. The "B has not
  /// returned" check for the blocking designs is a bounded observation (50 ms) of an ordering,
  /// not a timing claim; the "B returned" check for the speculative ones waits up to 10 s.
  @Suite struct MunmapOrderingTests {
    final class Shared: Sendable {
      let paused = Atomic<Bool>(false)
      let release = Atomic<Bool>(false)
      let armed = Atomic<Bool>(true)
      let bReturned = Atomic<Bool>(false)
      let bReturnedWhileAPaused = Atomic<Int>(-1)
      let munmapFailed = Atomic<Bool>(false)
      let timeouts = Atomic<Int>(0)
      let aborts = Atomic<Int>(0)
      let outcome = Locked<FaultOutcome?>(nil)
    }

    @Test(arguments: FaultDesign.allCases)
    func munmapWaitsForOrOvertakesAPausedFault(design: FaultDesign) throws {
      try withRig(design: design) { r in
        let a = try mapPrepared(r, pages: 4)
        let target = a + page
        let mm = r.mm!
        let s = Shared()
        let overtakes = design == .speculative || design == .sequenced
        mm.faultHook = { point, addr in
          if case .aborted = point { s.aborts.add(1, ordering: .relaxed) }
          guard point == .beforePTEMapLock, addr == target,
            s.armed.exchange(false, ordering: .acquiringAndReleasing)
          else { return }
          s.paused.store(true, ordering: .releasing)
          if !boundedWait({ s.release.load(ordering: .acquiring) }) { s.timeouts.add(1, ordering: .relaxed) }
        }
        let d = counterDelta(r) {
          runThreads(3) { t in
            switch t {
            case 0:  // A: the fault.
              let cpu = try! CPU(mm: mm)
              let o = cpu.faultIn(target, write: true)
              s.outcome.withLock { $0 = o }
            case 1:  // B: the munmap.
              guard boundedWait({ s.paused.load(ordering: .acquiring) }) else {
                s.timeouts.add(1, ordering: .relaxed)
                return
              }
              do { try mm.munmap(a, 4 * page) } catch { s.munmapFailed.store(true, ordering: .relaxed) }
              s.bReturned.store(true, ordering: .releasing)
            default:  // The controller.
              if !boundedWait({ s.paused.load(ordering: .acquiring) }) { s.timeouts.add(1, ordering: .relaxed) }
              if overtakes {
                if !boundedWait({ s.bReturned.load(ordering: .acquiring) }) { s.timeouts.add(1, ordering: .relaxed) }
              } else {
                usleep(50_000)
              }
              // A is still paused here: it waits for `release`.
              s.bReturnedWhileAPaused.store(s.bReturned.load(ordering: .acquiring) ? 1 : 0, ordering: .relaxed)
              s.release.store(true, ordering: .releasing)
            }
          }
        }
        mm.faultHook = nil
        #expect(s.timeouts.load(ordering: .relaxed) == 0)
        #expect(s.munmapFailed.load(ordering: .relaxed) == false)
        #expect(s.bReturned.load(ordering: .relaxed) == true)
        let outcome = s.outcome.withLock { $0 }
        switch design {
        case .mmapLock:
          #expect(s.bReturnedWhileAPaused.load(ordering: .relaxed) == 0, "munmap returned during a locked fault")
          #expect(outcome == .ok)
          #expect(d == [.pgfault: 1])
        case .perVMALock:
          #expect(s.bReturnedWhileAPaused.load(ordering: .relaxed) == 0, "munmap returned during a VMA-locked fault")
          #expect(outcome == .ok)
          #expect(d == [.pgfault: 1, .vmaLockSuccess: 1])
        case .speculative, .sequenced:
          #expect(s.bReturnedWhileAPaused.load(ordering: .relaxed) == 1, "munmap did not overtake the fault")
          #expect(outcome == .signal(.sigsegv(.mapErr, address: target)))
          #expect(d == [.pgfault: 1, .spfVmaChanged: 1, .segvMaperr: 1])
          #expect(s.aborts.load(ordering: .relaxed) == 1)
        }
        #expect(r.mm.pageTable.pte(at: target).isNone)
        #expect(r.mm.pageTable.pte(at: a).isNone)
        #expect(r.mm.mapCount == 0)
      }
    }
  }
}
