/// `madvise(2)` (`do_madvise` → `madvise_walk_vmas` → `madvise_vma_behavior`).
///
/// Every advice Linux 6.x accepts on x86-64 is accepted, with these models:
/// - `DONTNEED`, `DONTNEED_LOCKED` and `FREE` zap the range (`FREE` may drop anonymous pages at
///   once, which is what Faultline does: it has no reclaim to do it later).
/// - `REMOVE` punches a hole in a shared anonymous mapping's shmem object.
/// - `NORMAL`/`RANDOM`/`SEQUENTIAL`, `DONTFORK`/`DOFORK`, `DONTDUMP`/`DODUMP`,
///   `WIPEONFORK`/`KEEPONFORK`, `HUGEPAGE`/`NOHUGEPAGE` change VMA flags (splitting and merging).
/// - `WILLNEED` reads a file mapping's pages into the page cache; on anonymous memory and on
///   shmem (shared anonymous memory, tmpfs files) it only swaps pages back in, so it has nothing
///   to do (no swap) and leaves holes as they are; nor have `COLD` and `PAGEOUT` (no reclaim).
/// - `POPULATE_READ`/`POPULATE_WRITE` fault the range in.
/// - `COLLAPSE` makes huge pages of private anonymous memory (`AddressSpace+Collapse.swift`).
/// - `MERGEABLE`/`UNMERGEABLE` fail with `EINVAL`, as on a kernel without KSM;
///   `HWPOISON`/`SOFT_OFFLINE` fail with `EPERM` (no `CAP_SYS_ADMIN`).
/// - `GUARD_INSTALL`/`GUARD_REMOVE` (6.13; any VMA kind since 6.15) put and clear guard markers
///   (`PageTable+GuardMarkers.swift`); a special, HugeTLB or (for install) locked VMA is
///   `EINVAL`, and a sealed read-only anonymous one is `EPERM` for install.
extension AddressSpace {
  package func madvise(_ addr: UInt64, _ length: UInt64, advice: Advice, cpu: CPU) throws(Errno) {
    let valid: Set<Advice> = [
      Advice.normal, Advice.random, Advice.sequential, Advice.willNeed, Advice.dontNeed, Advice.free,
      Advice.remove, Advice.dontFork, Advice.doFork, Advice.hugePage, Advice.noHugePage, Advice.dontDump,
      Advice.doDump, Advice.wipeOnFork, Advice.keepOnFork, Advice.cold, Advice.pageOut,
      Advice.populateRead, Advice.populateWrite, Advice.dontNeedLocked, Advice.hwPoison, Advice.softOffline,
      Advice.guardInstall, Advice.guardRemove, Advice.collapse,
    ]
    if !valid.contains(advice) { throw Errno.invalidArgument }
    if !Page.isAligned(addr) { throw Errno.invalidArgument }
    let len = Page.roundUp(length)
    if length != 0 && len == 0 { throw Errno.invalidArgument }
    let end = addr &+ len
    if end < addr { throw Errno.invalidArgument }
    if advice == Advice.hwPoison || advice == Advice.softOffline { throw Errno.notPermitted }
    if end == addr { return }
    if advice == Advice.populateRead || advice == Advice.populateWrite {
      return try madvisePopulate(addr, end, write: advice == Advice.populateWrite, cpu: cpu)
    }
    if advice == Advice.remove { return try madviseRemove(addr, end, cpu: cpu) }

    // madvise_need_mmap_write: only the advice that changes VMA flags takes the write lock.
    let readOnly: Set<Advice> = [
      Advice.remove, Advice.willNeed, Advice.dontNeed, Advice.dontNeedLocked, Advice.cold, Advice.pageOut,
      Advice.free, Advice.guardInstall, Advice.guardRemove,
    ]
    let write = !readOnly.contains(advice)
    if write { mmapWriteLock() } else { mmapLock.readLock() }
    var gather = MMUGather()
    defer {
      if write { mmapWriteUnlock() } else { mmapLock.readUnlock() }
      gather.finish(machine: machine, synchronous: false)
    }
    // With the read lock held, the published tree is the current one.
    let lookup: (UInt64) -> VMA? = { [tree] a in
      write ? tree.findW(a) : tree.find(a)?.takeUnretainedValue()
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
      if !canMadviseModify(vma, advice: advice, cpu: cpu) { throw Errno.notPermitted }
      let covering = try madviseVMA(vma, start, tmp, advice: advice, gather: &gather)
      start = max(tmp, covering.end)
      if start >= end { break }
      v = lookup(start)
    }
    if let unmappedError { throw unmappedError }
  }

  /// Applies `advice` to `[start, end)` inside `vma`; returns the VMA covering it afterwards.
  /// - Requires: `mmap_lock` held: for write when `advice` changes VMA flags, for read otherwise.
  private func madviseVMA(_ vma: VMA, _ start: UInt64, _ end: UInt64, advice: Advice, gather: inout MMUGather) throws(Errno) -> VMA {
    let flags = vma.flags
    switch advice {
    case Advice.dontNeed, Advice.dontNeedLocked, Advice.free:
      if let huge = vma.shmem?.hugetlb {
        try hugetlbDontNeed(vma, huge, start, end, advice: advice, gather: &gather)
        return vma
      }
      // madvise_dontneed_free_valid_vma: never PFN maps; locked memory only with DONTNEED_LOCKED.
      var forbidden: VMFlags = [.pfnMap, .hugeTLB]
      if advice != Advice.dontNeedLocked { forbidden.insert(.locked) }
      if !flags.intersection(forbidden).isEmpty { throw Errno.invalidArgument }
      if advice == Advice.free && !vma.isAnonymous { throw Errno.invalidArgument }
      pageTable.zapRange(start, end, gather: &gather, keepHugeZero: advice == Advice.free)
      return vma
    case Advice.willNeed:
      // madvise_willneed: private anonymous memory (swapin_walk_ops) and shmem, shared anonymous
      // or a tmpfs file (shmem_mapping → shmem_swapin_range), only have swapped-out pages read
      // back: none here, and a hole is never filled. Any other file's pages are read into its
      // page cache (vfs_fadvise(POSIX_FADV_WILLNEED)).
      if let file = vma.file, !file.inode.fs.backedByCache {
        readAhead(file.inode, from: vma.pageIndex(start), to: vma.pageIndex(end))
      }
      return vma
    case Advice.guardInstall, Advice.guardRemove:
      // is_valid_guard_vma: removing is allowed on locked memory, installing is not (it would
      // drop locked pages).
      var forbidden: VMFlags = VMFlags.special.union(.hugeTLB)
      if advice == Advice.guardInstall { forbidden.insert(.locked) }
      if !flags.intersection(forbidden).isEmpty { throw Errno.invalidArgument }
      if advice == Advice.guardRemove {
        pageTable.removeGuardMarkers(start, end)
        return vma
      }
      // An anon_vma, so that fork copies the markers (vma_needs_copy).
      _ = anonVMAPrepare(vma)
      if !pageTable.installGuardMarkers(start, end, gather: &gather) { throw Errno.noMemory }
      return vma
    case Advice.collapse:
      try madviseCollapse(vma, start, end, gather: &gather)
      return vma
    case Advice.cold, Advice.pageOut:
      if !flags.intersection([.locked, .pfnMap, .hugeTLB]).isEmpty { throw Errno.invalidArgument }
      if advice == Advice.pageOut && (!vma.isAnonymous || flags.contains(.droppable)) { pageOut(vma, start, end) }
      return vma
    default:
      var newFlags = flags
      switch advice {
      case Advice.normal: newFlags.subtract([.seqRead, .randRead])
      case Advice.sequential: newFlags = newFlags.subtracting(.randRead).union(.seqRead)
      case Advice.random: newFlags = newFlags.subtracting(.seqRead).union(.randRead)
      case Advice.dontFork: newFlags.insert(.dontCopy)
      case Advice.doFork:
        if flags.contains(.io) { throw Errno.invalidArgument }
        newFlags.remove(.dontCopy)
      case Advice.wipeOnFork:
        if !vma.isAnonymous || flags.contains(.shared) { throw Errno.invalidArgument }
        newFlags.insert(.wipeOnFork)
      case Advice.keepOnFork:
        if flags.contains(.droppable) { throw Errno.invalidArgument }
        newFlags.remove(.wipeOnFork)
      case Advice.dontDump: newFlags.insert(.dontDump)
      case Advice.doDump:
        if !flags.intersection(.special.union(.droppable)).isEmpty { throw Errno.invalidArgument }
        newFlags.remove(.dontDump)
      case Advice.hugePage: newFlags = newFlags.subtracting(.noHugePage).union(.hugePage)
      case Advice.noHugePage: newFlags = newFlags.subtracting(.hugePage).union(.noHugePage)
      default: throw Errno.invalidArgument
      }
      if newFlags == flags { return vma }
      let target = try modifyVMAFlags(vma, start: start, end: end, newFlags: newFlags)
      setVMAFlags(target, newFlags)
      return target
    }
  }

  /// `madvise_remove`: punches a hole in the object behind each shared writable VMA of the
  /// range (`vfs_fallocate(PUNCH_HOLE | KEEP_SIZE)`), dropping `mmap_lock` around each punch as
  /// Linux does. Per VMA: locked → `EINVAL`, no object (private anonymous) → `EINVAL`, not
  /// shared and writable (`vma_is_shared_maywrite`) → `EACCES`; a hole in the range → `ENOMEM`
  /// after the rest was done.
  private func madviseRemove(_ start: UInt64, _ end: UInt64, cpu: CPU) throws(Errno) {
    var addr = start
    var unmappedError: Errno?
    while true {
      mmapLock.readLock()
      guard let vma = tree.find(addr)?.takeUnretainedValue() else {
        mmapLock.readUnlock()
        throw Errno.noMemory
      }
      if addr < vma.start {
        unmappedError = .noMemory
        addr = vma.start
        if addr >= end {
          mmapLock.readUnlock()
          break
        }
      }
      let tmp = min(vma.end, end)
      let flags = vma.flags
      if !canMadviseModify(vma, advice: Advice.remove, cpu: cpu) {
        mmapLock.readUnlock()
        throw Errno.notPermitted
      }
      let (first, last) = (vma.pageIndex(addr), vma.pageIndex(tmp))
      let shmem = vma.shmem
      let inode = vma.file?.inode
      let file = vma.file
      file?.fget()
      mmapLock.readUnlock()
      defer { file?.fput() }
      if flags.contains(.locked) { throw Errno.invalidArgument }
      if shmem == nil && inode == nil { throw Errno.invalidArgument }
      if !flags.contains(.mayShare) || !flags.contains(.mayWrite) { throw Errno.permissionDenied }
      if let shmem {
        shmem.punchHoleEverywhere(first, last)
      } else if let inode {
        try inode.punchHole(fromPage: first, toPage: last)
      }
      addr = tmp
      if addr >= end { break }
    }
    if let unmappedError { throw unmappedError }
  }

  /// `madvise_pageout` on a file or shmem VMA, with no swap: each page-cache page this VMA maps
  /// and no one else does is unmapped (`try_to_unmap`), and dropped from its cache when clean;
  /// a dirty page stays cached (shmem has no swap to write it to; a file page waits for
  /// writeback). Private copies (anonymous pages) stay mapped: without swap they cannot go;
  /// but a droppable VMA's pages are not swap-backed, and those it alone maps are discarded,
  /// dirty or not (`try_to_unmap_one` with `VM_DROPPABLE`), and read back as zeros.
  /// - Requires: `mmap_lock` held for read.
  private func pageOut(_ vma: VMA, _ start: UInt64, _ end: UInt64) {
    var gather = MMUGather()
    var candidates: [UInt64] = []
    var dirtied: [(UInt64, PFN)] = []
    let frames = memory
    let inode = vma.file?.inode
    pageTable.forEachPTETable(start, end) { table, first, last, _ in
      let lock = pageTable.ptl(for: table)
      lock.lock()
      for i in first..<last {
        let e = PTE(raw: table[i].load(ordering: .relaxed))
        guard e.mapsFrame, !e.isSpecial else { continue }
        let m = frames.meta(e.pfn)
        if m.mapcount != 1 { continue }
        if m.flags.contains(.anon) {
          guard vma.flags.contains(.droppable) else { continue }
          table[i].store(0, ordering: .releasing)
          pageTable.releaseZapped(e, gather: &gather)
          continue
        }
        table[i].store(0, ordering: .releasing)
        gather.flushNeeded()
        if e.isDirty {
          m.setFlags(.dirty)
          dirtied.append((m.index, e.pfn))  // tagged dirty in the cache after the PTL
        }
        m.removeMap()
        gather.removePage(e.pfn)
        candidates.append(m.index)
      }
      lock.unlock()
    }
    // Page-cache lock after the PTL, never inside it.
    for (index, page) in dirtied { inode?.pageCache.markDirty(index, page: page) }
    // The PTEs' references go after the flush; then clean pages can leave their cache.
    gather.requireWait()
    gather.finish(machine: machine, synchronous: true)
    if let shmem = vma.shmem {
      for index in candidates { shmem.dropIfClean(index) }
    } else if let inode {
      for index in candidates { inode.pageCache.invalidate(from: index, to: index + 1) }
    }
  }

  /// `force_page_cache_readahead` for page indexes `[from, to)`, stopping at EOF; read errors
  /// are ignored, as readahead ignores them.
  private func readAhead(_ inode: Inode, from: UInt64, to: UInt64) {
    let eofPage = Page.covering(inode.size)
    var index = from
    while index < min(to, eofPage) {
      guard let (page, _) = try? inode.pageCache.findOrRead(index, cache: nil) else { return }
      memory.put(page)
      index += 1
    }
  }

  /// `madvise_populate`: faults `[start, end)` in, for reading or writing. A hole is `ENOMEM`;
  /// a VMA that does not allow the access (no `VM_READ` for a read, no `VM_WRITE` for a write),
  /// or maps PFNs, is `EINVAL`; a fault that ends in SIGBUS (beyond EOF) is `EFAULT`.
  private func madvisePopulate(_ start: UInt64, _ end: UInt64, write: Bool, cpu c: CPU) throws(Errno) {
    var addr = start
    while addr < end {
      mmapLock.readLock()
      let vma = tree.find(addr)?.takeUnretainedValue()
      let bounds = vma.map { ($0.start, $0.end, $0.flags) }
      mmapLock.readUnlock()
      guard let (vStart, vEnd, flags) = bounds, vStart <= addr else { throw Errno.noMemory }
      // check_vma_flags fails the access: EINVAL for populate.
      if !flags.intersection([.io, .pfnMap]).isEmpty { throw Errno.invalidArgument }
      if !flags.contains(write ? .write : .read) { throw Errno.invalidArgument }
      // ... and so does a protection key this thread's PKRU denies (arch_vma_access_permitted).
      if !c.pkeyAllows(flags, write: write) { throw Errno.invalidArgument }
      let stop = min(vEnd, end)
      while addr < stop {
        switch c.faultIn(addr, write: write) {
        case .ok: addr += Page.size
        case .signal(.outOfMemory): throw Errno.noMemory
        // The VMA went away meanwhile (a hole now: ENOMEM), or a guard marker's
        // VM_FAULT_SIGSEGV, which faultin_page turns into EFAULT.
        case .signal(.sigsegv(.mapErr, _)):
          mmapLock.readLock()
          let covered = tree.find(addr).map { $0.takeUnretainedValue().start <= addr } ?? false
          mmapLock.readUnlock()
          throw covered ? Errno.badAddress : Errno.noMemory
        // VM_FAULT_SIGBUS or VM_FAULT_SIGSEGV.
        case .signal: throw Errno.badAddress
        }
      }
    }
  }
}
