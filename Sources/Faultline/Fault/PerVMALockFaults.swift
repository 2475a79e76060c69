import Synchronization

/// Per-VMA locks as merged in Linux 6.4 (`lock_vma_under_rcu`, `vma_start_read`).
///
/// 1. Under RCU, find the VMA; fall back if there is none, or if it is anonymous without an
///    anon_vma yet or shared anonymous memory (`vma_lock_abort`). File VMAs are taken, as since
///    Linux 6.7.
/// 2. `vmaStartRead`: fail if `vmLockSeq == mmLockSeq` (a writer holds it this `mmap_lock`
///    hold), else read-trylock the VMA's lock and check the sequences again.
/// 3. Leave RCU. A detached VMA was replaced: unlock and look again (`vma_lock_miss`). An address
///    outside it: abort. An access error: unlock and let `mmap_lock` deliver the signal.
/// 4. Run the fault body with page-table allocation allowed, `vmaEndRead`, count
///    `vma_lock_success` (or `vma_lock_retry` and fall back).
///
/// Writers call `vmaStartWrite` on every VMA they change or remove, which waits for its readers:
/// `munmap` therefore waits for faults in flight on the VMAs it removes, unlike SPF.
extension CPU {
  /// Falls back to `faultLocked` itself when the attempt gives up.
  func faultVMALocked(_ addr: UInt64, write: Bool) -> FaultOutcome {
    while true {
      rcuSide.lockOutermost()
      guard let found = vmas.find(addr) else {
        rcuSide.unlockOutermost()
        return vmaLockAbort(addr, write: write)
      }
      // RCU keeps the VMA alive until its read lock does. Anonymous VMAs need their anon_vma;
      // file VMAs fault under the VMA lock too (6.7+).
      let locked = found.withPinned { vmaLockable($0) && vmaStartRead($0) }
      rcuSide.unlockOutermost()
      if !locked { return vmaLockAbort(addr, write: write) }
      if found.withPinned({ $0.isDetached }) {
        vmaEndRead(found)
        count(counters, .vmaLockMiss)
        continue
      }
      let snap = found.withPinned { $0.snapshot() }
      if addr < snap.start || addr >= snap.end {
        vmaEndRead(found)
        return vmaLockAbort(addr, write: write)
      }
      if accessError(snap.flags, write: write) {
        vmaEndRead(found)
        return faultLocked(addr, write: write)
      }
      if hooksEnabled.pointee.load(ordering: .relaxed) { runHook(.afterLookup, addr) }
      let flags: FaultFlags = write ? [.write, .user, .vmaLock] : [.user, .vmaLock]
      let result = handleMMFault(snap, Page.roundDown(addr), flags)
      vmaEndRead(found)
      if case .done = result {
        count(counters, .vmaLockSuccess)
        return .ok
      }
      return vmaLockFinish(result, addr, write: write)
    }
  }

  /// `vma_end_read`.
  @inline(__always)
  func vmaEndRead(_ vma: Unmanaged<VMA>) { vma.withPinned { $0.vmLock.readUnlock() } }

  /// The end of an attempt that ran the fault body and did not simply succeed: an abort or a
  /// retry falls back to `mmap_lock` (`vma_lock_retry`); a signal is delivered.
  @inline(never)
  func vmaLockFinish(_ result: VMFaultResult, _ addr: UInt64, write: Bool) -> FaultOutcome {
    switch result {
    case .abort, .retry:
      count(counters, .vmaLockRetry)
      if hooksEnabled.pointee.load(ordering: .relaxed) { runHook(.aborted(nil), addr) }
      return faultLocked(addr, write: write)
    default:
      count(counters, .vmaLockSuccess)
      return outcome(result, addr)
    }
  }

  /// Whether the VMA may fault under its own lock: anonymous memory with an anon_vma, or a file.
  @inline(__always)
  func vmaLockable(_ vma: VMA) -> Bool { (vma.isAnonymous && vma.anonVMA != 0) || vma.file != nil }

  /// `vma_start_read`: a false "locked" is fine, a false "unlocked" never.
  @inline(__always)
  func vmaStartRead(_ vma: VMA) -> Bool {
    if vma.vmLockSeq.load(ordering: .relaxed) == mmLockSeq.pointee.load(ordering: .acquiring) { return false }
    if !vma.vmLock.tryRead() { return false }
    if vma.vmLockSeq.load(ordering: .relaxed) == mmLockSeq.pointee.load(ordering: .acquiring) {
      vma.vmLock.readUnlock()
      return false
    }
    return true
  }

  /// `vma_lock_abort`, then the `mmap_lock` path.
  @inline(never)
  func vmaLockAbort(_ addr: UInt64, write: Bool) -> FaultOutcome {
    count(counters, .vmaLockAbort)
    machine.trace.record("vma_lock_abort", addr: addr, design: design)
    if hooksEnabled.pointee.load(ordering: .relaxed) { runHook(.aborted(nil), addr) }
    return faultLocked(addr, write: write)
  }
}
