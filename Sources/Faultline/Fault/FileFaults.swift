import Synchronization

/// Faults on file mappings (`do_fault`: `do_read_fault`, `do_cow_fault`, `do_shared_fault`, and
/// `wp_page_shared` for a write to a mapped page-cache page), with `filemap_fault`'s SIGBUS
/// beyond EOF and `filemap_map_pages`'s fault-around.
///
/// Shared mappings are mapped read-only on a read fault even when the VMA is writable (the
/// file system wants write notification, as a disk file system with dirty accounting does), so
/// that every page written through a mapping takes a write fault and is marked dirty in the page
/// cache; `msync` write-protects pages again before writing them back.
///
/// A speculative fault reads the page (possibly from the host file) outside any lock, holding
/// the file through its VMA reference (`FputMode.deferred`) or its own reference
/// (`.synchronous`). If `munmap` overtook it, the side effects it still has are counted:
/// `filemap_fill_after_unmap` and `atime_after_unmap`.
extension CPU {
  /// `do_fault` for a none PTE in a file mapping.
  func doFileFault<M: FaultMode>(_ vma: VMASnapshot, _ vmf: FaultContext<M>) -> VMFaultResult {
    let file = vma.file.unsafelyUnwrapped
    let index = vma.pageIndex(vmf.address)
    return file.withPinned { f -> VMFaultResult in
      let inode = f.inode
      if index >= Page.covering(inode.size) { return .sigbus }
      if !vmf.flags.contains(.write) {
        if faultAround > 1, !M.isSpeculative { mapAround(vma, vmf, f) }
        return doReadFault(vma, vmf, f, index)
      }
      if !vma.flags.contains(.shared) { return doCOWFault(vma, vmf, f, index) }
      return doSharedFileFault(vma, vmf, f, index)
    }
  }

  /// The page at `index`, read in if needed, referenced for the caller. Counts a major fault and
  /// the atime update a read from the backing store makes, and the side effects seen after an
  /// overtaking `munmap`.
  /// Fails with `.oom` when out of memory and `.sigbus` otherwise: a read error, or a truncate
  /// that moved EOF below the page after the fault checked it (`filemap_fault`).
  @inline(never)
  func filePage(_ vma: VMASnapshot, _ f: OpenFile, _ index: UInt64) -> (PFN?, VMFaultResult) {
    if hooksEnabled.pointee.load(ordering: .relaxed) { runHook(.insideFileFault, vma.start + ((index - vma.pgoff) << Page.shift)) }
    let result: (page: PFN, filled: Bool)
    do {
      result = try f.inode.pageCache.findOrRead(index, cache: cache, withinEOF: true)
    } catch {
      return (nil, error == .noMemory ? .oom : .sigbus)
    }
    if result.filled {
      count(counters, .pgmajfault)
      let detached = vma.object.withPinned { $0.isDetached }
      if detached { count(counters, .filemapFillAfterUnmap) }
      if f.inode.touchAtime() && detached { count(counters, .atimeAfterUnmap) }
    }
    return (result.page, .done)
  }

  /// `do_read_fault`: map the page-cache page, read-only.
  func doReadFault<M: FaultMode>(_ vma: VMASnapshot, _ vmf: FaultContext<M>, _ f: OpenFile, _ index: UInt64) -> VMFaultResult {
    let (found, failure) = filePage(vma, f, index)
    guard let page = found else { return failure }
    var entry = page.physicalAddress | PTE.present | PTE.user | PTE.accessed
    entry |= vma.flags.ptePageProt
    return installFilePTE(vma, vmf, f, index, entry, page: page)
  }

  /// `do_cow_fault`: a private write copies the page-cache page into a new anonymous page.
  func doCOWFault<M: FaultMode>(_ vma: VMASnapshot, _ vmf: FaultContext<M>, _ f: OpenFile, _ index: UInt64) -> VMFaultResult {
    if let reason = anonPrepare(vma, vmf) { return .abort(reason) }
    let (found, failure) = filePage(vma, f, index)
    guard let source = found else { return failure }
    guard let page = allocateUserPage(flags: .anon, zeroed: false) else {
      frames.put(source, cache: cache)
      return .oom
    }
    frames.address(of: page).copyMemory(from: frames.address(of: source), byteCount: Page.byteCount)
    frames.put(source, cache: cache)
    frames.meta(page).index = index
    var entry = page.physicalAddress | PTE.present | PTE.user | PTE.accessed | PTE.dirty | PTE.write
    entry |= vma.flags.ptePageProt
    let r = installFilePTE(vma, vmf, f, index, entry, page: page)
    if case .done = r { count(counters, .pgcow) }
    return r
  }

  /// `do_shared_fault`: a shared write maps the page-cache page writable and dirties it
  /// (`->page_mkwrite`, then `set_page_dirty`).
  func doSharedFileFault<M: FaultMode>(_ vma: VMASnapshot, _ vmf: FaultContext<M>, _ f: OpenFile, _ index: UInt64) -> VMFaultResult {
    let (found, failure) = filePage(vma, f, index)
    guard let page = found else { return failure }
    do {
      try f.inode.fs.pageMkwrite(f.inode, index: index)
    } catch {
      frames.put(page, cache: cache)
      return .sigbus
    }
    var entry = page.physicalAddress | PTE.present | PTE.user | PTE.accessed | PTE.dirty | PTE.write
    entry |= vma.flags.ptePageProt
    let r = installFilePTE(vma, vmf, f, index, entry, page: page)
    if case .done = r {
      _ = f.inode.pageCache.markDirty(index, page: page)
      f.inode.touchMtime()
    }
    return r
  }

  /// `wp_page_shared`: a write to a read-only mapped page of a shared file mapping.
  func wpPageSharedFile<M: FaultMode>(_ vma: VMASnapshot, _ vmf: FaultContext<M>) -> VMFaultResult {
    let file = vma.file.unsafelyUnwrapped
    let index = vma.pageIndex(vmf.address)
    let allowed = file.withPinned { f -> Bool in
      do {
        try f.inode.fs.pageMkwrite(f.inode, index: index)
        return true
      } catch {
        return false
      }
    }
    if !allowed { return .sigbus }
    if let reason = pteMapLock(vmf) { return .abort(reason) }
    let old = vmf.origPTE.raw
    var wrote = false
    if vmf.pte.pointee.load(ordering: .relaxed) == old {
      vmf.pte.pointee.store(old | PTE.write | PTE.dirty | PTE.accessed, ordering: .releasing)
      wrote = true
    }
    pteUnmapUnlock(vmf)
    if wrote {
      file.withPinned {
        _ = $0.inode.pageCache.markDirty(index, page: vmf.origPTE.pfn)
        $0.inode.touchMtime()
      }
    }
    return .done
  }

  /// Installs a file page (`finishFault`), re-checking EOF under the PTL: `truncate` sets the new
  /// size before it zaps, under the same PTLs, so a fault that sees the old size installs before
  /// the zap and one that installs after sees the new size (SIGBUS).
  func installFilePTE<M: FaultMode>(
    _ vma: VMASnapshot, _ vmf: FaultContext<M>, _ f: OpenFile, _ index: UInt64, _ entry: UInt64, page: PFN
  ) -> VMFaultResult {
    // Truncate sets the size before it zaps under this PTL, and takes the page out of the
    // cache after: either check sees it. Both take precedence over `pte_same` (`raced` is not
    // looked at).
    let result = finishFault(vmf, entry, page: page) { _ in
      let cached = frames.meta(page).flags.contains(.anon) || f.inode.pageCache.owns(page, at: index)
      if index >= Page.covering(f.inode.size) || !cached {
        return index >= Page.covering(f.inode.size) ? .sigbus : .retry
      }
      return nil
    }
    return result ?? .done
  }

  /// `filemap_map_pages`: maps cached, up-to-date pages around a read fault, read-only, where
  /// their PTEs are none, within the VMA, the PTE table and EOF. No I/O. The page-cache lookups
  /// come first, then one PTL hold (the page-cache lock is never held with a PTL: `LockOrder`).
  @inline(never)
  func mapAround<M: FaultMode>(_ vma: VMASnapshot, _ vmf: FaultContext<M>, _ f: OpenFile) {
    let window = UInt64(faultAround) << Page.shift
    let blockStart = vmf.address & ~(window - 1)
    let tableStart = vmf.address & ~(PageTable.pmdSize - 1)
    let start = max(blockStart, vma.start, tableStart)
    let end = min(blockStart + window, vma.end, tableStart + PageTable.pmdSize)
    let eofPages = Page.covering(f.inode.size)
    var found: [(UInt64, PFN)] = []
    var a = start
    while a < end {
      let index = vma.pageIndex(a)
      if a != vmf.address && index < eofPages, let p = f.inode.pageCache.find(index) { found.append((a, p)) }
      a += Page.size
    }
    if found.isEmpty { return }
    let table = vmf.pte - PageTableWalker.index(vmf.address, level: 1)
    let pageProt = vma.flags.ptePageProt
    let lock = walker.ptl(for: vmf.pte)
    lock.lock()
    var mapped: UInt64 = 0
    for i in found.indices {
      let (addr, page) = found[i]
      let slot = table + PageTableWalker.index(addr, level: 1)
      if slot.pointee.load(ordering: .relaxed) == 0 {
        frames.meta(page).addMap()
        slot.pointee.store(page.physicalAddress | PTE.present | PTE.user | PTE.accessed | pageProt, ordering: .releasing)
        found[i].1 = PFN(UInt32.max)
        mapped += 1
      }
    }
    lock.unlock()
    for (_, p) in found where p.raw != UInt32.max { frames.put(p, cache: cache) }
    count(counters, .faultAroundPages, mapped)
  }
}

/// Pages needed to hold `size` bytes (`DIV_ROUND_UP(i_size, PAGE_SIZE)`).
