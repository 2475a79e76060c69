import Glibc
import Synchronization

/// The frame arena (`page_alloc.c` in miniature): one host mapping split into 4 KiB frames, a
/// parallel array of 32-byte `FrameMeta`, a global free stack under a spinlock, and per-thread
/// `FrameCache`s in front of it (`per_cpu_pages`).
///
/// The arena never hands memory back to the host. Running out of frames is an error (`nil` from
/// `allocate`), never a crash.
///
/// Guards: `freeLock` guards the free stack and `freeTop`; `cacheRegistry` guards `caches`.
public final class PhysicalMemory: @unchecked Sendable {
  public static let pageSize = 4096
  public static let pageShift: UInt64 = 12

  /// Host address of frame 0.
  public let base: UnsafeMutableRawPointer
  /// Frames in the arena, the zero frame included.
  public let frameCount: Int
  let bytes: Int
  let meta: UnsafeMutableRawPointer
  let metaBytes: Int
  /// Free frame numbers; `freeTop` (in `freeState[0]`) counts them.
  let freeStack: UnsafeMutablePointer<UInt32>
  let freeState: UnsafeMutablePointer<Atomic<Int>>
  let freeLock: SpinLock
  private let cacheRegistry = PThreadMutex()
  private var caches: [UnsafeMutablePointer<Atomic<Int>>] = []

  /// Creates an arena of `bytes` (rounded down to whole frames, at least 16).
  /// - Parameter prefault: touch every frame now (`MAP_POPULATE`), so that no host fault lands on
  ///   the measured path later. The benchmarks use it; the tests, with small arenas, need not.
  public init(bytes: Int = 1 << 30, prefault: Bool = false) throws(Errno) {
    let frames = max(bytes / Self.pageSize, 16)
    guard frames <= Int(UInt32.max) else { throw Errno.invalidArgument }
    frameCount = frames
    self.bytes = frames * Self.pageSize
    var flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE
    if prefault { flags |= MAP_POPULATE }
    guard let b = mmap(nil, self.bytes, PROT_READ | PROT_WRITE, flags, -1, 0), b != MAP_FAILED else {
      throw Errno.noMemory
    }
    base = b
    metaBytes = frames * FrameMeta.stride
    guard let m = mmap(nil, metaBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
      m != MAP_FAILED
    else {
      munmap(b, self.bytes)
      throw Errno.noMemory
    }
    meta = m  // zero-filled: refcount 0, flags 0
    freeStack = .allocate(capacity: frames)
    freeState = .allocate(capacity: 8)
    for i in 0..<8 { (freeState + i).initialize(to: Atomic(0)) }
    freeLock = .allocate()
    // Frame 0 is the zero frame: reserved, permanently referenced.
    let z = FrameMeta(meta)
    z.get()
    z.setFlags([.reserved, .uptodate])
    var top = 0
    for pfn in stride(from: frames - 1, through: 1, by: -1) {
      freeStack[top] = UInt32(pfn)
      FrameMeta(meta + pfn * FrameMeta.stride).setFlags(.free)
      top += 1
    }
    freeState.pointee.store(top, ordering: .relaxed)
  }

  deinit {
    munmap(base, bytes)
    munmap(meta, metaBytes)
    freeStack.deallocate()
    freeState.deallocate()
    freeLock.deallocate()
  }

  // MARK: Addressing

  @inline(__always) public func meta(_ pfn: PFN) -> FrameMeta {
    FrameMeta(meta + Int(pfn.raw) &* FrameMeta.stride)
  }
  /// Host address of a frame's first byte.
  @inline(__always) public func address(of pfn: PFN) -> UnsafeMutableRawPointer {
    base + (Int(pfn.raw) &<< 12)
  }
  /// Host address of a physical address.
  @inline(__always) public func address(physical phys: UInt64) -> UnsafeMutableRawPointer {
    base + Int(truncatingIfNeeded: phys)
  }

  // MARK: Allocation

  /// Allocates a frame with refcount 1 and `flags`, taking it from `cache` when one is given.
  /// The contents are whatever the last user left; see `allocateZeroed`. `nil` when out of memory.
  @inline(__always)
  public func allocate(cache: FrameCache? = nil, flags: PageFlags = []) -> PFN? {
    let pfn: PFN
    if let cache, let p = cache.pop() {
      pfn = p
    } else if let cache {
      guard refill(cache) else { return nil }
      pfn = cache.pop()!
    } else {
      guard let p = popGlobal() else { return nil }
      pfn = p
    }
    let m = meta(pfn)
    assert(m.flags.contains(.free), "allocated a frame that was not free")
    m.flagsWord.pointee.store(flags.rawValue, ordering: .relaxed)
    m.mapcountWord.pointee.store(0, ordering: .relaxed)
    m.indexWord.pointee.store(0, ordering: .relaxed)
    m.privateWord.pointee.store(0, ordering: .relaxed)
    m.lockWord.pointee.store(0, ordering: .relaxed)
    m.refcountWord.pointee.store(1, ordering: .releasing)
    return pfn
  }

  /// `allocate`, then zero the frame (`clear_user_highpage`).
  @inline(__always)
  public func allocateZeroed(cache: FrameCache? = nil, flags: PageFlags = []) -> PFN? {
    guard let pfn = allocate(cache: cache, flags: flags) else { return nil }
    address(of: pfn).initializeMemory(as: UInt8.self, repeating: 0, count: Self.pageSize)
    return pfn
  }

  /// Returns a frame whose refcount has reached zero. Freeing a mapped, referenced or reserved
  /// frame is a kernel bug ("Bad page state") and traps.
  @inline(__always)
  public func free(_ pfn: PFN, cache: FrameCache? = nil) {
    let m = meta(pfn)
    precondition(m.refcount == 0 && m.mapcount == 0, "Bad page state: freeing \(pfn) refcount \(m.refcount) mapcount \(m.mapcount)")
    precondition(!m.flags.contains(.reserved) && !m.flags.contains(.free), "Bad page state: freeing \(pfn) flags \(m.flags.rawValue)")
    m.flagsWord.pointee.store(PageFlags.free.rawValue, ordering: .relaxed)
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

  /// Drops a reference and frees the frame on the last one.
  @inline(__always)
  public func put(_ pfn: PFN, cache: FrameCache? = nil) {
    if meta(pfn).put() { free(pfn, cache: cache) }
  }

  private func popGlobal() -> PFN? {
    freeLock.lock()
    defer { freeLock.unlock() }
    let top = freeState.pointee.load(ordering: .relaxed)
    if top == 0 { return nil }
    freeState.pointee.store(top - 1, ordering: .relaxed)
    return PFN(freeStack[top - 1])
  }

  /// Moves up to half a cache's worth of frames from the global stack into `cache`.
  @inline(never)
  private func refill(_ cache: FrameCache) -> Bool {
    freeLock.lock()
    let top = freeState.pointee.load(ordering: .relaxed)
    let n = min(top, FrameCache.capacity / 2)
    for i in 0..<n { _ = cache.push(PFN(freeStack[top - 1 - i])) }
    freeState.pointee.store(top - n, ordering: .relaxed)
    freeLock.unlock()
    return n > 0
  }

  /// Moves frames from `cache` back to the global stack until `keep` remain.
  public func drain(_ cache: FrameCache, keep: Int = 0) {
    freeLock.lock()
    var top = freeState.pointee.load(ordering: .relaxed)
    while cache.count > keep, let p = cache.pop() {
      freeStack[top] = p.raw
      top += 1
    }
    freeState.pointee.store(top, ordering: .relaxed)
    freeLock.unlock()
  }

  // MARK: Caches and accounting

  /// Creates a per-thread cache registered for accounting. Drain and `unregister` it when done.
  public func makeCache() -> FrameCache {
    let c = FrameCache()
    cacheRegistry.withLock { caches.append(c.countWord) }
    return c
  }

  /// Drains `cache` and forgets it.
  public func unregister(_ cache: FrameCache) {
    drain(cache)
    cacheRegistry.withLock { caches.removeAll { $0 == cache.countWord } }
  }

  /// Free frames: the global stack plus every registered cache.
  public var freeFrames: Int {
    let cached = cacheRegistry.withLock { caches.reduce(0) { $0 + $1.pointee.load(ordering: .relaxed) } }
    return freeState.pointee.load(ordering: .relaxed) + cached
  }

  /// Frames handed out (page tables, anonymous pages, page cache), not counting the zero frame.
  public var framesInUse: Int { frameCount - 1 - freeFrames }
}

/// A per-thread stack of free frames in front of the global free stack (`per_cpu_pages`).
/// Used by one thread at a time; its count is atomic only so that accounting can read it.
public final class FrameCache {
  public static let capacity = 64
  let frames: UnsafeMutablePointer<UInt32>
  let countWord: UnsafeMutablePointer<Atomic<Int>>

  init() {
    frames = .allocate(capacity: Self.capacity)
    countWord = .allocate(capacity: 1)
    countWord.initialize(to: Atomic(0))
  }

  deinit {
    precondition(count == 0, "FrameCache dropped while holding frames; drain it first")
    frames.deallocate()
    countWord.deallocate()
  }

  public var count: Int { countWord.pointee.load(ordering: .relaxed) }

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
