#if canImport(Glibc)
import Glibc
#endif
import Faultline
import FaultlineTestSupport
import Testing

// The page cache: lookup and fill, references, dirty tracking and writeback to a host file,
// truncate, invalidate, and two threads filling one page.

@Suite struct PageCacheTests {
  @Test func findOrReadFillsFromTheHostFileAndFindTakesAReference() throws {
    try withMemory { memory in
      try withTempDirectory { dir in
        let data = pattern(4096 + 1000)
        try hostWrite(dir + "/f", data)
        let fs = try HostFS(root: dir, memory: memory)
        withExtendedLifetime(fs) {
          let inode = try! fs.lookup("/f")
          let cache = inode.pageCache
          #expect(inode.kind == .regular)
          #expect(inode.size == UInt64(data.count))
          #expect(cache.find(0) == nil)

          let (p0, filled0) = try! cache.findOrRead(0, cache: nil)
          #expect(filled0)
          #expect(memory.meta(p0).refcount == 2)  // the cache's and ours
          #expect(memory.meta(p0).flags.contains(.uptodate))
          #expect(Array(frameBytes(memory, p0)) == Array(data[0..<4096]))

          // The EOF page: the host bytes, then zeros.
          let (p1, _) = try! cache.findOrRead(1, cache: nil)
          let b1 = Array(frameBytes(memory, p1))
          #expect(Array(b1[0..<1000]) == Array(data[4096...]))
          #expect(b1[1000...].allSatisfy { $0 == 0 })

          // Found again: the same frame, no new fill.
          let again = try! cache.findOrRead(0, cache: nil)
          #expect(again.page == p0 && !again.filled)
          let found = cache.find(0)
          #expect(found == p0)
          #expect(memory.meta(p0).refcount == 4)
          #expect(cache.fills == 2)
          #expect(cache.residentPages == 2)
          #expect(cache.owns(p0, at: 0) && !cache.owns(p0, at: 1))
          for p in [p0, p0, p0, p1] { memory.put(p) }
          #expect(memory.meta(p0).refcount == 1)
          #expect(memory.framesInUse == 2)
        }
      }
    }
  }

  @Test func dirtyPagesReachTheHostFileAtWritebackUpToEOFOnly() throws {
    try withMemory { memory in
      try withTempDirectory { dir in
        let fs = try HostFS(root: dir, memory: memory)
        let ns = Namespace()
        ns.mount(fs, at: "/")
        let table = FileTable(namespace: ns)
        let fd = try table.open("/out", flags: OpenFlags.create | OpenFlags.readWrite)
        try table.ftruncate(fd, 6000)
        let inode = try table.get(fd).inode
        let cache = inode.pageCache
        let data = pattern(8192, seed: 9)

        // Store through the cache, as a MAP_SHARED store would.
        for index in 0..<2 {
          let (p, _) = try cache.findOrRead(UInt64(index), cache: nil)
          frameBytes(memory, p).copyBytes(from: data[index * 4096..<(index + 1) * 4096])
          cache.markDirty(UInt64(index))
          memory.put(p)
        }
        #expect(cache.dirtyCount == 2)
        #expect(cache.isDirty(0) && cache.isDirty(1))
        let p1 = try #require(cache.find(1))
        #expect(memory.meta(p1).flags.contains(.dirty))

        // Nothing reaches the host before writeback.
        #expect(try hostRead(dir + "/out") == [UInt8](repeating: 0, count: 6000))

        var cleaned: [UInt64] = []
        #expect(try cache.writeback(from: 0, to: 1, mkclean: { index, _ in cleaned.append(index) }) == 1)
        #expect(cleaned == [0])
        #expect(cache.dirtyCount == 1 && !cache.isDirty(0))
        #expect(try cache.writebackAll() == 1)
        #expect(cache.dirtyCount == 0)
        #expect(try cache.writebackAll() == 0)
        #expect(!memory.meta(p1).flags.contains(.dirty))
        memory.put(p1)

        // The EOF page wrote only the bytes below i_size: the host file did not grow.
        #expect(try hostRead(dir + "/out") == Array(data[0..<6000]))
        try table.fsync(fd)
        try table.close(fd)
        try ns.umount("/")
      }
    }
  }

  @Test func writeAndReadThroughTheCacheAndFsync() throws {
    try withMemory { memory in
      try withTempDirectory { dir in
        let fs = try HostFS(root: dir, memory: memory)
        let ns = Namespace()
        ns.mount(fs, at: "/")
        let table = FileTable(namespace: ns)
        let fd = try table.open("/w", flags: OpenFlags.create | OpenFlags.readWrite)
        let data = pattern(10_000, seed: 3)
        #expect(try data.withUnsafeBytes { try table.pwrite(fd, $0, at: 100) } == 10_000)
        let inode = try table.get(fd).inode
        #expect(inode.size == 10_100)
        #expect(inode.pageCache.dirtyCount == 3)
        var back = [UInt8](repeating: 0xFF, count: 20_000)
        #expect(try back.withUnsafeMutableBytes { try table.pread(fd, into: $0, at: 0) } == 10_100)
        #expect(back[0..<100].allSatisfy { $0 == 0 })
        #expect(Array(back[100..<10_100]) == data)
        try table.fsync(fd)
        #expect(inode.pageCache.dirtyCount == 0)
        #expect(try hostRead(dir + "/w") == [UInt8](repeating: 0, count: 100) + data)
        try table.close(fd)
      }
    }
  }

  @Test func truncateDropsPagesBeyondEOFAndZeroesTheEOFTail() throws {
    try withMemory { memory in
      try withTempDirectory { dir in
        try hostWrite(dir + "/t", pattern(3 * 4096, seed: 5))
        let fs = try HostFS(root: dir, memory: memory)
        let ns = Namespace()
        ns.mount(fs, at: "/")
        let table = FileTable(namespace: ns)
        let fd = try table.open("/t", flags: OpenFlags.readWrite)
        let inode = try table.get(fd).inode
        let cache = inode.pageCache
        var pages: [PFN] = []
        for i in 0..<3 { pages.append(try cache.findOrRead(UInt64(i), cache: nil).page) }
        memory.put(pages[0])
        memory.put(pages[1])
        // pages[2] keeps our reference: it stands for a PTE still mapping it.
        cache.markDirty(2)

        let before = memory.framesInUse
        try table.ftruncate(fd, 4096 + 100)
        #expect(inode.size == 4196)
        #expect(cache.residentPages == 2)
        #expect(cache.dirtyCount == 0)
        #expect(cache.find(2) == nil)
        #expect(!cache.owns(pages[2], at: 2))
        // The dropped page lives on for its remaining reference, then goes.
        #expect(memory.meta(pages[2]).refcount == 1)
        #expect(memory.framesInUse == before)
        memory.put(pages[2])
        #expect(memory.framesInUse == before - 1)

        // The EOF page's tail is zero in the cache; the host file is cut.
        let tail = Array(frameBytes(memory, pages[1]))
        #expect(Array(tail[0..<100]) == Array(pattern(3 * 4096, seed: 5)[4096..<4196]))
        #expect(tail[100...].allSatisfy { $0 == 0 })
        #expect(try hostRead(dir + "/t").count == 4196)

        // Growing again reads zeros past the old EOF.
        try table.ftruncate(fd, 3 * 4096)
        var back = [UInt8](repeating: 0xFF, count: 3 * 4096)
        #expect(try back.withUnsafeMutableBytes { try table.pread(fd, into: $0, at: 0) } == 3 * 4096)
        #expect(back[4196...].allSatisfy { $0 == 0 })
        try table.close(fd)
      }
    }
  }

  @Test func truncateZapsRegisteredMappingsTwiceBeforeAndAfterDroppingPages() throws {
    final class Recorder: InodeMapping {
      var calls: [UInt64] = []
      var residentAtCall: [Int] = []
      func unmapMappingRange(of inode: Inode, fromPage index: UInt64) {
        calls.append(index)
        residentAtCall.append(inode.pageCache.residentPages)
      }
    }
    try withMemory { memory in
      let fs = TmpFS(memory: memory)
      try withExtendedLifetime(fs) {
        let inode = try fs.create("/m")
        try inode.truncate(to: 4 * 4096)
        for i in 0..<4 { memory.put(try inode.pageCache.findOrRead(UInt64(i), cache: nil).page) }
        let r = Recorder()
        let other = Recorder()
        inode.addMapping(r)
        inode.addMapping(other)
        #expect(inode.mappingCount == 2)
        #expect(inode.mappings.contains { $0 === r })
        inode.removeMapping(other)

        try inode.truncate(to: 8 * 4096)  // growing zaps nothing
        #expect(r.calls.isEmpty)
        try inode.truncate(to: 4096 + 1)
        #expect(r.calls == [2, 2])
        #expect(r.residentAtCall == [4, 2])
        #expect(other.calls.isEmpty)
        inode.removeMapping(r)
        #expect(inode.mappingCount == 0)
      }
    }
  }

  @Test func invalidateDropsOnlyCleanUnreferencedPages() throws {
    try withMemory { memory in
      try withTempDirectory { dir in
        try hostWrite(dir + "/i", pattern(4 * 4096))
        let fs = try HostFS(root: dir, memory: memory)
        try withExtendedLifetime(fs) {
          let cache = try fs.lookup("/i").pageCache
          var pages: [PFN] = []
          for i in 0..<4 { pages.append(try cache.findOrRead(UInt64(i), cache: nil).page) }
          memory.put(pages[0])
          memory.put(pages[1])
          memory.put(pages[3])
          cache.markDirty(1)
          // 0: clean → dropped; 1: dirty; 2: referenced; 3: clean but outside the range.
          #expect(cache.invalidate(from: 0, to: 3) == 1)
          #expect(cache.residentPages == 3)
          #expect(cache.find(0) == nil)
          memory.put(pages[2])
          // Read again from the host after invalidation.
          let (p, filled) = try cache.findOrRead(0, cache: nil)
          #expect(filled)
          #expect(Array(frameBytes(memory, p)) == Array(pattern(4 * 4096)[0..<4096]))
          memory.put(p)
          #expect(cache.fills == 5)
        }
      }
    }
  }

  @Test func tmpfsDataPersistsInTheCache() throws {
    try withMemory { memory in
      let fs = TmpFS(memory: memory)
      try withExtendedLifetime(fs) {
        let ns = Namespace()
        ns.mount(fs, at: "/dev/shm")
        let table = FileTable(namespace: ns)
        let fd = try table.open("/dev/shm/seg", flags: OpenFlags.create | OpenFlags.readWrite)
        let data = pattern(3 * 4096 + 17, seed: 4)
        _ = try data.withUnsafeBytes { try table.pwrite(fd, $0, at: 0) }
        let inode = try table.get(fd).inode
        #expect(inode.pageCache.backedByCache)
        #expect(try inode.pageCache.writebackAll() == 4)
        #expect(inode.pageCache.invalidate(from: 0, to: .max) == 0)
        try table.close(fd)
        #expect(inode.pageCache.residentPages == 4)

        // Reopened, the data is still there: the cache is the storage.
        let fd2 = try table.open("/dev/shm/seg", flags: OpenFlags.readOnly)
        #expect(try table.get(fd2).inode === inode)
        var back = [UInt8](repeating: 0, count: data.count)
        _ = try back.withUnsafeMutableBytes { try table.pread(fd2, into: $0, at: 0) }
        #expect(back == data)
        // A page never written reads as zeros.
        try inode.truncate(to: 8 * 4096)
        let (p, filled) = try inode.pageCache.findOrRead(6, cache: nil)
        #expect(filled && frameBytes(memory, p).allSatisfy { $0 == 0 })
        memory.put(p)
        try table.close(fd2)
        try ns.umount("/dev/shm")
        #expect(memory.framesInUse == 5)
      }
    }
  }

  @Test func concurrentFindOrReadOfOnePageReturnsOneFrameAndFillsOnce() throws {
    /// One slot per thread and page, written by that thread only (no shared Swift array).
    final class Results: @unchecked Sendable {
      let slots: UnsafeMutableBufferPointer<UInt32>
      let failures: UnsafeMutableBufferPointer<Int>
      let count: Int
      init(threads: Int, count: Int) {
        self.count = count
        slots = .allocate(capacity: threads * count)
        slots.initialize(repeating: 0)
        failures = .allocate(capacity: threads)
        failures.initialize(repeating: 0)
      }
      deinit {
        slots.deallocate()
        failures.deallocate()
      }
      func page(_ t: Int, _ i: Int) -> PFN { PFN(slots[t * count + i]) }
    }
    let count = 256
    try withMemory { memory in
      try withTempDirectory { dir in
        try hostWrite(dir + "/c", pattern(count * 4096))
        let fs = try HostFS(root: dir, memory: memory)
        try withExtendedLifetime(fs) {
          let cache = try fs.lookup("/c").pageCache
          let results = Results(threads: 2, count: count)
          runThreads(2) { t in
            let frameCache = memory.makeCache()
            defer { memory.unregister(frameCache) }
            for i in 0..<count {
              do {
                results.slots[t * count + i] = try cache.findOrRead(UInt64(i), cache: frameCache).page.raw
              } catch {
                results.failures[t] += 1
              }
            }
          }
          #expect(results.failures[0] == 0 && results.failures[1] == 0)
          for i in 0..<count {
            #expect(results.page(0, i) != PFN.zero && results.page(0, i) == results.page(1, i))
            #expect(cache.owns(results.page(0, i), at: UInt64(i)))
          }
          #expect(cache.fills == count)
          #expect(cache.residentPages == count)
          let expected = pattern(count * 4096)
          for i in [0, count / 2, count - 1] {
            #expect(Array(frameBytes(memory, results.page(0, i))) == Array(expected[i * 4096..<(i + 1) * 4096]))
          }
          for t in 0..<2 { for i in 0..<count { memory.put(results.page(t, i)) } }
        }
      }
    }
  }

  @Test func outOfFramesIsENOMEMAndACacheWithoutInodeReadsZeros() throws {
    let memory = try PhysicalMemory(bytes: 16 * 4096)
    do {
      let cache = PageCache(inode: nil, memory: memory)
      var held: [PFN] = []
      while let p = memory.allocate() { held.append(p) }
      memory.put(held.removeLast())
      let (p, filled) = try cache.findOrRead(7, cache: nil)
      #expect(filled && frameBytes(memory, p).allSatisfy { $0 == 0 })
      expectErrno(.noMemory) { () throws(Errno) in try cache.findOrRead(8, cache: nil) }
      expectErrno(.fileTooLarge) { () throws(Errno) in try cache.findOrRead(PageCache.maxIndex + 1, cache: nil) }
      #expect(cache.residentPages == 1)
      memory.put(p)
      for h in held { memory.put(h) }
    }
    #expect(memory.framesInUse == 0)
  }

  // CPU.isPageCached: the fault path's lockless lookup, asked through the public API.
  @Test(arguments: TestFS.allCases)
  func isPageCachedAnswersThroughTheLocklessLookupAndPutsItsReference(_ kind: TestFS) throws {
    try withFileRig(kind) { r, env in
      let fd = try env.create("f", pages: 3)
      let inode = try env.fs.lookup("/f")
      let cache = inode.pageCache
      let memory = r.machine.memory
      #expect(cache.residentPages == 3)
      let fills = cache.fills

      for index in 0..<UInt64(3) {
        let p = try #require(cache.find(index))
        let before = memory.meta(p).refcount  // the cache's and ours
        #expect(before == 2)
        #expect(r.cpu.isPageCached(inode, index: index))
        #expect(memory.meta(p).refcount == before)
        memory.put(p)
      }
      // Misses: past EOF, far past it, the largest index. None reads a page in.
      for index in [3, 1 << 40, PageCache.maxIndex, .max] as [UInt64] {
        #expect(!r.cpu.isPageCached(inode, index: index))
      }
      #expect(cache.residentPages == 3)
      #expect(cache.fills == fills)

      // Pages the cache lets go are no longer reported.
      try r.cpu.ftruncate(fd, 2 * Page.size)
      #expect(!r.cpu.isPageCached(inode, index: 2))
      #expect(r.cpu.isPageCached(inode, index: 1))
      if kind == .hostfs {
        #expect(cache.invalidate(from: 0, to: 1) == 1)
        #expect(!r.cpu.isPageCached(inode, index: 0))
        #expect(r.cpu.isPageCached(inode, index: 1))
      }
      try r.cpu.close(fd)
    }
  }
}
