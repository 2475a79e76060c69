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
///
/// Reached without reference counting: the fault holds the file through the VMA (or its own
/// reference), so the inode and its page cache are used as `Unmanaged` values, and a cached page
/// is found with no lock (`PageCache.findRCU`). A page-cache miss, which reads from the backing
/// store, and a file system's `->page_mkwrite` are outlined (`PageCache.read`,
/// `callPageMkwrite`): `Scripts/check-hot-path-arc.sh` checks everything else.
extension CPU {
  /// `do_fault` for a none PTE in a file mapping.
  func doFileFault<M: FaultMode>(_ vma: VMASnapshot, _ vmf: FaultContext<M>) -> VMFaultResult {
    let inode = vma.file.unsafelyUnwrapped.withPinned { Unmanaged.passUnretained($0.inode) }
    let index = vma.pageIndex(vmf.address)
    if index >= Page.covering(inode.withPinned { $0.size }) { return .sigbus }
    if !vmf.flags.contains(.write) {
      if faultAround > 1, !M.isSpeculative { mapAround(vma, vmf, inode) }
      return doReadFault(vma, vmf, inode, index)
    }
    if !vma.flags.contains(.shared) { return doCOWFault(vma, vmf, inode, index) }
    return doSharedFileFault(vma, vmf, inode, index)
  }

  /// The page at `index`, read in if needed, referenced for the caller. A cached page is found
  /// under RCU with no lock; a miss reads it in (`fileMiss`).
  /// Fails with `.oom` when out of memory and `.sigbus` otherwise: a read error, or a truncate
  /// that moved EOF below the page after the fault checked it (`filemap_fault`).
  @inline(__always)
  func filePage(_ vma: VMASnapshot, _ inode: Unmanaged<Inode>, _ index: UInt64) -> (PFN?, VMFaultResult) {
    if hooksEnabled.pointee.load(ordering: .relaxed) { runHook(.insideFileFault, vma.start + ((index - vma.pgoff) << Page.shift)) }
    if let page = inode.withPinned({ $0.pageCache.findRCU(index, rcu: rcuSide) }) { return (page, .done) }
    return fileMiss(vma, inode, index)
  }

  /// `filemap_fault` after the lookup missed: reads the page in, and counts a major fault, the
  /// atime update the read makes, and the side effects seen after an overtaking `munmap`
  /// (`filemap_fill_after_unmap`, `atime_after_unmap`). Cold: I/O.
  @inline(never)
  func fileMiss(_ vma: VMASnapshot, _ inode: Unmanaged<Inode>, _ index: UInt64) -> (PFN?, VMFaultResult) {
    let f = inode.takeUnretainedValue()
    let result: (page: PFN, filled: Bool)
    do {
      result = try f.pageCache.findOrRead(index, cache: cache, withinEOF: true)
    } catch {
      return (nil, error == .noMemory ? .oom : .sigbus)
    }
    if result.filled {
      count(counters, .pgmajfault)
      let detached = vma.object.withPinned { $0.isDetached }
      if detached { count(counters, .filemapFillAfterUnmap) }
      if f.touchAtime() && detached { count(counters, .atimeAfterUnmap) }
    }
    return (result.page, .done)
  }

  /// `do_read_fault`: map the page-cache page, read-only.
  func doReadFault<M: FaultMode>(_ vma: VMASnapshot, _ vmf: FaultContext<M>, _ inode: Unmanaged<Inode>, _ index: UInt64) -> VMFaultResult {
    let (found, failure) = filePage(vma, inode, index)
    guard let page = found else { return failure }
    var entry = page.physicalAddress | PTE.present | PTE.user | PTE.accessed
    entry |= vma.flags.ptePageProt
    return installFilePTE(vma, vmf, inode, index, entry, page: page)
  }

  /// `do_cow_fault`: a private write copies the page-cache page into a new anonymous page.
  func doCOWFault<M: FaultMode>(_ vma: VMASnapshot, _ vmf: FaultContext<M>, _ inode: Unmanaged<Inode>, _ index: UInt64) -> VMFaultResult {
    if let reason = anonPrepare(vma, vmf) { return .abort(reason) }
    let (found, failure) = filePage(vma, inode, index)
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
    let r = installFilePTE(vma, vmf, inode, index, entry, page: page)
    if case .done = r { count(counters, .pgcow) }
    return r
  }

  /// `do_shared_fault`: a shared write maps the page-cache page writable and dirties it
  /// (`->page_mkwrite`, then `set_page_dirty`).
  func doSharedFileFault<M: FaultMode>(_ vma: VMASnapshot, _ vmf: FaultContext<M>, _ inode: Unmanaged<Inode>, _ index: UInt64) -> VMFaultResult {
    let (found, failure) = filePage(vma, inode, index)
    guard let page = found else { return failure }
    if vma.object.withPinned({ $0.hasPageMkwrite }) && !callPageMkwrite(inode, index) {
      frames.put(page, cache: cache)
      return .sigbus
    }
    var entry = page.physicalAddress | PTE.present | PTE.user | PTE.accessed | PTE.dirty | PTE.write
    entry |= vma.flags.ptePageProt
    let r = installFilePTE(vma, vmf, inode, index, entry, page: page)
    if case .done = r {
      inode.withPinned {
        _ = $0.pageCache.markDirty(index, page: page, rcu: rcuSide)
        $0.touchMtime()
      }
    }
    return r
  }

  /// The file system's `->page_mkwrite` (`do_page_mkwrite`), for a VMA whose file system has one
  /// (`VMA.hasPageMkwrite`). `false` when it refuses (SIGBUS). Outlined: the call goes through
  /// the file system's protocol witness.
  @inline(never)
  func callPageMkwrite(_ inode: Unmanaged<Inode>, _ index: UInt64) -> Bool {
    let f = inode.takeUnretainedValue()
    do {
      try f.fs.pageMkwrite(f, index: index)
      return true
    } catch {
      return false
    }
  }

  /// `wp_page_shared`: a write to a read-only mapped page of a shared file mapping.
  func wpPageSharedFile<M: FaultMode>(_ vma: VMASnapshot, _ vmf: FaultContext<M>) -> VMFaultResult {
    let inode = vma.file.unsafelyUnwrapped.withPinned { Unmanaged.passUnretained($0.inode) }
    let index = vma.pageIndex(vmf.address)
    if vma.object.withPinned({ $0.hasPageMkwrite }) && !callPageMkwrite(inode, index) { return .sigbus }
    if let reason = pteMapLock(vmf) { return .abort(reason) }
    let old = vmf.origPTE.raw
    var wrote = false
    if vmf.pte.pointee.load(ordering: .relaxed) == old {
      vmf.pte.pointee.store(old | PTE.write | PTE.dirty | PTE.accessed, ordering: .releasing)
      wrote = true
    }
    pteUnmapUnlock(vmf)
    if wrote {
      inode.withPinned {
        _ = $0.pageCache.markDirty(index, page: vmf.origPTE.pfn, rcu: rcuSide)
        $0.touchMtime()
      }
    }
    return .done
  }

  /// Installs a file page (`finishFault`), re-checking EOF under the PTL: `truncate` sets the new
  /// size before it zaps, under the same PTLs, so a fault that sees the old size installs before
  /// the zap and one that installs after sees the new size (SIGBUS).
  func installFilePTE<M: FaultMode>(
    _ vma: VMASnapshot, _ vmf: FaultContext<M>, _ inode: Unmanaged<Inode>, _ index: UInt64, _ entry: UInt64, page: PFN
  ) -> VMFaultResult {
    // Truncate sets the size before it zaps under this PTL, and takes the page out of the
    // cache after: either check sees it. Both take precedence over `pte_same` (`raced` is not
    // looked at).
    let result = finishFault(vmf, entry, page: page) { _ in
      inode.withPinned { f -> VMFaultResult? in
        let cached = frames.meta(page).flags.contains(.anon) || f.pageCache.owns(page, at: index)
        let beyondEOF = index >= Page.covering(f.size)
        if beyondEOF || !cached { return beyondEOF ? .sigbus : .retry }
        return nil
      }
    }
    return result ?? .done
  }

  /// `filemap_map_pages`: maps cached, up-to-date pages around a read fault, read-only, where
  /// their PTEs are none, within the VMA, the PTE table and EOF, and still cached. No I/O and no
  /// page-cache lock:
  /// the lookups run under RCU first (into a buffer on the stack), then one PTL hold maps them.
  @inline(never)
  func mapAround<M: FaultMode>(_ vma: VMASnapshot, _ vmf: FaultContext<M>, _ inode: Unmanaged<Inode>) {
    let window = UInt64(faultAround) << Page.shift
    let blockStart = vmf.address & ~(window - 1)
    let tableStart = vmf.address & ~(PageTable.pmdSize - 1)
    let start = max(blockStart, vma.start, tableStart)
    let end = min(blockStart + window, vma.end, tableStart + PageTable.pmdSize)
    inode.withPinned { f in
      let eofPages = Page.covering(f.size)
      let pageCache = Unmanaged.passUnretained(f.pageCache)
      withUnsafeTemporaryAllocation(of: UInt64.self, capacity: faultAround) { found in
        // Each entry: the page's frame number in the high half, its slot in the window below.
        var n = 0
        var a = start
        while a < end {
          let index = vma.pageIndex(a)
          if a != vmf.address && index < eofPages,
            let p = pageCache.withPinned({ $0.findRCU(index, rcu: rcuSide) })
          {
            found[n] = UInt64(p.raw) << 32 | ((a - blockStart) >> Page.shift)
            n += 1
          }
          a += Page.size
        }
        if n == 0 { return }
        let table = vmf.pte - PageTableWalker.index(vmf.address, level: 1)
        let pageProt = vma.flags.ptePageProt
        let lock = walker.ptl(for: vmf.pte)
        lock.lock()
        var mapped: UInt64 = 0
        for i in 0..<n {
          let page = PFN(UInt32(truncatingIfNeeded: found[i] >> 32))
          let addr = blockStart + (found[i] & 0xffff_ffff) << Page.shift
          let slot = table + PageTableWalker.index(addr, level: 1)
          // As the fault's own install: a page truncate took away, or moved beyond EOF, since
          // the lookup is not mapped (`filemap_map_pages` checks `folio->mapping` and i_size).
          let index = vma.pageIndex(addr)
          if slot.pointee.load(ordering: .relaxed) == 0, index < Page.covering(f.size),
            pageCache.withPinned({ $0.owns(page, at: index) })
          {
            frames.meta(page).addMap()
            slot.pointee.store(page.physicalAddress | PTE.present | PTE.user | PTE.accessed | pageProt, ordering: .releasing)
            found[i] = UInt64.max
            mapped += 1
          }
        }
        lock.unlock()
        for i in 0..<n where found[i] != UInt64.max {
          frames.put(PFN(UInt32(truncatingIfNeeded: found[i] >> 32)), cache: cache)
        }
        count(counters, .faultAroundPages, mapped)
      }
    }
  }
}

/// Pages needed to hold `size` bytes (`DIV_ROUND_UP(i_size, PAGE_SIZE)`).
