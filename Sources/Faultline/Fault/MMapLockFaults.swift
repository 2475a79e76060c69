/// The `mmap_lock` fault design, which every other design falls back to.
///
/// Under `mmap_lock`: take it for read, find the VMA, check the access, run the shared fault
/// body, unlock. Writers (mmap, munmap, mprotect, mremap, madvise, mlock, brk, fork) hold the
/// lock for write, so the VMA cannot change while the fault runs, and a `munmap` waits for every
/// fault in flight. The entry every design shares is `faultIn` (`FaultEntry.swift`).
extension CPU {
  /// The fault under `mmap_lock` (the whole path before 6.4, and every design's fallback).
  func faultLocked(_ addr: UInt64, write: Bool) -> FaultOutcome {
    let flags: FaultFlags = write ? [.write, .user] : [.user]
    while true {
      mmapLock.readLock()
      guard let found = vmas.find(addr) else {
        mmapLock.readUnlock()
        return segv(.mapErr, addr)
      }
      // The read lock keeps the VMA alive: borrow it without reference counting.
      let result = found.withPinned { vma -> FaultOutcome? in
        if vma.start > addr {
          // Below a stack: grow it (`nil`), or SEGV_MAPERR.
          return vma.flags.contains(.growsDown) ? nil : segv(.mapErr, addr)
        }
        let snap = vma.snapshot()
        if accessError(snap.flags, write: write) {
          // bad_area_access_error: a key PKRU denies is SEGV_PKUERR, whatever the VMA's flags.
          if !pkeyAllows(snap.flags, write: write) { return segv(.pkuErr(pkey: snap.flags.pkey), addr) }
          return segv(.accErr, addr)
        }
        return outcome(handleMMFault(snap, Page.roundDown(addr), flags), addr)
      }
      mmapLock.readUnlock()
      if let result { return result }
      if !expandStack(addr) { return segv(.mapErr, addr) }
    }
  }

  /// `lock_mm_and_find_vma`'s slow path: `expand_stack` with `mmap_lock` held for write, then
  /// the fault starts over.
  @inline(never)
  func expandStack(_ addr: UInt64) -> Bool { mm.expandStack(addr) }

  /// `access_error` on x86: the VMA's protection key must allow the access under this
  /// thread's PKRU (`arch_vma_access_permitted`); then a write needs VM_WRITE and a read any
  /// access (x86 cannot map write-only pages, nor exec-only ones without protection keys).
  @inline(__always)
  func accessError(_ flags: VMFlags, write: Bool) -> Bool {
    !pkeyAllows(flags, write: write) || (write ? !flags.contains(.write) : !flags.isAccessible)
  }

  /// `arch_vma_access_permitted` for a data access of this thread (`__pkru_allows_pkey`).
  @inline(__always)
  func pkeyAllows(_ flags: VMFlags, write: Bool) -> Bool { pkeyAllows(key: flags.pkey, write: write) }

  @inline(never)
  func segv(_ code: SegvCode, _ addr: UInt64) -> FaultOutcome {
    switch code {
    case .mapErr: count(counters, .segvMaperr)
    case .accErr: count(counters, .segvAccerr)
    case .pkuErr: count(counters, .segvPkuerr)
    }
    return .signal(.sigsegv(code, address: addr))
  }

  @inline(__always)
  func outcome(_ r: VMFaultResult, _ addr: UInt64) -> FaultOutcome {
    if case .done = r { return .ok }
    switch r {
    case .done, .retry, .abort: return .ok
    case .oom:
      count(counters, .faultOOM)
      return .signal(.outOfMemory(address: addr))
    case .sigbus:
      count(counters, .sigbus)
      return .signal(.sigbus(address: addr))
    case .sigsegv:
      // mm_fault_error: VM_FAULT_SIGSEGV goes to bad_area_nosemaphore, which reports
      // SEGV_MAPERR (as a guard region's fault does on Linux).
      return segv(.mapErr, addr)
    case .pkeyFault(let key):
      return segv(.pkuErr(pkey: key), addr)
    }
  }

  /// Counts and traces a speculative abort, and tells the hook; the caller falls back.
  @inline(never)
  func speculativeAbort(_ reason: SPFAbort, _ addr: UInt64) {
    count(counters, VMStatItem(abort: reason))
    machine.trace.record(reason.name, addr: addr, design: design)  // names it only when tracing
    if hooksEnabled.pointee.load(ordering: .relaxed) { runHook(.aborted(reason), addr) }
  }
}
