import Faultline
import FaultlineTestSupport
import Synchronization
import Testing

/// The per-VMA lock design (Linux 6.4 `lock_vma_under_rcu`): which faults it takes, which it
/// hands to `mmap_lock`, and the exact `vma_lock_*` counts, with Linux's result from the
/// fallback.
///
/// Not forced here:
/// - `vma_lock_miss` needs the VMA detached between the RCU lookup and `vmaStartRead` succeeding
///   (found in the old tree, unlocked after `munmap`'s `mmap_write_unlock`). That window holds
///   no hook: `.afterLookup` runs after the detached check, with the VMA read-locked, where a
///   `munmap` (whose `vma_start_write` waits for that read lock) would deadlock on one thread
///   and wait on two.
/// - `vma_lock_retry` needs the fault body to return `VM_FAULT_RETRY`/abort with the VMA lock
///   held. Anonymous faults cannot (the anon_vma is checked before locking, shmem VMAs are not
///   taken, `pteMapLock` in locked mode cannot fail), but a file COW fault on a VMA without an
///   anon_vma aborts with `spf_vma_noanon` and counts it; it is not pinned here.
/// - The `vma_start_read` failure on a write-locked VMA needs a writer inside its `mmap_lock`
///   hold, which tests cannot pause.
/// `munmap` against a VMA-locked fault in flight is in `SpeculativeAbortTests.MunmapOrderingTests`.
@Suite struct PerVMALockTests {
  @Test func faultOnAVMAWithAnonVMASucceedsUnderItsLock() throws {
    try withRig(design: .perVMALock) { r in
      let a = try r.cpu.mmap(testBase, 4 * page, prot: rw, flags: anonPrivate | MapFlags.fixed)
      // Fresh VMA: no anon_vma, abort; the mmap_lock path prepares one.
      let first = try counterDelta(r) { try r.cpu.storeByte(a, 0x10) }
      #expect(first == [.pgfault: 1, .vmaLockAbort: 1])
      let write = try counterDelta(r) { try r.cpu.storeByte(a + page + 1, 0x20) }
      #expect(write == [.pgfault: 1, .vmaLockSuccess: 1])
      var v: UInt8 = 0xFF
      let read = try counterDelta(r) { v = try r.cpu.loadByte(a + 2 * page) }
      #expect(read == [.pgfault: 1, .vmaLockSuccess: 1])
      #expect(v == 0)
      #expect(r.mm.pageTable.pte(at: a + 2 * page).pfn == PFN.zero)
      // Unlike SPF v12, a missing PTE table is allocated under the VMA lock.
      let b = try r.cpu.mmap(
        testBase + 8 * PageTable.pmdSize, 2 * PageTable.pmdSize, prot: rw, flags: anonPrivate | MapFlags.fixed)
      try r.cpu.storeByte(b, 1)
      let newTable = try counterDelta(r) { try r.cpu.storeByte(b + PageTable.pmdSize, 0x30) }
      #expect(newTable == [.pgfault: 1, .vmaLockSuccess: 1])
      #expect(try r.cpu.loadByte(a) == 0x10)
      #expect(try r.cpu.loadByte(a + page + 1) == 0x20)
      #expect(try r.cpu.loadByte(b + PageTable.pmdSize) == 0x30)
    }
  }

  @Test func sharedAnonymousMappingAbortsOnEveryFault() throws {
    try withRig(design: .perVMALock) { r in
      let a = try r.cpu.mmap(testBase, 2 * page, prot: rw, flags: anonShared | MapFlags.fixed)
      let w = try counterDelta(r) { try r.cpu.storeByte(a + 4, 0x44) }
      #expect(w == [.pgfault: 1, .vmaLockAbort: 1])
      var v: UInt8 = 0xFF
      let rd = try counterDelta(r) { v = try r.cpu.loadByte(a + page) }
      #expect(rd == [.pgfault: 1, .vmaLockAbort: 1])
      #expect(v == 0)
      #expect(try r.cpu.loadByte(a + 4) == 0x44)
    }
  }

  @Test func loadAboveEveryVMAAbortsAndFallbackIsSegvMapErr() throws {
    try withRig(design: .perVMALock) { r in
      _ = try mapPrepared(r, pages: 2)
      let hole: UInt64 = 0x7000_0000_0123
      let d = counterDelta(r) {
        #expect(throws: Signal.sigsegv(.mapErr, address: hole)) { try r.cpu.loadByte(hole) }
      }
      #expect(d == [.pgfault: 1, .vmaLockAbort: 1, .segvMaperr: 1])
    }
  }

  /// `lock_vma_under_rcu` finds (and read-locks) the VMA above the hole, then the bounds
  /// re-check fails: `vma_lock_abort`.
  @Test func loadFromAHoleBelowAVMAAbortsAndFallbackIsSegvMapErr() throws {
    try withRig(design: .perVMALock) { r in
      _ = try mapPrepared(r, pages: 2)
      let hole = testBase - 5 * page + 3
      let d = counterDelta(r) {
        #expect(throws: Signal.sigsegv(.mapErr, address: hole)) { try r.cpu.storeByte(hole, 1) }
      }
      #expect(d == [.pgfault: 1, .vmaLockAbort: 1, .segvMaperr: 1])
    }
  }

  /// Linux 6.4: an access error under the VMA lock unlocks and goes to `lock_mmap` without
  /// counting any `vma_lock_*` event; the locked path delivers SEGV_ACCERR.
  @Test func accessErrorFallsBackWithoutAVMALockCount() throws {
    try withRig(design: .perVMALock) { r in
      let a = try mapPrepared(r, pages: 2)
      try r.cpu.mprotect(a, 2 * page, prot: Prot.read)
      let target = a + page + 5
      let d = counterDelta(r) {
        #expect(throws: Signal.sigsegv(.accErr, address: target)) { try r.cpu.storeByte(target, 1) }
      }
      #expect(d == [.pgfault: 1, .segvAccerr: 1])
      #expect(try r.cpu.loadByte(a) == 0x11)
    }
  }

  @Test func abortTellsTheHookAndTheTrace() throws {
    try withRig(design: .perVMALock) { r in
      let a = try r.cpu.mmap(testBase, page, prot: rw, flags: anonPrivate | MapFlags.fixed)
      let mm = r.mm!
      let s = HookState()
      mm.faultHook = { point, _ in s.noteAbort(point) }
      r.machine.trace.enabled = true
      _ = r.machine.trace.drain()
      try r.cpu.storeByte(a + 0x20, 1)
      let lines = r.machine.trace.drain()
      r.machine.trace.enabled = false
      mm.faultHook = nil
      #expect(s.aborts.load(ordering: .relaxed) == 1)
      #expect(s.lastAbort.load(ordering: .relaxed) == -1)  // .aborted(nil)
      #expect(lines.count == 1)
      let prefix = "vma_lock_abort: addr=0x\(String(a + 0x20, radix: 16)) design=vma_lock tid="
      let line = lines.first ?? ""
      #expect(line.hasPrefix(prefix), "\(line)")
      let tid = line.hasPrefix(prefix) ? Int(line.dropFirst(prefix.count)) : nil
      #expect(tid != nil && tid! > 0, "\(line)")
    }
  }
}
