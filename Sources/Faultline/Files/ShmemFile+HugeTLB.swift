/// A `MAP_PRIVATE` hugetlb mapping across `fork` (`copy_hugetlb_page_range`, `hugetlb_wp`,
/// `unmap_ref_private` in `mm/hugetlb.c`): the child's mapping gets a copy of the object that
/// holds the same huge pages and frames, and a write to a huge page both still hold copies it
/// into a new one from the pool.
///
/// What this machine's 6.18 kernel does (Tests/Probes/hugetlb_private_fork.c), and Faultline
/// with it: the copy takes an unreserved page (the owner's copy does not use its reservations,
/// a child has none); when the pool has none, the child's write is `SIGBUS`, while the owner
/// (the mapping `mmap` made) takes the page back from the children that share it, unmapping it
/// there, and writes to it in place; a child's later fault of a page it no longer holds is
/// `SIGBUS` (`HPAGE_RESV_UNMAPPED`; Linux marks each child VMA that mapped the page, Faultline
/// the child's whole object).
extension ShmemFile {
  /// The child's object for a private hugetlb mapping: the same inode, name and size, every
  /// page and folio shared with this one, no reservations.
  func forkPrivateHugetlb() -> ShmemFile {
    let copy = ShmemFile(inode: inode, size: size, memory: memory, hugetlb: hugetlb?.forkCopy(), name: name)
    let root = owner ?? self
    copy.owner = root
    lock.withLock {
      for (_, pfn) in pages { memory.meta(pfn).get() }
      copy.pages = pages
    }
    root.lock.withLock {
      root.forkCopies.removeAll { $0.object == nil }
      root.forkCopies.append(WeakShmemFile(copy))
    }
    return copy
  }

  /// `hugetlb_wp` for a write to base page `index`, whose huge page a fork's other side holds
  /// too: a copy from the pool replaces it here, with copies of its frames, and this object's
  /// mappings lose their entries for it, so that the access faults again and maps the copy.
  /// `.sigbus` when the pool has no page for the copy and this is a fork copy; the owner then
  /// takes the page from the copies instead (`unmap_ref_private`). `.retry` otherwise.
  /// - Requires: `hugetlb.faultMutex` held.
  func hugetlbCopyOnWrite(page index: UInt64, cache: FrameCache?) -> VMFaultResult {
    guard let huge = hugetlb, let folio = huge.folio(page: index), folio.isShared else { return .retry }
    let range = huge.basePages(around: index)
    if !huge.allocateCopy() {
      if owner != nil { return .sigbus }
      unmapRefPrivate(folio, range)
      return .retry
    }
    guard copyPages(range, cache: cache) else {
      huge.pool.free(huge.size)
      return .oom
    }
    // The entries that map the shared frames go before the folio stops counting this holder,
    // so that the other side never writes in place while an entry here still reads the page.
    unmapMappingRange(fromPage: range.lowerBound, toPage: range.upperBound)
    huge.installCopy(page: index)
    return .retry
  }

  /// Replaces each page in `range` with a private copy. False when out of frames (the pages
  /// copied so far stay copied: they hold the same bytes).
  private func copyPages(_ range: Range<UInt64>, cache: FrameCache?) -> Bool {
    let old: [(UInt64, PFN)]? = lock.withLock {
      var replaced: [(UInt64, PFN)] = []
      for (index, source) in pages where range.contains(index) {
        guard let p = memory.allocate(cache: cache, flags: [.shmem, .uptodate]) else { return nil }
        memory.address(of: p).copyMemory(from: memory.address(of: source), byteCount: Page.byteCount)
        memory.meta(p).index = index
        memory.meta(p).privateWord.pointee.store(tag, ordering: .releasing)
        pages[index] = p
        replaced.append((index, source))
      }
      return replaced
    }
    guard let old else { return false }
    for (_, source) in old { memory.put(source) }
    return true
  }

  /// `unmap_ref_private`: every fork copy that still holds `folio` loses its entries, frames and
  /// hold on it, and is marked `HPAGE_RESV_UNMAPPED`.
  /// - Requires: this object's `hugetlb.faultMutex` held; it takes each copy's after it.
  private func unmapRefPrivate(_ folio: HugeFolio, _ range: Range<UInt64>) {
    let copies = lock.withLock { forkCopies.compactMap(\.object) }
    for copy in copies {
      guard let huge = copy.hugetlb else { continue }
      huge.faultMutex.withLock {
        guard huge.folio(page: range.lowerBound) === folio else { return }
        copy.unmapMappingRange(fromPage: range.lowerBound, toPage: range.upperBound)
        if huge.dropTakenByOwner(folio, page: range.lowerBound) { copy.dropPages(range.lowerBound, range.upperBound) }
      }
    }
  }
}

/// A fork copy, as its owner lists it without keeping it alive.
struct WeakShmemFile {
  weak var object: ShmemFile?

  init(_ object: ShmemFile) { self.object = object }
}
