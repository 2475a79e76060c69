/// `brk(2)`: grows or shrinks the heap VMA that starts at `start_brk`.
///
/// Like the system call (not glibc's wrapper), it returns the new break on success and the old
/// one on failure. The break itself may be unaligned; the VMA ends at the next page.
extension AddressSpace {
  /// Heap growth after `mlockall(MCL_FUTURE)` is locked and, without `MCL_ONFAULT`,
  /// populated on `cpu` (the caller's thread).
  package func brk(_ requested: UInt64, cpu: CPU? = nil) -> UInt64 {
    mmapWriteLock()
    var gather = MMUGather()
    var populate: (UInt64, UInt64)?
    defer {
      mmapWriteUnlock()
      gather.finish(machine: machine, synchronous: false)
      if let (from, to) = populate, let cpu { _ = mmPopulate(from, to - from, ignoreErrors: true, cpu: cpu) }
    }
    let original = brkValue
    if requested < startBrk { return original }
    // check_data_rlimit, with no data segment below the heap.
    if config.rlimitData != .max && requested - startBrk > config.rlimitData { return original }
    let newBrk = Page.roundUp(requested)
    let oldBrk = Page.roundUp(brkValue)
    if newBrk == oldBrk {
      brkValue = requested
      return requested
    }
    if requested <= brkValue {
      // Shrink: unmap the pages above the new break. Linux's brk looks for a VMA in
      // [newbrk, oldbrk) first and fails when there is none (a heap the program unmapped
      // itself), returning the old break.
      guard let vma = tree.findW(newBrk), vma.start < oldBrk else { return original }
      do throws(Errno) {
        try unmapRange(newBrk, oldBrk, gather: &gather)
      } catch {
        return original
      }
      brkValue = requested
      return requested
    }
    // check_brk_limits: the new part must fit below TASK_SIZE (get_unmapped_area, MAP_FIXED).
    let growth = newBrk &- oldBrk
    if newBrk < oldBrk || growth > config.taskSize || oldBrk > config.taskSize - growth { return original }
    if !mlockFutureOK(defFlags, growth) { return original }
    // Grow: keep a page of gap below the next mapping (and its stack guard gap).
    if let next = tree.findW(oldBrk), next.start < newBrk + Page.size + Self.stackGuardGap {
      let gapStart = next.flags.contains(.growsDown) ? next.start &- Self.stackGuardGap : next.start
      if newBrk + Page.size > gapStart { return original }
    }
    let flags: VMFlags = defFlags.union([.read, .write, .mayRead, .mayWrite, .mayExec, .account])
    let pages = (newBrk - oldBrk) >> Page.shift
    if !mayExpandVM(flags, pages) { return original }
    if mapCount > config.maxMapCount { return original }
    if let prev = tree.findPrev(oldBrk), prev.end == oldBrk, prev.start >= startBrk,
      canMergeAfter(prev, flags: flags, anon: 0, shmem: nil, pgoff: oldBrk >> Page.shift)
    {
      adjustVMA(prev, start: prev.start, end: newBrk, pgoff: prev.pgoff)
    } else {
      let v = makeVMA(start: oldBrk, end: newBrk, flags: flags, pgoff: oldBrk >> Page.shift, shmem: nil)
      insertVMA(v)
    }
    vmStatAccount(flags, Int64(pages))
    brkValue = requested
    if flags.contains(.locked) { populate = (oldBrk, newBrk) }
    return requested
  }

  /// `mm->brk`.
  public var currentBrk: UInt64 {
    mmapLock.readLock()
    defer { mmapLock.readUnlock() }
    return brkValue
  }
}

/// Stack growth (`expand_stack` → `expand_downwards`, Linux 6.5+: always with `mmap_lock` held
/// for write, taken by the fault path when an address lies below a `VM_GROWSDOWN` VMA).
extension AddressSpace {
  /// Grows the `VM_GROWSDOWN` VMA above `addr` down to `addr`'s page. `false` (the fault is
  /// SEGV_MAPERR) below `mmap_min_addr`, within `stack_guard_gap` of an accessible VMA below
  /// that is not itself a stack, past `RLIMIT_STACK`, `RLIMIT_AS` or `RLIMIT_MEMLOCK` for a
  /// locked stack. `true` also when another thread already grew it.
  func expandStack(_ addr: UInt64) -> Bool {
    mmapWriteLock()
    defer { mmapWriteUnlock() }
    guard let vma = tree.findW(addr) else { return false }
    if vma.start <= addr { return true }
    guard vma.flags.contains(.growsDown) else { return false }
    let address = Page.roundDown(addr)
    if address < config.hintMinAddr { return false }
    if let prev = tree.findPrev(vma.start), !prev.flags.contains(.growsDown), prev.flags.isAccessible,
      address - prev.end < Self.stackGuardGap
    {
      return false
    }
    _ = anonVMAPrepare(vma)
    let grow = (vma.start - address) >> Page.shift
    if grow > vma.pgoff { return false }
    // acct_stack_growth.
    let flags = vma.flags
    if !mayExpandVM(flags, grow) { return false }
    if vma.end - address > config.rlimitStack { return false }
    if flags.contains(.locked) && !config.capIPCLock && lockedVM + grow > config.rlimitMemlock >> Page.shift { return false }
    adjustVMA(vma, start: address, end: vma.end, pgoff: vma.pgoff - grow)
    vmStatAccount(flags, Int64(grow))
    return true
  }
}
