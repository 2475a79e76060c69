import Synchronization

/// The frame allocator of a `PhysicalMemory` arena as a plain value: raw pointers only, so a
/// fault can allocate and free with no reference counting. Valid while its arena lives.
///
/// Two free lists, the order-0 and order-9 ones of a buddy allocator without the orders in
/// between: the free stack of 4 KiB frames, and the block stack of free 2 MiB-aligned runs of
/// 512 frames (`TransparentHugePage.pages`), each named by its first frame. A 4 KiB allocation
/// that finds the free stack empty splits the lowest free block into it (`expand`); a huge
/// allocation takes a whole block, or fails when none is left (the caller falls back to 4 KiB:
/// `thp_fault_fallback`). Freeing a huge page returns its block whole. Frames freed one by one
/// are never merged back into a block: there is no buddy merging and no compaction, so a split
/// block stays split (`huge_memory`'s fallback when memory is fragmented).
///
/// A huge page is a compound page: its first frame is the head (`PageFlags.head`), which holds
/// the reference count and the flags of the whole page; the 511 others are tails
/// (`PageFlags.tail`) whose head is found by alignment (`compoundHead`), since every block is
/// 2 MiB-aligned in the arena. So the 32 bytes of metadata need not grow.
///
/// Guards: `freeLock` guards both stacks and their counts (`freeState[0]` frames,
/// `freeState[1]` blocks).
struct FrameAllocator: @unchecked Sendable {
  let base: UnsafeMutableRawPointer
  /// The arena as the `Atomic<UInt64>` words it was bound to (`PhysicalMemory.init`): page-table
  /// pages are read through these; data pages only through `base`, as raw bytes.
  let words: UnsafeMutablePointer<Atomic<UInt64>>
  let metaBase: UnsafeMutablePointer<PageMetadata>
  let freeStack: UnsafeMutablePointer<UInt32>
  let freeState: UnsafeMutablePointer<Atomic<Int>>
  /// Free 2 MiB blocks, by head frame (lowest on top at first); `freeState[1]` counts them.
  let blockStack: UnsafeMutablePointer<UInt32>
  let freeLock: SpinLock

  init(
    base: UnsafeMutableRawPointer, words: UnsafeMutablePointer<Atomic<UInt64>>, meta: UnsafeMutablePointer<PageMetadata>,
    freeStack: UnsafeMutablePointer<UInt32>, freeState: UnsafeMutablePointer<Atomic<Int>>,
    blockStack: UnsafeMutablePointer<UInt32>, freeLock: SpinLock
  ) {
    self.base = base
    self.words = words
    metaBase = meta
    self.freeStack = freeStack
    self.freeState = freeState
    self.blockStack = blockStack
    self.freeLock = freeLock
  }

  /// The metadata of frame `pfn` (`pfn_to_page`).
  @inline(__always) func meta(_ pfn: PFN) -> FrameMeta {
    FrameMeta(metaBase + Int(pfn.raw))
  }
  /// Host address of the frame's first byte.
  @inline(__always) func address(of pfn: PFN) -> UnsafeMutableRawPointer {
    base + (Int(pfn.raw) &<< Page.shift)
  }
  /// Host address of a physical address (an offset into the arena).
  @inline(__always) func address(physical phys: UInt64) -> UnsafeMutableRawPointer {
    base + Int(truncatingIfNeeded: phys)
  }
  /// Frame `pfn` as 512 `Atomic<UInt64>` words: a page-table page's entries.
  @inline(__always) func words(of pfn: PFN) -> UnsafeMutablePointer<Atomic<UInt64>> {
    words + (Int(pfn.raw) &<< 9)
  }

  /// Allocates a frame with refcount 1 and `flags`, from `cache` when one is given. The contents
  /// are whatever the last user left; see `allocateZeroed`. `nil` when out of memory.
  @inline(__always)
  func allocate(cache: FrameCache? = nil, flags: PageFlags = []) -> PFN? {
    let pfn: PFN
    if let cache {
      if let p = cache.pop() {
        pfn = p
      } else {
        guard refill(cache) else { return nil }
        pfn = cache.pop()!
      }
    } else {
      guard let p = popGlobal() else { return nil }
      pfn = p
    }
    let m = meta(pfn)
    assert(m.flags.contains(.free), "allocated a frame that was not free")
    m.p.pointee.flags.store(flags.rawValue, ordering: .relaxed)
    m.p.pointee.mapcount.store(0, ordering: .relaxed)
    m.p.pointee.index.store(0, ordering: .relaxed)
    m.p.pointee.private.store(0, ordering: .relaxed)
    m.p.pointee.lock.store(0, ordering: .relaxed)
    m.p.pointee.refcount.store(1, ordering: .releasing)
    return pfn
  }

  /// `allocate`, then zero the frame (`clear_user_highpage`).
  @inline(__always)
  func allocateZeroed(cache: FrameCache? = nil, flags: PageFlags = []) -> PFN? {
    guard let pfn = allocate(cache: cache, flags: flags) else { return nil }
    address(of: pfn).initializeMemory(as: UInt8.self, repeating: 0, count: Page.byteCount)
    return pfn
  }

  /// Returns a frame whose refcount has reached zero. Freeing a mapped, referenced, reserved or
  /// already free frame is a kernel bug ("Bad page state") and traps.
  @inline(__always)
  func free(_ pfn: PFN, cache: FrameCache? = nil) {
    let m = meta(pfn)
    if m.refcount != 0 || m.mapcount != 0 || !m.flags.isDisjoint(with: Self.notPlainlyFreeable) {
      freeUnusual(pfn)
      return
    }
    m.p.pointee.flags.store(PageFlags.free.rawValue, ordering: .relaxed)
    if let cache {
      if !cache.push(pfn) {
        drain(cache, keep: FrameCache.capacity / 2)
        _ = cache.push(pfn)
      }
    } else {
      freeLock.lock()
      let top = freeState.pointee.load(ordering: .relaxed)
      freeStack[top] = pfn.raw
      freeState.pointee.store(top + 1, ordering: .relaxed)
      freeLock.unlock()
    }
  }

  /// Flags that send `free` to `freeUnusual`: a compound page, or a frame that must never be
  /// freed.
  static let notPlainlyFreeable: PageFlags = [.reserved, .free, .head, .tail]

  /// `free` of a frame that is not a plain 4 KiB one: a huge page's head returns its block
  /// (`free_compound_page`); anything else is a bad page.
  @inline(never)
  func freeUnusual(_ pfn: PFN) {
    let m = meta(pfn)
    guard m.refcount == 0, m.mapcount == 0, m.flags.contains(.head), !m.flags.contains(.free) else { badPage(pfn) }
    freeHuge(pfn)
  }

  @inline(never)
  func badPage(_ pfn: PFN) -> Never {
    let m = meta(pfn)
    fatalError("Bad page state: freeing \(pfn) refcount \(m.refcount) mapcount \(m.mapcount) flags \(m.flags.rawValue)")
  }

  /// Drops a reference and frees the frame on the last one.
  @inline(__always)
  func put(_ pfn: PFN, cache: FrameCache? = nil) {
    if meta(pfn).put() { free(pfn, cache: cache) }
  }

  func popGlobal() -> PFN? {
    freeLock.lock()
    defer { freeLock.unlock() }
    var top = freeState.pointee.load(ordering: .relaxed)
    if top == 0 { top = expandLocked() }
    if top == 0 { return nil }
    freeState.pointee.store(top - 1, ordering: .relaxed)
    return PFN(freeStack[top - 1])
  }

  /// Moves up to half a cache's worth of frames from the global stack into `cache`.
  @inline(never)
  func refill(_ cache: FrameCache) -> Bool {
    freeLock.lock()
    var top = freeState.pointee.load(ordering: .relaxed)
    if top == 0 { top = expandLocked() }
    let n = min(top, FrameCache.capacity / 2)
    for i in 0..<n { _ = cache.push(PFN(freeStack[top - 1 - i])) }
    freeState.pointee.store(top - n, ordering: .relaxed)
    freeLock.unlock()
    return n > 0
  }

  /// Moves frames from `cache` back to the global stack until `keep` remain.
  func drain(_ cache: FrameCache, keep: Int = 0) {
    freeLock.lock()
    var top = freeState.pointee.load(ordering: .relaxed)
    while cache.count > keep, let p = cache.pop() {
      freeStack[top] = p.raw
      top += 1
    }
    freeState.pointee.store(top, ordering: .relaxed)
    freeLock.unlock()
  }
}

/// A per-thread stack of free frames in front of the global free stack (`per_cpu_pages`), as a
/// plain value over raw storage. One thread uses it at a time; its count is atomic only so that
/// accounting can read it. Made and freed by `PhysicalMemory.makeCache`/`unregister`.
package struct FrameCache: @unchecked Sendable {
  /// The most frames one cache holds.
  package static let capacity = 64
  let frames: UnsafeMutablePointer<UInt32>
  let countWord: UnsafeMutablePointer<Atomic<Int>>

  static func allocate() -> FrameCache {
    let c = FrameCache(frames: .allocate(capacity: capacity), countWord: .allocate(capacity: 1))
    c.countWord.initialize(to: Atomic(0))
    return c
  }

  func deallocate() {
    precondition(count == 0, "FrameCache freed while holding frames")
    frames.deallocate()
    countWord.deallocate()
  }

  /// Frames in the cache now.
  package var count: Int { countWord.pointee.load(ordering: .relaxed) }

  @inline(__always) func pop() -> PFN? {
    let n = countWord.pointee.load(ordering: .relaxed)
    if n == 0 { return nil }
    countWord.pointee.store(n - 1, ordering: .relaxed)
    return PFN(frames[n - 1])
  }

  @inline(__always) func push(_ pfn: PFN) -> Bool {
    let n = countWord.pointee.load(ordering: .relaxed)
    if n == Self.capacity { return false }
    frames[n] = pfn.raw
    countWord.pointee.store(n + 1, ordering: .relaxed)
    return true
  }
}
