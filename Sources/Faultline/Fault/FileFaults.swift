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
  /// `do_fault` for a none PTE in a file mapping: finds the page (`__do_fault` → `filemap_fault`)
  /// and hands it to the read, COW or shared path. The lookup runs inside the mode's file section
  /// (`FaultMode.beginFileAccess`); a miss reads the page in, or aborts where the mode says so.
  func doFileFault<M: FaultMode>(_ vma: VMASnapshot, _ vmf: FaultContext<M>) -> VMFaultResult {
    let index = vma.pageIndex(vmf.address)
    let write = vmf.flags.contains(.write)
    let cow = write && !vma.flags.contains(.shared)
    if cow, let reason = anonPrepare(vma, vmf) { return .abort(reason) }
    if hooksEnabled.pointee.load(ordering: .relaxed) { runHook(.insideFileFault, vmf.address) }
    if !vmf.mode.beginFileAccess(self) { return .abort(.vmaChanged) }
    let inode = vma.file.unsafelyUnwrapped.withPinned { Unmanaged.passUnretained($0.inode) }
    if index >= Page.covering(inode.withPinned { $0.size }) {
      vmf.mode.endFileAccess(self)
      return .sigbus
    }
    if !write && faultAround > 1 && !M.isSpeculative { mapAround(vma, vmf, inode) }
    let cached = inode.withPinned { $0.pageCache.findRCU(index, rcu: rcuSide) }
    vmf.mode.endFileAccess(self)
    let page: PFN
    if let cached {
      page = cached
    } else {
      if M.fileMissAborts { return .abort(.fileMiss) }
      let (found, failure) = fileMiss(vma, inode, index)
      guard let found else { return failure }
      page = found
    }
    if !write { return doReadFault(vma, vmf, inode, index, page) }
    if cow { return doCOWFault(vma, vmf, inode, index, page) }
    return doSharedFileFault(vma, vmf, inode, index, page)
  }

  /// `filemap_fault` after the lookup missed: reads the page in, and counts a major fault, the
  /// atime update the read makes, and the side effects seen after an overtaking `munmap`
  /// (`filemap_fill_after_unmap`, `atime_after_unmap`). Cold: I/O.
  /// Fails with `.oom` when out of memory and `.sigbus` otherwise: a read error, or a truncate
  /// that moved EOF below the page after the fault checked it.
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

  /// `do_read_fault`: map the page-cache page `page`, read-only.
  func doReadFault<M: FaultMode>(
    _ vma: VMASnapshot, _ vmf: FaultContext<M>, _ inode: Unmanaged<Inode>, _ index: UInt64, _ page: PFN
  ) -> VMFaultResult {
    var entry = page.physicalAddress | PTE.present | PTE.user | PTE.accessed
    entry |= vma.flags.ptePageProt
    return installFilePTE(vmf, inode, index, entry, page: page).result
  }

  /// `do_cow_fault`: a private write copies the page-cache page `source` into a new anonymous
  /// page.
  func doCOWFault<M: FaultMode>(
    _ vma: VMASnapshot, _ vmf: FaultContext<M>, _ inode: Unmanaged<Inode>, _ index: UInt64, _ source: PFN
  ) -> VMFaultResult {
    guard let page = allocateUserPage(flags: .anon, zeroed: false) else {
      frames.put(source, cache: cache)
      return .oom
    }
    frames.address(of: page).copyMemory(from: frames.address(of: source), byteCount: Page.byteCount)
    frames.put(source, cache: cache)
    frames.meta(page).index = index
    var entry = page.physicalAddress | PTE.present | PTE.user | PTE.accessed | PTE.dirty | PTE.write
    entry |= vma.flags.ptePageProt
    let r = installFilePTE(vmf, inode, index, entry, page: page).result
    if case .done = r { count(counters, .pgcow) }
    return r
  }

  /// `do_shared_fault`: a shared write maps the page-cache page writable and dirties it
  /// (`->page_mkwrite`, then `fault_dirty_shared_page`).
  func doSharedFileFault<M: FaultMode>(
    _ vma: VMASnapshot, _ vmf: FaultContext<M>, _ inode: Unmanaged<Inode>, _ index: UInt64, _ page: PFN
  ) -> VMFaultResult {
    if vma.hasPageMkwrite && !callPageMkwrite(inode, index) {
      frames.put(page, cache: cache)
      return .sigbus
    }
    var entry = page.physicalAddress | PTE.present | PTE.user | PTE.accessed | PTE.dirty | PTE.write
    entry |= vma.flags.ptePageProt
    let (r, tagLater) = installFilePTE(vmf, inode, index, entry, page: page, dirtyShared: true)
    if tagLater { tagDirtyAndUnpin(inode, index, page) }
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

  /// `fault_dirty_shared_page` for a page just mapped writable, with its PTL held (and, for a
  /// speculative fault, the sequence validated under it, so the inode is alive): marks the page
  /// dirty and updates mtime (`file_update_time`). A page already dirty and tagged needs nothing
  /// more; otherwise the tag must be set under the page-cache lock, which is never taken under
  /// a PTL: the inode is pinned here (`pinForTagging`) and the caller tags after the unlock
  /// (`tagDirtyAndUnpin`). Returns whether it must.
  @inline(__always)
  func dirtySharedPage(_ inode: Unmanaged<Inode>, _ index: UInt64, _ page: PFN) -> Bool {
    let tagged = inode.withPinned { f -> Bool in
      f.touchMtime()
      return f.pageCache.markDirtyLockless(index, page: page, rcu: rcuSide)
    }
    if tagged { return false }
    pinForTagging(inode, page)
    return true
  }

  /// Takes references on `inode` and `page` for `tagDirtyAndUnpin`, under the PTL: nothing else
  /// pins the inode after it under Lespinasse's design, and a truncate could free the page once
  /// the PTL is dropped (Linux holds the folio's reference and lock instead). Cold: once per clean
  /// page written.
  @inline(never)
  func pinForTagging(_ inode: Unmanaged<Inode>, _ page: PFN) {
    _ = inode.retain()
    frames.meta(page).get()
  }

  /// `__folio_mark_dirty` after the PTL: tags the page under the page-cache lock, then drops the
  /// references `pinForTagging` took. Cold: once per clean page written.
  @inline(never)
  func tagDirtyAndUnpin(_ inode: Unmanaged<Inode>, _ index: UInt64, _ page: PFN) {
    _ = inode.takeUnretainedValue().pageCache.tagDirty(index, page: page)
    frames.put(page, cache: cache)
    inode.release()
  }

  /// `wp_page_shared`: a write to a read-only mapped page of a shared file mapping.
  func wpPageSharedFile<M: FaultMode>(_ vma: VMASnapshot, _ vmf: FaultContext<M>) -> VMFaultResult {
    let index = vma.pageIndex(vmf.address)
    if vma.hasPageMkwrite {
      let inode = vma.file.unsafelyUnwrapped.withPinned { Unmanaged.passUnretained($0.inode) }
      if !callPageMkwrite(inode, index) { return .sigbus }
    }
    if let reason = pteMapLock(vmf) { return .abort(reason) }
    var tagLater = false
    let inode = vma.file.unsafelyUnwrapped.withPinned { Unmanaged.passUnretained($0.inode) }
    let old = vmf.origPTE.raw
    if vmf.pte.pointee.load(ordering: .relaxed) == old {
      vmf.pte.pointee.store(old | PTE.write | PTE.dirty | PTE.accessed, ordering: .releasing)
      tagLater = dirtySharedPage(inode, index, vmf.origPTE.pfn)
    }
    pteUnmapUnlock(vmf)
    if tagLater { tagDirtyAndUnpin(inode, index, vmf.origPTE.pfn) }
    return .done
  }

  /// Installs a file page (`finishFault`), re-checking EOF under the PTL: `truncate` sets the new
  /// size before it zaps, under the same PTLs, so a fault that sees the old size installs before
  /// the zap and one that installs after sees the new size (SIGBUS). With `dirtyShared`, the
  /// page is dirtied after the install with the PTL still held (`dirtySharedPage`), and
  /// `tagLater` says whether the caller must still tag it (`tagDirtyAndUnpin`).
  func installFilePTE<M: FaultMode>(
    _ vmf: FaultContext<M>, _ inode: Unmanaged<Inode>, _ index: UInt64, _ entry: UInt64, page: PFN,
    dirtyShared: Bool = false
  ) -> (result: VMFaultResult, tagLater: Bool) {
    var tagLater = false
    // Truncate sets the size before it zaps under this PTL, and takes the page out of the
    // cache after: either check sees it. Both take precedence over `pte_same` (`raced` is not
    // looked at).
    let result = finishFault(vmf, entry, page: page, recheck: { _ in
      inode.withPinned { f -> VMFaultResult? in
        let cached = frames.meta(page).flags.contains(.anon) || f.pageCache.owns(page, at: index)
        let beyondEOF = index >= Page.covering(f.size)
        if beyondEOF || !cached { return beyondEOF ? .sigbus : .retry }
        return nil
      }
    }, installed: {
      if dirtyShared { tagLater = dirtySharedPage(inode, index, page) }
    })
    return (result ?? .done, tagLater)
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
