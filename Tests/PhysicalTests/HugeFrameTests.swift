import Faultline
import FaultlineTestSupport
import Synchronization
import Testing

/// The arena's 2 MiB blocks (`FrameAllocator+Huge`): compound pages for transparent huge
/// pages, the split of a block for 4 KiB allocations, and the fallback when no block is free.
@Suite struct HugeFrameTests {
  let blockFrames = 512

  /// An arena of `blocks` whole 2 MiB blocks plus `extra` frames:
  /// ```
  /// block 0: zero frame + 511 frames (4 KiB only) | blocks 1...: free blocks | extra frames
  /// ```
  func arena(blocks: Int, extra: Int = 0) throws -> PhysicalMemory {
    try PhysicalMemory(bytes: (blocks * blockFrames + extra) * Page.byteCount)
  }

  @Test func everyWholeBlockButTheZeroFramesIsFreeAsABlock() throws {
    let m = try arena(blocks: 4, extra: 7)
    #expect(m.freeHugeBlocks == 3)
    #expect(m.freeFrames == m.frameCount - 1)
    let small = try arena(blocks: 1, extra: 100)
    #expect(small.freeHugeBlocks == 0)
    #expect(small.freeFrames == small.frameCount - 1)
  }

  @Test func aHugePageIsAnAlignedCompoundPageOfZeroedFrames() throws {
    let m = try arena(blocks: 3)
    let head = try #require(m.allocateHuge(flags: .anon))
    #expect(Int(head.raw) % blockFrames == 0)
    #expect(head.raw != 0)
    #expect(m.freeHugeBlocks == 1)
    #expect(m.framesInUse == blockFrames)
    let h = m.meta(head)
    #expect(h.flags.contains(.head) && h.flags.contains(.anon) && !h.flags.contains(.tail))
    #expect(h.refcount == 1 && h.mapcount == 0)
    for i in [1, 2, 255, 511] {
      let tail = PFN(head.raw + UInt32(i))
      // An anonymous huge page's tails read as anonymous (`PageAnon` of the folio).
      #expect(m.meta(tail).flags == [.tail, .anon])
      #expect(m.meta(tail).refcount == 0)
      #expect(m.compoundHead(tail) == head)
    }
    #expect(m.compoundHead(head) == head)
    let bytes = UnsafeRawBufferPointer(start: m.address(of: head), count: blockFrames * Page.byteCount)
    #expect(bytes.allSatisfy { $0 == 0 })
    // The last put returns the whole block.
    m.put(head)
    #expect(m.freeHugeBlocks == 2)
    #expect(m.framesInUse == 0)
  }

  @Test func noFreeBlockMeansNilAndFourKiBStillWorks() throws {
    let m = try arena(blocks: 3)
    let a = try #require(m.allocateHuge())
    let b = try #require(m.allocateHuge())
    #expect(a != b)
    // thp_fault_fallback: no block left.
    #expect(m.allocateHuge() == nil)
    // The 511 frames beside the zero frame are still there for 4 KiB allocations.
    var got: [PFN] = []
    while let p = m.allocate() { got.append(p) }
    #expect(got.count == blockFrames - 1)
    m.put(a)
    // A freed block serves a huge allocation again.
    let c = try #require(m.allocateHuge())
    #expect(c == a)
    m.put(b)
    m.put(c)
    for p in got { m.put(p) }
    #expect(m.framesInUse == 0)
    #expect(m.freeHugeBlocks == 2)
  }

  /// 4 KiB allocations split blocks in ascending order once the first block's frames are gone,
  /// so frames are handed out 1, 2, 3, ... as before blocks existed; a split block stays split.
  @Test func fourKiBAllocationsSplitBlocksInAscendingOrder() throws {
    let m = try arena(blocks: 3, extra: 3)
    var got: [PFN] = []
    while let p = m.allocate() { got.append(p) }
    #expect(got.count == m.frameCount - 1)
    // The first block, then the three frames past the last block, then blocks 1 and 2.
    let want = Array(1..<blockFrames) + Array(3 * blockFrames..<3 * blockFrames + 3) + Array(blockFrames..<3 * blockFrames)
    #expect(got.map { Int($0.raw) } == want)
    #expect(m.freeHugeBlocks == 0)
    for p in got { m.put(p) }
    #expect(m.framesInUse == 0)
    // No merging: the freed frames stay 4 KiB frames.
    #expect(m.freeHugeBlocks == 0)
    #expect(m.allocateHuge() == nil)
  }

  @Test func perThreadCachesSplitBlocksToo() throws {
    let m = try arena(blocks: 2)
    let cache = m.makeCache()
    var got: [PFN] = []
    while let p = m.allocate(cache: cache) { got.append(p) }
    #expect(got.count == m.frameCount - 1)
    #expect(Set(got).count == got.count)
    for p in got { m.put(p, cache: cache) }
    m.unregister(cache)
    #expect(m.framesInUse == 0)
  }

  @Test func concurrentHugeAndSmallAllocationsNeverShareAFrame() throws {
    let m = try arena(blocks: 16)
    let results = Results()
    runThreads(4) { t in
      let cache = m.makeCache()
      var mine: [PFN] = []
      for round in 0..<200 {
        if (round + t) % 5 == 0, let h = m.allocateHuge(zeroed: false) {
          mine.append(contentsOf: (0..<512).map { PFN(h.raw + UInt32($0)) })
          m.put(h)
          mine.removeLast(512)
        } else if let p = m.allocate(cache: cache) {
          mine.append(p)
        }
      }
      // Held until every thread is done, so that no frame is handed out twice in the run.
      results.add(mine)
      m.unregister(cache)
    }
    #expect(Set(results.all).count == results.all.count)
    for p in results.all { m.put(p) }
    #expect(m.framesInUse == 0)
  }

  /// Frames gathered from several threads.
  final class Results: Sendable {
    private let frames = Locked<[PFN]>([])
    var all: [PFN] { frames.withLock { $0 } }
    func add(_ more: [PFN]) { frames.withLock { $0.append(contentsOf: more) } }
  }
}
