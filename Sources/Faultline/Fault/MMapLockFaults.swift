/// The `mmap_lock` fault design: take `mmap_lock` for read, find the VMA, check the access,
/// run the shared fault body, unlock (`do_user_addr_fault` before speculative faults existed).
///
/// Writers (mmap, munmap, mprotect, brk) hold the lock for write, so the VMA cannot change while
/// the fault runs, and a `munmap` waits for every fault in flight on any of its VMAs.
extension CPU {
  /// Handles a user fault at `addr` for a read or a write; `.ok` when the access can be retried.
  public func faultIn(_ addr: UInt64, write: Bool) -> FaultOutcome {
    count(counters, .pgfault)
    let flags: FaultFlags = write ? [.write, .user] : [.user]
    mmapLock.readLock()
    guard let found = vmas.find(addr) else {
      mmapLock.readUnlock()
      return segv(.mapErr, addr)
    }
    // The read lock keeps the VMA alive: borrow it without reference counting.
    let result = found._withUnsafeGuaranteedRef { vma -> FaultOutcome in
      // Linux would try expand_stack for a VM_GROWSDOWN VMA here; Faultline does not grow
      // stacks yet, so an address below any VMA is SEGV_MAPERR.
      if vma.start > addr { return segv(.mapErr, addr) }
      if accessError(vma.flags, write: write) { return segv(.accErr, addr) }
      return outcome(handleMMFault(vma, addr & ~0xFFF, flags), addr)
    }
    mmapLock.readUnlock()
    return result
  }

  /// `access_error` on x86: a write needs VM_WRITE; a read needs any access (x86 cannot map
  /// write-only or exec-only pages without protection keys).
  @inline(__always)
  func accessError(_ flags: VMFlags, write: Bool) -> Bool {
    write ? !flags.contains(.write) : !flags.isAccessible
  }

  @inline(never)
  func segv(_ code: SegvCode, _ addr: UInt64) -> FaultOutcome {
    count(counters, code == .mapErr ? .segvMaperr : .segvAccerr)
    return .signal(.sigsegv(code, address: addr))
  }

  @inline(__always)
  func outcome(_ r: VMFaultResult, _ addr: UInt64) -> FaultOutcome {
    switch r {
    case .done, .retry: return .ok
    case .oom:
      count(counters, .faultOOM)
      return .signal(.outOfMemory(address: addr))
    case .sigbus:
      count(counters, .sigbus)
      return .signal(.sigbus(address: addr))
    case .sigsegv:
      return segv(.accErr, addr)
    }
  }
}
