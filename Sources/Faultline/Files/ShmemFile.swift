/// The shmem object behind a `MAP_SHARED | MAP_ANONYMOUS` mapping (`shmem_zero_setup`): a page
/// cache keyed by page index, so that pages survive `MADV_DONTNEED` and every VMA split from the
/// mapping sees the same pages.
///
/// Faultline deliberately keeps this minimal until the Files layer lands: no size, no swap, no
/// writeback. Its inode number shows in `/proc/self/maps` as Linux shows `/dev/zero (deleted)`.
/// Guards: `lock` guards `pages`. Lock order: taken before the PTL.
public final class ShmemFile: @unchecked Sendable {
  public let inode: UInt64
  let memory: PhysicalMemory
  private let lock = PThreadMutex()
  private var pages: [UInt64: PFN] = [:]

  init(inode: UInt64, memory: PhysicalMemory) {
    self.inode = inode
    self.memory = memory
  }

  deinit {
    for (_, pfn) in pages { memory.put(pfn) }
  }

  /// The page at `index`, created zero-filled if absent, with a reference taken for the caller
  /// (`shmem_get_folio`). `nil` when out of memory.
  func getPage(_ index: UInt64, cache: FrameCache?) -> PFN? {
    lock.withLock {
      if let p = pages[index] {
        memory.meta(p).get()
        return p
      }
      guard let p = memory.allocateZeroed(cache: cache, flags: [.shmem, .uptodate]) else { return nil }
      memory.meta(p).index = index
      memory.meta(p).get()  // one for the cache, one for the caller
      pages[index] = p
      return p
    }
  }

  /// Drops the pages with index in `[from, to)` (`shmem_fallocate(PUNCH_HOLE)`). Mappings must
  /// have been zapped first; a page still mapped keeps its frame until its PTE goes.
  func punchHole(_ from: UInt64, _ to: UInt64) {
    let dropped: [PFN] = lock.withLock {
      var out: [PFN] = []
      for (index, pfn) in pages where index >= from && index < to {
        out.append(pfn)
        pages[index] = nil
      }
      return out
    }
    for p in dropped { memory.put(p) }
  }

  /// Whether the page at `index` exists (`mincore` on shmem).
  func hasPage(_ index: UInt64) -> Bool { lock.withLock { pages[index] != nil } }

  /// Pages held in the cache.
  public var residentPages: Int { lock.withLock { pages.count } }
}
