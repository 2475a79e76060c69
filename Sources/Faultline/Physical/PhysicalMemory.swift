import Glibc
import Synchronization

/// The frame arena (`page_alloc.c` in miniature): one host mapping split into 4 KiB frames, a
/// parallel array of 32-byte `PageMetadata`, a global free stack and a stack of free 2 MiB
/// blocks under a spinlock (see `FrameAllocator`), and per-thread `FrameCache`s in front of them
/// (`per_cpu_pages`).
///
/// The arena never hands memory back to the host. Running out of frames is an error (`nil` from
/// `allocate`), never a crash.
///
/// Guards: `freeLock` guards the free stack, the block stack and their counts (`freeState[0]`,
/// `freeState[1]`); `cacheRegistry` guards `caches`.
public final class PhysicalMemory: @unchecked Sendable {
  /// Host address of frame 0.
  package let base: UnsafeMutableRawPointer
  /// Frames in the arena, the zero frame included.
  public let frameCount: Int
  let bytes: Int
  let meta: UnsafeMutablePointer<PageMetadata>
  let metaBytes: Int
  /// Free frame numbers; `freeState[0]` counts them.
  let freeStack: UnsafeMutablePointer<UInt32>
  let freeState: UnsafeMutablePointer<Atomic<Int>>
  /// Free 2 MiB blocks by head frame; `freeState[1]` counts them.
  let blockStack: UnsafeMutablePointer<UInt32>
  let freeLock: SpinLock
  /// The allocator as a plain value, for hot paths (no reference counting).
  let frames: FrameAllocator
  /// The RCU domain of the machine this arena belongs to: page caches free their tree nodes
  /// through it, and faults look pages up in its read sections.
  package let rcu: RCUDomain
  private let cacheRegistry = PThreadMutex()
  private var caches: [UnsafeMutablePointer<Atomic<Int>>] = []
  /// Guards `hugeZero` and `hugeZeroRefs`.
  private let hugeZeroLock = PThreadMutex()
  /// The huge zero page while one exists (`huge_zero_folio`).
  private var hugeZero: PFN?
  /// Huge PMDs mapping `hugeZero` (`huge_zero_refcount`, less the shrinker's own reference).
  private var hugeZeroRefs = 0

  /// Creates an arena of `bytes` (rounded down to whole frames, at least 16).
  /// - Parameter bytes: the arena's size in bytes (1 GiB by default).
  /// - Parameter prefault: touch every frame now (`MAP_POPULATE`), so that no host fault lands on
  ///   the measured path later. The benchmarks use it; the tests, with small arenas, need not.
  /// - Parameter maxThreads: the most RCU readers (threads with a `CPU`) alive at once in the
  ///   arena's RCU domain, which its `Machine` shares.
  public init(bytes: Int = 1 << 30, prefault: Bool = false, maxThreads: Int = 1024) throws(Errno) {
    let count = max(bytes / Page.byteCount, 16)
    guard count <= Int(UInt32.max) else { throw Errno.invalidArgument }
    frameCount = count
    self.bytes = count * Page.byteCount
    var flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE
    if prefault { flags |= MAP_POPULATE }
    guard let b = mmap(nil, self.bytes, PROT_READ | PROT_WRITE, flags, -1, 0), b != MAP_FAILED else {
      throw Errno.noMemory
    }
    base = b
    // Bound once, here: page tables read frames as `Atomic<UInt64>` entries (zero-filled: every
    // entry none); data is only ever read and written as raw bytes, which binding leaves alone.
    let words = b.bindMemory(to: Atomic<UInt64>.self, capacity: self.bytes / 8)
    precondition(MemoryLayout<PageMetadata>.stride == FrameMeta.stride, "PageMetadata is not 32 bytes")
    metaBytes = count * FrameMeta.stride
    guard let m = mmap(nil, metaBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
      m != MAP_FAILED
    else {
      munmap(b, self.bytes)
      throw Errno.noMemory
    }
    meta = m.bindMemory(to: PageMetadata.self, capacity: count)  // zero-filled: refcount 0, flags 0
    freeStack = .allocate(capacity: count)
    freeState = .allocate(capacity: 8)
    for i in 0..<8 { (freeState + i).initialize(to: Atomic(0)) }
    freeLock = .allocate()
    // Frame 0 is the zero frame: reserved, permanently referenced.
    let z = FrameMeta(meta)
    z.get()
    z.setFlags([.reserved, .uptodate])
    // Whole 2 MiB blocks go to the block stack, lowest on top; the rest of the first block
    // (beside the zero frame) and the frames past the last whole block to the free stack,
    // lowest on top. 4 KiB frames are handed out in ascending order either way: the first
    // block's, the tail's, then each block split in turn.
    let blockFrames = TransparentHugePage.pages
    let wholeBlocks = count / blockFrames
    blockStack = .allocate(capacity: max(wholeBlocks, 1))
    var blocks = 0
    for block in stride(from: wholeBlocks - 1, through: 1, by: -1) {
      blockStack[blocks] = UInt32(block * blockFrames)
      blocks += 1
    }
    let firstBlockEnd = min(count, blockFrames)
    let tailStart = max(wholeBlocks * blockFrames, firstBlockEnd)
    var top = 0
    for pfn in stride(from: count - 1, through: tailStart, by: -1) {
      freeStack[top] = UInt32(pfn)
      top += 1
    }
    for pfn in stride(from: firstBlockEnd - 1, through: 1, by: -1) {
      freeStack[top] = UInt32(pfn)
      top += 1
    }
    for pfn in 1..<count { FrameMeta(meta + pfn).setFlags(.free) }
    freeState.pointee.store(top, ordering: .relaxed)
    freeState[1].store(blocks, ordering: .relaxed)
    frames = FrameAllocator(
      base: b, words: words, meta: meta, freeStack: freeStack, freeState: freeState, blockStack: blockStack,
      freeLock: freeLock)
    rcu = RCUDomain(capacity: maxThreads)
  }

  deinit {
    rcu.barrier()
    munmap(base, bytes)
    munmap(UnsafeMutableRawPointer(meta), metaBytes)
    freeStack.deallocate()
    blockStack.deallocate()
    freeState.deallocate()
    freeLock.deallocate()
  }

  // MARK: Addressing and allocation (forwarded to `frames`)

  /// The metadata of frame `pfn` (`pfn_to_page`).
  @inline(__always) package func meta(_ pfn: PFN) -> FrameMeta { frames.meta(pfn) }
  /// Host address of a frame's first byte.
  @inline(__always) package func address(of pfn: PFN) -> UnsafeMutableRawPointer { frames.address(of: pfn) }
  /// Host address of a physical address.
  @inline(__always) package func address(physical phys: UInt64) -> UnsafeMutableRawPointer {
    frames.address(physical: phys)
  }
  /// See `FrameAllocator.allocate`.
  package func allocate(cache: FrameCache? = nil, flags: PageFlags = []) -> PFN? {
    frames.allocate(cache: cache, flags: flags)
  }
  /// See `FrameAllocator.allocateZeroed`.
  package func allocateZeroed(cache: FrameCache? = nil, flags: PageFlags = []) -> PFN? {
    frames.allocateZeroed(cache: cache, flags: flags)
  }
  /// See `FrameAllocator.free`.
  package func free(_ pfn: PFN, cache: FrameCache? = nil) { frames.free(pfn, cache: cache) }
  /// See `FrameAllocator.put`.
  package func put(_ pfn: PFN, cache: FrameCache? = nil) { frames.put(pfn, cache: cache) }
  /// See `FrameAllocator.allocateHuge`.
  package func allocateHuge(flags: PageFlags = [], zeroed: Bool = true) -> PFN? {
    frames.allocateHuge(flags: flags, zeroed: zeroed)
  }
  /// See `FrameAllocator.compoundHead`.
  package func compoundHead(_ pfn: PFN) -> PFN { frames.compoundHead(pfn) }
  /// Free 2 MiB blocks: what huge allocations can still get.
  package var freeHugeBlocks: Int { frames.freeBlocks }
  /// Moves frames from `cache` back to the global stack until `keep` remain.
  package func drain(_ cache: FrameCache, keep: Int = 0) { frames.drain(cache, keep: keep) }

  // MARK: The huge zero page

  /// `mm_get_huge_zero_folio`: a reference on the huge zero page (2 MiB of zeros, mapped read-only
  /// by a read fault on a THP-eligible range when `use_zero_page` is set), allocating it when
  /// none exists. Returns it and whether this call allocated it (`thp_zero_page_alloc`), or
  /// `nil` when no 2 MiB block is free (the fault falls back to base pages).
  ///
  /// Faultline frees the page as soon as the last huge PMD mapping it is gone, where Linux
  /// keeps it until its shrinker runs: so frame counts return to their baseline after every
  /// mapping is unmapped, and a later read fault allocates (and counts) it again.
  package func getHugeZeroPage() -> (page: PFN, allocated: Bool)? {
    hugeZeroLock.withLock {
      if let z = hugeZero {
        hugeZeroRefs += 1
        return (z, false)
      }
      guard let z = frames.allocateHuge(flags: [.reserved, .uptodate], zeroed: true) else { return nil }
      hugeZero = z
      hugeZeroRefs = 1
      return (z, true)
    }
  }

  /// Drops a reference `getHugeZeroPage` took; the last one frees the page.
  /// - Requires: no access can still read through a mapping of it (a grace period passed since
  ///   the mapping was removed).
  package func putHugeZeroPage() {
    hugeZeroLock.withLock {
      precondition(hugeZeroRefs > 0, "huge zero page reference underflow")
      hugeZeroRefs -= 1
      guard hugeZeroRefs == 0, let z = hugeZero else { return }
      hugeZero = nil
      let m = meta(z)
      _ = m.put()
      m.clearFlags([.reserved, .uptodate])
      frames.freeUnusual(z)
    }
  }

  /// Whether `pfn` is the head of the huge zero page.
  package func isHugeZeroPage(_ pfn: PFN) -> Bool {
    let f = meta(pfn).flags
    return f.contains(.head) && f.contains(.reserved)
  }

  // MARK: Caches and accounting

  /// Creates a per-thread cache registered for accounting. Give it back with `unregister`.
  package func makeCache() -> FrameCache {
    let c = FrameCache.allocate()
    cacheRegistry.withLock { caches.append(c.countWord) }
    return c
  }

  /// Drains `cache`, forgets it and frees its storage.
  package func unregister(_ cache: FrameCache) {
    drain(cache)
    cacheRegistry.withLock { caches.removeAll { $0 == cache.countWord } }
    cache.deallocate()
  }

  /// Free frames: the global stack, the free blocks' frames, and every registered cache.
  public var freeFrames: Int {
    let cached = cacheRegistry.withLock { caches.reduce(0) { $0 + $1.pointee.load(ordering: .relaxed) } }
    // Both counts at once: a split moves a block's frames from one to the other.
    freeLock.lock()
    let global = freeState.pointee.load(ordering: .relaxed) + freeState[1].load(ordering: .relaxed) * TransparentHugePage.pages
    freeLock.unlock()
    return global + cached
  }

  /// Frames handed out (page tables, anonymous pages, page cache), not counting the zero frame.
  public var framesInUse: Int { frameCount - 1 - freeFrames }
}

