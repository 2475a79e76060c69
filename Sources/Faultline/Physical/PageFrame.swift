import Synchronization

/// A physical frame number: the index of a 4 KiB frame in the `PhysicalMemory` arena. Its
/// physical address is `pfn << 12`. Frame 0 is the shared zero frame (`ZERO_PAGE`).
package struct PFN: Hashable, Comparable, Sendable, CustomStringConvertible {
  /// The frame's index in the arena.
  package let raw: UInt32
  /// The frame with index `raw`.
  @inline(__always) package init(_ raw: UInt32) { self.raw = raw }
  /// The frame holding physical address `phys`.
  @inline(__always) package init(physical phys: UInt64) { raw = UInt32(truncatingIfNeeded: phys >> Page.shift) }
  /// `PFN_PHYS`: the frame's physical address (an offset into the arena).
  @inline(__always) var physicalAddress: UInt64 { UInt64(raw) << Page.shift }
  package static func < (a: PFN, b: PFN) -> Bool { a.raw < b.raw }
  package var description: String { "pfn \(raw)" }
  /// The zero frame, mapped read-only by read faults on private anonymous memory.
  package static let zero = PFN(0)
}

/// Page flags kept in frame metadata (a subset of `enum pageflags`).
package struct PageFlags: OptionSet, Sendable {
  package let rawValue: UInt32
  package init(rawValue: UInt32) { self.rawValue = rawValue }
  /// `PG_locked`: someone is filling or writing the page; others wait for it.
  package static let locked = PageFlags(rawValue: 1 << 0)
  /// `PG_uptodate`: the contents are valid.
  package static let uptodate = PageFlags(rawValue: 1 << 1)
  /// `PG_dirty`: the contents differ from the backing store.
  package static let dirty = PageFlags(rawValue: 1 << 2)
  /// Anonymous memory (`PageAnon`).
  package static let anon = PageFlags(rawValue: 1 << 3)
  /// A page-table page (`PageTable`); its `lock` word is the split PTL.
  package static let pageTable = PageFlags(rawValue: 1 << 4)
  /// Never freed: the zero frame.
  package static let reserved = PageFlags(rawValue: 1 << 5)
  /// On a free list. Set and cleared by the allocator; catches double frees and use after free.
  package static let free = PageFlags(rawValue: 1 << 6)
  /// Owned by a shared-memory object (shmem-like page cache).
  package static let shmem = PageFlags(rawValue: 1 << 7)
  /// `PG_head`: the first frame of a compound (huge) page; it holds the whole page's refcount
  /// and flags. Only the PMD order exists, so the order needs no field.
  package static let head = PageFlags(rawValue: 1 << 8)
  /// A tail frame of a compound page (Linux's `compound_head` bit 0): its head is the frame at
  /// the 512-frame boundary below it (`FrameAllocator.compoundHead`).
  package static let tail = PageFlags(rawValue: 1 << 9)
}

/// One frame's metadata as it lies in the metadata mapping (`struct page`, much reduced):
/// 32 bytes, laid out in declaration order as Swift lays out a struct's stored properties
/// (refcount 0, mapcount 4, flags 8, lock 12, index 16, private 24).
/// `PhysicalMemory` binds the whole mapping to this type once, where it maps it; every field is
/// atomic, because faults on several CPUs touch the same frame. The zero-filled mapping is every
/// field at 0.
@usableFromInline struct PageMetadata: ~Copyable {
  let refcount: Atomic<UInt32>
  let mapcount: Atomic<Int32>
  let flags: Atomic<UInt32>
  /// The PTL of a page-table page, the page lock of a data page.
  let lock: Atomic<UInt32>
  /// Page-cache index or anonymous pgoff.
  let index: Atomic<UInt64>
  /// Owner-defined (the page cache's and shmem's ownership tag).
  let `private`: Atomic<UInt64>

  /// Byte offsets of the fields handed out as pointers (`FrameMeta.lockWord`, `privateWord`).
  static let lockOffset = 12
  static let privateOffset = 24
}

/// A view of one frame's metadata (`PageMetadata`, in a parallel array): copying it copies the
/// pointer.
package struct FrameMeta {
  /// Bytes of metadata per frame.
  package static let stride = 32
  @usableFromInline let p: UnsafeMutablePointer<PageMetadata>

  @inline(__always) init(_ p: UnsafeMutablePointer<PageMetadata>) { self.p = p }

  /// The lock word: the PTL of a page-table page, the page lock of a data page. A stored
  /// property of the bound `PageMetadata`, so its memory is already bound to `Atomic<UInt32>`.
  @inline(__always) var lockWord: UnsafeMutablePointer<Atomic<UInt32>> {
    (UnsafeMutableRawPointer(p) + PageMetadata.lockOffset).assumingMemoryBound(to: Atomic<UInt32>.self)
  }
  /// The owner-defined word, bound as `lockWord` is.
  @inline(__always) var privateWord: UnsafeMutablePointer<Atomic<UInt64>> {
    (UnsafeMutableRawPointer(p) + PageMetadata.privateOffset).assumingMemoryBound(to: Atomic<UInt64>.self)
  }

  /// References: page tables mapping it, page-cache membership, in-flight users.
  package var refcount: UInt32 { p.pointee.refcount.load(ordering: .acquiring) }
  /// Page-table entries mapping it (`page_mapcount`).
  package var mapcount: Int32 { p.pointee.mapcount.load(ordering: .acquiring) }
  /// The page flags (`page->flags`).
  package var flags: PageFlags { PageFlags(rawValue: p.pointee.flags.load(ordering: .acquiring)) }
  /// `page->index`: the page-cache index, or the anonymous page's offset.
  package var index: UInt64 {
    get { p.pointee.index.load(ordering: .relaxed) }
    nonmutating set { p.pointee.index.store(newValue, ordering: .relaxed) }
  }

  /// `get_page`: takes a reference.
  @inline(__always) package func get() { p.pointee.refcount.wrappingAdd(1, ordering: .relaxed) }
  /// `folio_try_get`: takes a reference unless the count is already zero (the frame is being
  /// freed, or free); `false` then.
  @inline(__always) package func tryGet() -> Bool {
    var c = p.pointee.refcount.load(ordering: .relaxed)
    while c != 0 {
      let (done, now) = p.pointee.refcount.compareExchange(
        expected: c, desired: c + 1, successOrdering: .acquiring, failureOrdering: .relaxed)
      if done { return true }
      c = now
    }
    return false
  }
  /// `folio_ref_freeze`: drops the count from `expected` to zero in one step, or does nothing
  /// and returns `false` when the count is something else. A frozen frame cannot be taken by
  /// `tryGet`; its owner frees it with `FrameAllocator.free`.
  @inline(__always) package func freeze(expected: UInt32) -> Bool {
    p.pointee.refcount.compareExchange(
      expected: expected, desired: 0, successOrdering: .acquiringAndReleasing, failureOrdering: .relaxed
    ).exchanged
  }
  /// Drops a reference; `true` when it was the last one (the caller frees the frame).
  @inline(__always) package func put() -> Bool {
    let old = p.pointee.refcount.wrappingSubtract(1, ordering: .acquiringAndReleasing).oldValue
    precondition(old > 0, "page refcount underflow")
    return old == 1
  }
  /// Counts one more PTE mapping the frame.
  @inline(__always) package func addMap() { p.pointee.mapcount.wrappingAdd(1, ordering: .relaxed) }
  /// Counts one PTE fewer; the count must be positive.
  @inline(__always) package func removeMap() {
    let old = p.pointee.mapcount.wrappingSubtract(1, ordering: .relaxed).oldValue
    precondition(old > 0, "page mapcount underflow")
  }
  /// Sets the flags in `f`, atomically.
  @inline(__always) func setFlags(_ f: PageFlags) { p.pointee.flags.bitwiseOr(f.rawValue, ordering: .relaxed) }
  /// Clears the flags in `f`, atomically.
  @inline(__always) func clearFlags(_ f: PageFlags) {
    p.pointee.flags.bitwiseAnd(~f.rawValue, ordering: .relaxed)
  }
  /// The split page-table lock (for page-table pages).
  @inline(__always) package var ptl: SpinLock { SpinLock(word: lockWord) }
}
