/// `brk(2)`: grows or shrinks the heap VMA that starts at `start_brk`.
///
/// Like the system call (not glibc's wrapper), it returns the new break on success and the old
/// one on failure. The break itself may be unaligned; the VMA ends at the next page.
extension AddressSpace {
  public func brk(_ requested: UInt64) -> UInt64 {
    mmapWriteLock()
    var gather = MMUGather()
    defer {
      mmapWriteUnlock()
      gather.finish(machine: machine, synchronous: false)
    }
    let original = brkValue
    if requested < startBrk { return original }
    // check_data_rlimit, with no data segment below the heap.
    if config.rlimitData != .max && requested - startBrk > config.rlimitData { return original }
    let newBrk = pageAlign(requested)
    let oldBrk = pageAlign(brkValue)
    if newBrk == oldBrk {
      brkValue = requested
      return requested
    }
    if requested <= brkValue {
      // Shrink: unmap the pages above the new break.
      do throws(Errno) {
        try unmapRange(newBrk, oldBrk, gather: &gather)
      } catch {
        return original
      }
      brkValue = requested
      return requested
    }
    // Grow: keep a page of gap below the next mapping (and its stack guard gap).
    if let next = tree.findW(oldBrk), next.start < newBrk + 4096 + Self.stackGuardGap {
      let gapStart = next.flags.contains(.growsDown) ? next.start &- Self.stackGuardGap : next.start
      if newBrk + 4096 > gapStart { return original }
    }
    let flags: VMFlags = [.read, .write, .mayRead, .mayWrite, .mayExec, .account]
    let pages = (newBrk - oldBrk) >> 12
    if !mayExpandVM(flags, pages) { return original }
    if mapCount > config.maxMapCount { return original }
    if let prev = tree.findPrev(oldBrk), prev.end == oldBrk, prev.start >= startBrk,
      canMergeAfter(prev, flags: flags, anon: 0, shmem: nil, pgoff: oldBrk >> 12)
    {
      adjustVMA(prev, start: prev.start, end: newBrk, pgoff: prev.pgoff)
    } else {
      let v = makeVMA(start: oldBrk, end: newBrk, flags: flags, pgoff: oldBrk >> 12, shmem: nil)
      insertVMA(v)
    }
    vmStatAccount(flags, Int64(pages))
    brkValue = requested
    return requested
  }

  /// `mm->brk`.
  public var currentBrk: UInt64 {
    mmapLock.readLock()
    defer { mmapLock.readUnlock() }
    return brkValue
  }
}
