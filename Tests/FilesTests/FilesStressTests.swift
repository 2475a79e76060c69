#if canImport(Glibc)
import Glibc
#endif
import Faultline
import FaultlineTestSupport
import Synchronization
import Testing

// Concurrency: page-cache fills, dirtying, writeback, invalidate and truncate racing on one
// inode; opens and closes racing umount. Workers only count; the checks run after the join.

@Suite struct FilesStressTests {
  @Test func fillDirtyWritebackInvalidateAndTruncateRaceWithoutLeaks() throws {
    try withMemory { memory in
      try withTempDirectory { dir in
        let fs = try HostFS(root: dir, memory: memory)
        let ns = Namespace()
        let mount = ns.mount(fs, at: "/")
        let table = FileTable(namespace: ns)
        let fd = try table.open("/s", flags: OpenFlags.create | OpenFlags.readWrite)
        let pages: UInt64 = 32
        try table.ftruncate(fd, pages * 4096)
        let inode = try table.get(fd).inode
        let cache = inode.pageCache
        let errors = Atomic<Int>(0)
        let done = Atomic<Int>(0)
        runThreads(5) { t in
          let frameCache = memory.makeCache()
          defer { memory.unregister(frameCache) }
          var seed = UInt64(t + 1) &* 0x9E37_79B9_7F4A_7C15
          func next() -> UInt64 {
            seed ^= seed << 13
            seed ^= seed >> 7
            seed ^= seed << 17
            return seed
          }
          for i in 0..<2_000 {
            do throws(Errno) {
              switch t {
              case 0, 1:
                let index = next() % pages
                let (p, _) = try cache.findOrRead(index, cache: frameCache)
                memory.address(of: p).storeBytes(of: UInt8(truncatingIfNeeded: i), as: UInt8.self)
                cache.markDirty(index, page: p)
                memory.put(p, cache: frameCache)
              case 2:
                if i % 8 == 0 { try cache.writebackAll() }
              case 3:
                if i % 4 == 0 { _ = cache.invalidate(from: 0, to: .max) }
              default:
                if i % 16 == 0 { try inode.truncate(to: (next() % (pages + 1)) * 4096 + next() % 4096) }
              }
            } catch {
              errors.wrappingAdd(1, ordering: .relaxed)
            }
          }
          done.wrappingAdd(1, ordering: .relaxed)
        }
        #expect(errors.load(ordering: .relaxed) == 0)
        #expect(done.load(ordering: .relaxed) == 5)
        try cache.writebackAll()
        #expect(cache.dirtyCount == 0)
        // Writeback never grew the host file past i_size.
        #expect(try hostRead(dir + "/s").count == Int(inode.size))
        try table.close(fd)
        try mount.umount()
      }
    }
  }

  @Test func opensAndClosesRacingUmountLeaveTheCountAtZero() throws {
    try withMemory { memory in
      let ns = Namespace()
      let mount = ns.mount(TmpFS(memory: memory), at: "/mnt")
      let table = FileTable(namespace: ns)
      let setup = try table.open("/mnt/f", flags: OpenFlags.create | OpenFlags.readWrite)
      try table.close(setup)
      let opened = Atomic<Int>(0)
      let refused = Atomic<Int>(0)
      let unmounted = Atomic<Int>(0)
      runThreads(3) { t in
        for _ in 0..<2_000 {
          if t < 2 {
            guard let fd = try? table.open("/mnt/f", flags: OpenFlags.readOnly) else { continue }
            opened.wrappingAdd(1, ordering: .relaxed)
            let file = try? table.fget(fd)
            try? table.close(fd)
            file?.fput()
          } else if unmounted.load(ordering: .relaxed) == 0 {
            do throws(Errno) {
              try mount.umount()
              unmounted.store(1, ordering: .relaxed)
            } catch {
              if error == .resourceBusy { refused.wrappingAdd(1, ordering: .relaxed) }
            }
          }
        }
      }
      #expect(mount.users == 0)
      #expect(table.openCount == 0)
      #expect(mount.busyRefusals == refused.load(ordering: .relaxed))
      if unmounted.load(ordering: .relaxed) == 0 { try mount.umount() }
      #expect(!mount.isMounted)
      expectErrno(.noSuchFileOrDirectory) { () throws(Errno) in try table.open("/mnt/f", flags: OpenFlags.readOnly) }
    }
  }
}
