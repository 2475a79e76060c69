import Faultline
import FaultlineTestSupport
import Testing

// The frame arena: allocation, references, zeroing, per-thread caches, running out; and an
// address space running out of frames.

@Suite struct PhysicalMemoryTests {
  @Test func frameZeroIsTheReservedZeroFrame() throws {
    let m = try PhysicalMemory(bytes: 64 * 4096)
    #expect(m.frameCount == 64)
    let z = m.meta(PFN.zero)
    #expect(z.flags.contains(.reserved))
    #expect(!z.flags.contains(.free))
    #expect(z.refcount >= 1)
    let bytes = UnsafeRawBufferPointer(start: m.address(of: PFN.zero), count: 4096)
    #expect(bytes.allSatisfy { $0 == 0 })
    // Not counted as in use, never handed out.
    #expect(m.framesInUse == 0)
    #expect(m.freeFrames == 63)
    var got: [PFN] = []
    while let p = m.allocate() { got.append(p) }
    #expect(!got.contains(PFN.zero))
    for p in got { m.put(p) }
    #expect(m.framesInUse == 0)
  }

  @Test func allocateUntilNilGivesEveryFrameButTheZeroFrameOnce() throws {
    let m = try PhysicalMemory(bytes: 64 * 4096)
    var got: [PFN] = []
    while let p = m.allocate() { got.append(p) }
    #expect(got.count == m.frameCount - 1)
    #expect(Set(got).count == got.count)
    #expect(got.allSatisfy { $0.raw >= 1 && Int($0.raw) < m.frameCount })
    #expect(m.framesInUse == m.frameCount - 1)
    #expect(m.freeFrames == 0)
    #expect(m.allocate() == nil)
    #expect(m.allocateZeroed() == nil)

    // One freed frame can be allocated again, once.
    m.put(got[10])
    #expect(m.framesInUse == m.frameCount - 2)
    let again = try #require(m.allocate())
    #expect(again == got[10])
    #expect(m.allocate() == nil)
    got[10] = again
    for p in got { m.put(p) }
    #expect(m.framesInUse == 0)
    #expect(m.freeFrames == m.frameCount - 1)
  }

  @Test func refcountKeepsAFrameUntilTheLastPut() throws {
    let m = try PhysicalMemory(bytes: 32 * 4096)
    let p = try #require(m.allocate(flags: .anon))
    let meta = m.meta(p)
    #expect(meta.refcount == 1)
    #expect(meta.mapcount == 0)
    #expect(meta.flags.contains(.anon))
    #expect(!meta.flags.contains(.free))
    #expect(m.framesInUse == 1)
    meta.get()
    meta.get()
    #expect(meta.refcount == 3)
    m.put(p)
    m.put(p)
    #expect(meta.refcount == 1)
    #expect(m.framesInUse == 1)
    #expect(!meta.flags.contains(.free))
    m.put(p)
    #expect(meta.refcount == 0)
    #expect(meta.flags.contains(.free))
    #expect(m.framesInUse == 0)
  }

  @Test func allocateZeroedZeroesDirtyRecycledFrames() throws {
    let m = try PhysicalMemory(bytes: 32 * 4096)
    // Dirty every frame, free them all, then take them all back zeroed.
    var got: [PFN] = []
    while let p = m.allocate() { got.append(p) }
    for p in got { m.address(of: p).initializeMemory(as: UInt8.self, repeating: 0xA5, count: 4096) }
    for p in got { m.put(p) }
    var zeroed: [PFN] = []
    while let p = m.allocateZeroed() { zeroed.append(p) }
    #expect(Set(zeroed) == Set(got))
    for p in zeroed {
      let bytes = UnsafeRawBufferPointer(start: m.address(of: p), count: 4096)
      #expect(bytes.allSatisfy { $0 == 0 }, "\(p) not zeroed")
    }
    for p in zeroed { m.put(p) }
    #expect(m.framesInUse == 0)
  }

  @Test func allocateResetsMetadataOfARecycledFrame() throws {
    let m = try PhysicalMemory(bytes: 16 * 4096)
    let p = try #require(m.allocate(flags: [.anon, .dirty]))
    m.meta(p).index = 1234
    m.meta(p).addMap()
    m.meta(p).removeMap()
    m.put(p)
    var got: [PFN] = []
    while let q = m.allocate(flags: .shmem) { got.append(q) }
    for q in got {
      #expect(m.meta(q).flags == .shmem)
      #expect(m.meta(q).index == 0)
      #expect(m.meta(q).mapcount == 0)
      #expect(m.meta(q).refcount == 1)
    }
    for q in got { m.put(q) }
  }

  @Test func frameCacheKeepsAccountingExact() throws {
    let m = try PhysicalMemory(bytes: 512 * 4096)
    let total = m.frameCount - 1
    let c = m.makeCache()
    #expect(m.freeFrames == total)
    var got: [PFN] = []
    for i in 1...200 {
      got.append(try #require(m.allocate(cache: c)))
      // Frames sitting in the cache count as free.
      #expect(m.framesInUse == i)
      #expect(m.freeFrames + m.framesInUse == total)
    }
    #expect(Set(got).count == got.count)
    // Freeing into the cache past its capacity spills to the global stack.
    for (i, p) in got.enumerated() {
      m.put(p, cache: c)
      #expect(m.framesInUse == got.count - i - 1)
      #expect(c.count <= FrameCache.capacity)
    }
    #expect(m.framesInUse == 0)
    #expect(c.count > 0)
    m.drain(c)
    #expect(c.count == 0)
    m.unregister(c)
    #expect(m.framesInUse == 0)
    #expect(m.freeFrames == total)
  }

  @Test func twoCachesAndTheGlobalStackShareTheArena() throws {
    let m = try PhysicalMemory(bytes: 128 * 4096)
    let total = m.frameCount - 1
    let c1 = m.makeCache()
    let c2 = m.makeCache()
    var got: [PFN] = []
    var turn = 0
    while true {
      let p: PFN? =
        switch turn % 3 {
        case 0: m.allocate(cache: c1)
        case 1: m.allocate(cache: c2)
        default: m.allocate()
        }
      turn += 1
      guard let p else {
        // Out of frames only when every source is empty.
        if m.freeFrames == 0 { break }
        continue
      }
      got.append(p)
    }
    #expect(got.count == total)
    #expect(Set(got).count == total)
    #expect(m.framesInUse == total)
    for (i, p) in got.enumerated() { m.put(p, cache: i % 2 == 0 ? c1 : c2) }
    #expect(m.framesInUse == 0)
    m.unregister(c1)
    #expect(m.framesInUse == 0)
    m.unregister(c2)
    #expect(m.framesInUse == 0)
    #expect(m.freeFrames == total)
  }

  @Test func allocateThroughACacheUntilNilGivesEveryFrame() throws {
    let m = try PhysicalMemory(bytes: 100 * 4096)
    let c = m.makeCache()
    var got: [PFN] = []
    while let p = m.allocate(cache: c) { got.append(p) }
    #expect(got.count == m.frameCount - 1)
    #expect(Set(got).count == got.count)
    #expect(m.framesInUse == m.frameCount - 1)
    for p in got { m.put(p, cache: c) }
    m.unregister(c)
    #expect(m.framesInUse == 0)
  }

  // MARK: Out of memory in an address space

  @Test func storingToMorePagesThanExistEndsInOutOfMemoryWithoutLeaks() throws {
    try withRig(memoryBytes: 64 * 4096) { r in
      let pages = 128
      let a = try r.cpu.mmap(0, UInt64(pages) * page, prot: rw, flags: anonPrivate)
      r.machine.drainDeferredFrees()
      r.cpu.drainFrameCache()
      // The root table is in use; the first store needs PUD, PMD and PTE tables (the range lies
      // in one PTE table); each page then needs one frame.
      #expect(r.machine.memory.framesInUse == 1)
      let free = r.machine.memory.freeFrames
      let fits = free - 3
      #expect(fits > 0 && fits < pages)

      var stored = 0
      var failure: Signal?
      for i in 0..<pages {
        do throws(Signal) {
          try r.cpu.storeByte(a + UInt64(i) * page + 1, UInt8(truncatingIfNeeded: i + 1))
          stored += 1
        } catch {
          failure = error
          break
        }
      }
      #expect(stored == fits)
      #expect(failure == .outOfMemory(address: a + UInt64(fits) * page + 1))
      #expect(r.machine.memory.freeFrames == 0)
      // The pages stored before keep their data; reading an untouched page needs no frame.
      for i in 0..<stored { #expect(try r.cpu.loadByte(a + UInt64(i) * page + 1) == UInt8(truncatingIfNeeded: i + 1)) }
      #expect(try r.cpu.loadByte(a + UInt64(pages - 1) * page) == 0)
      #expect(r.mm.pageTable.pte(at: a + UInt64(fits) * page).isNone)

      // Unmapping gives the frames back; the space is usable again.
      try r.cpu.munmap(a, UInt64(pages) * page)
      r.machine.drainDeferredFrees()
      r.cpu.drainFrameCache()
      #expect(r.machine.memory.framesInUse == 1)
      let b = try r.cpu.mmap(0, 8 * page, prot: rw, flags: anonPrivate)
      for i in 0..<8 { try r.cpu.storeByte(b + UInt64(i) * page, 1) }
      #expect(try r.cpu.loadByte(b + 7 * page) == 1)
    }
  }

  @Test func outOfMemoryOnSharedAnonymousPagesDoesNotLeak() throws {
    try withRig(memoryBytes: 48 * 4096) { r in
      let pages = 96
      let a = try r.cpu.mmap(0, UInt64(pages) * page, prot: rw, flags: anonShared)
      var failure: Signal?
      var stored = 0
      for i in 0..<pages {
        do throws(Signal) {
          try r.cpu.storeByte(a + UInt64(i) * page, 1)
          stored += 1
        } catch {
          failure = error
          break
        }
      }
      #expect(stored > 0 && stored < pages)
      #expect(failure == .outOfMemory(address: a + UInt64(stored) * page))
      try r.cpu.munmap(a, UInt64(pages) * page)
    }
  }
}
