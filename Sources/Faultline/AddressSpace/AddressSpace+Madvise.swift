/// `madvise(2)` (`do_madvise` → `madvise_walk_vmas`).
///
/// Implemented: `MADV_DONTNEED` (and `MADV_FREE`, which on anonymous memory may drop the pages
/// at once, as Faultline does), the access-pattern hints `NORMAL`/`RANDOM`/`SEQUENTIAL` (they
/// set `VM_RAND_READ`/`VM_SEQ_READ`, which affects merging), and `WILLNEED` (nothing to read
/// ahead for anonymous memory). Other advice that Linux accepts fails with `EINVAL` until it is
/// modelled; unknown advice fails with `EINVAL` as in Linux.
extension AddressSpace {
  public func madvise(_ addr: UInt64, _ length: UInt64, advice: Int32) throws(Errno) {
    switch advice {
    case Advice.normal, Advice.random, Advice.sequential, Advice.willNeed, Advice.dontNeed, Advice.free:
      break
    default:
      throw Errno.invalidArgument
    }
    if addr & 0xFFF != 0 { throw Errno.invalidArgument }
    let len = pageAlign(length)
    if length != 0 && len == 0 { throw Errno.invalidArgument }
    let end = addr &+ len
    if end < addr { throw Errno.invalidArgument }
    if end == addr { return }

    let changesFlags = advice == Advice.normal || advice == Advice.random || advice == Advice.sequential
    if changesFlags { mmapWriteLock() } else { mmapLock.readLock() }
    var gather = MMUGather()
    defer {
      if changesFlags { mmapWriteUnlock() } else { mmapLock.readUnlock() }
      gather.finish(machine: machine, synchronous: false)
    }
    // With the read lock the published tree is the current one.
    let lookup: (UInt64) -> VMA? = { [tree] a in
      changesFlags ? tree.findW(a) : tree.find(a)?.takeUnretainedValue()
    }
    var start = addr
    var unmappedError: Errno?
    var v = lookup(start)
    while true {
      guard let vma = v else { throw Errno.noMemory }
      if start < vma.start {
        unmappedError = .noMemory
        start = vma.start
        if start >= end { break }
      }
      let tmp = min(vma.end, end)
      let covering = try madviseVMA(vma, start, tmp, advice: advice, gather: &gather)
      start = max(tmp, covering.end)
      if start >= end { break }
      v = lookup(start)
    }
    if let unmappedError { throw unmappedError }
  }

  /// Applies `advice` to `[start, end)` inside `vma`; returns the VMA covering it afterwards.
  private func madviseVMA(_ vma: VMA, _ start: UInt64, _ end: UInt64, advice: Int32, gather: inout MMUGather) throws(Errno) -> VMA {
    switch advice {
    case Advice.dontNeed, Advice.free:
      // can_madv_lru_vma: not for locked, PFN-mapped or huge-TLB memory.
      if !vma.flags.intersection([.locked, .pfnMap, .hugeTLB]).isEmpty { throw Errno.invalidArgument }
      // MADV_FREE only applies to private anonymous memory.
      if advice == Advice.free && !vma.isAnonymous { throw Errno.invalidArgument }
      pageTable.zapRange(start, end, gather: &gather)
      return vma
    case Advice.willNeed:
      return vma
    default:
      var newFlags = vma.flags.subtracting([.seqRead, .randRead])
      if advice == Advice.random { newFlags.insert(.randRead) }
      if advice == Advice.sequential { newFlags.insert(.seqRead) }
      if newFlags == vma.flags { return vma }
      let target = try modifyVMAFlags(vma, start: start, end: end, newFlags: newFlags)
      setVMAFlags(target, newFlags)
      return target
    }
  }
}
