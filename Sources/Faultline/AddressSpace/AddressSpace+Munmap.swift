/// `munmap(2)` (`do_vmi_munmap` → `do_vmi_align_munmap`).
extension AddressSpace {
  /// Unmaps `[addr, addr+length)`. Unmapped parts of the range are not an error.
  package func munmap(_ addr: UInt64, _ length: UInt64) throws(Errno) {
    let taskSize = config.taskSize
    if !Page.isAligned(addr) || addr > taskSize || length > taskSize - addr { throw Errno.invalidArgument }
    let len = Page.roundUp(length)
    if len == 0 { throw Errno.invalidArgument }
    mmapWriteLock()
    var gather = MMUGather()
    let result: Errno?
    do throws(Errno) {
      try unmapRange(addr, addr + len, gather: &gather)
      result = nil
    } catch {
      result = error
    }
    let writeback = takePendingWriteback()
    mmapWriteUnlock()
    writerHook?(.beforeFree, addr)
    gather.finish(machine: machine, synchronous: false)
    writeBack(writeback)
    if let result { throw result }
  }

  /// Takes the shared file ranges this write hold unmapped (call it before `mmapWriteUnlock`).
  /// `munmap` of a `MAP_SHARED` file mapping leaves no dirty byte behind in Faultline: it writes
  /// the range's dirty pages to the backing store once the unmap's flush has completed.
  /// - Requires: `mmap_lock` held for write.
  func takePendingWriteback() -> [(file: OpenFile, from: UInt64, to: UInt64)] {
    writebackLock.withLock {
      let w = pendingWriteback
      pendingWriteback.removeAll()
      return w
    }
  }

  /// Writes the ranges back, after the flush of their zap completed.
  func writeBack(_ work: [(file: OpenFile, from: UInt64, to: UInt64)]) {
    for item in work {
      try? item.file.inode.writeback(from: item.from, to: item.to, sync: false)
      item.file.fput()
    }
  }

  /// Unmaps `[start, end)` with `mmap_lock` held for write, finishing its own gather.
  /// - Requires: `mmap_lock` held for write.
  func unmapRange(_ start: UInt64, _ end: UInt64) throws(Errno) {
    var gather = MMUGather()
    defer { gather.finish(machine: machine, synchronous: false) }
    try unmapRange(start, end, gather: &gather)
  }

  /// The body of `do_vmi_align_munmap`: split the VMAs at the range's edges, detach those inside,
  /// zap their PTEs and free the page tables no remaining VMA needs. Throws `ENOMEM` when the
  /// first split would cut a VMA in two at `max_map_count`; nothing has changed then. Throws
  /// `EPERM` for a sealed VMA in the range (`mseal`), before anything is detached; as in
  /// Linux's `vms_gather_munmap_vmas`, a split of an unsealed first VMA stays.
  /// - Requires: `mmap_lock` held for write.
  func unmapRange(_ start: UInt64, _ end: UInt64, gather: inout MMUGather) throws(Errno) {
    guard var vma = tree.findW(start), vma.start < end else { return }
    if start > vma.start {
      if end < vma.end && mapCount >= config.maxMapCount { throw Errno.noMemory }
      // Not split when it could not be unmapped anyway.
      if vma.flags.contains(.sealed) { throw Errno.notPermitted }
      try splitVMA(vma, at: start, newBelow: true, checkMapCount: false)
      // `vma` now starts at `start`.
    }
    var doomed: [VMA] = []
    var v: VMA? = vma
    while let cur = v, cur.start < end {
      if cur.flags.contains(.sealed) { throw Errno.notPermitted }
      if cur.end > end {
        try splitVMA(cur, at: end, newBelow: false, checkMapCount: false)
      }
      doomed.append(cur)
      v = tree.findW(cur.end)
    }
    vma = doomed[0]
    let floor = tree.findPrev(vma.start)?.end ?? 0
    let ceiling = tree.findW(doomed.last!.end)?.start ?? UInt64.max
    for d in doomed {
      vmStatAccount(d.flags, -Int64(d.pages))
      if let file = d.file, d.flags.contains(.shared) {
        file.fget()
        writebackLock.withLock { pendingWriteback.append((file, d.pageIndex(d.start), d.pageIndex(d.end))) }
        gather.requireWait()
      }
      removeVMA(d, unlink: false)
    }
    writerHook?(.afterDetach, start)
    for d in doomed { pageTable.zapRange(d.start, d.end, gather: &gather, dropMarkers: true) }
    // Still in their registries until zapped, so that a truncate racing this munmap cannot
    // return while one of their entries maps a page beyond the new EOF.
    for d in doomed { unlinkFileVMA(d) }
    for d in doomed where d.flags.contains(.hugeTLB) { hugetlbUnmapped(d) }
    writerHook?(.afterZap, start)
    pageTable.freePgtables(doomed[0].start, doomed.last!.end, floor: floor, ceiling: ceiling, gather: &gather)
  }
}
