import Faultline
import FaultlineTestSupport
import Glibc
import Testing

// Behaviour of file mappings, on HostFS (real host files) and, where the backing store is not
// the point of the test, TmpFS. Expectations were checked against the host kernel (6.18) with
// small C programs: the EOF page keeps its head and reads zeros past EOF, pages past EOF give
// SIGBUS, mprotect(PROT_WRITE) on a shared mapping of an O_RDONLY fd is EACCES.

fileprivate func fill(_ c: Character, _ n: Int) -> [UInt8] { [UInt8](repeating: c.asciiValue!, count: n) }

@Suite struct FileMappingTests {
  // MARK: MAP_PRIVATE

  @Test(arguments: TestFS.allCases)
  func privateWriteCopiesThePageAndLeavesTheFileAlone(_ kind: TestFS) throws {
    try withFileRig(kind) { r, env in
      let fd = try env.create("data", pages: 3)
      let a = try r.cpu.mmap(0, 3 * page, prot: rw, flags: MapFlags.private, fd: fd)
      let other = try r.cpu.mmap(0, 3 * page, prot: Prot.read, flags: MapFlags.private, fd: fd)
      // The second private mapping reads page 1 first, so it maps the page-cache page.
      #expect(try r.cpu.loadByte(other + page + 10) == UInt8(ascii: "B"))

      try r.cpu.storeBytes(a + page + 10, Array("xyz".utf8))
      #expect(try r.cpu.loadBytes(a + page + 10, count: 3) == Array("xyz".utf8))
      // The rest of the copied page, and the other pages, still hold the file's data.
      #expect(try r.cpu.loadByte(a + page + 9) == UInt8(ascii: "B"))
      #expect(try r.cpu.loadByte(a + page + 13) == UInt8(ascii: "B"))
      #expect(try r.cpu.loadByte(a) == UInt8(ascii: "A"))
      #expect(try r.cpu.loadByte(a + 2 * page + 4095) == UInt8(ascii: "C"))
      // Another private mapping, and one made after the write, do not see it.
      #expect(try r.cpu.loadBytes(other + page + 10, count: 3) == fill("B", 3))
      let late = try r.cpu.mmap(0, 3 * page, prot: Prot.read, flags: MapFlags.private, fd: fd)
      #expect(try r.cpu.loadBytes(late + page + 10, count: 3) == fill("B", 3))
      // Nor does the file.
      #expect(try env.fileBytes("data", at: page + 10, count: 3) == fill("B", 3))
      if kind == .hostfs { #expect(env.hostBytes("data", at: page + 10, count: 3) == fill("B", 3)) }

      try r.cpu.munmap(a, 3 * page)
      try r.cpu.munmap(other, 3 * page)
      try r.cpu.munmap(late, 3 * page)
      try r.cpu.close(fd)
      // Not even after unmapping and closing (which write back what is dirty).
      if kind == .hostfs { #expect(env.hostBytes("data", at: page + 10, count: 3) == fill("B", 3)) }
      try env.umount()
    }
  }

  // MARK: MAP_SHARED writeback

  @Test func sharedWriteThenMsyncSyncReachesTheHostFile() throws {
    try withFileRig(.hostfs) { r, env in
      let fd = try env.create("data", pages: 3)
      let a = try r.cpu.mmap(0, 3 * page, prot: rw, flags: MapFlags.shared, fd: fd)
      try r.cpu.storeBytes(a + 2 * page + 100, Array("synced".utf8))
      try r.cpu.storeByte(a, UInt8(ascii: "z"))
      try r.cpu.msync(a, 3 * page, flags: MsyncFlags.sync)
      // Checked while still mapped and open: msync is what wrote it.
      #expect(env.hostBytes("data", at: 2 * page + 100, count: 6) == Array("synced".utf8))
      #expect(env.hostBytes("data", at: 0, count: 2) == [UInt8(ascii: "z"), UInt8(ascii: "A")])
      #expect(env.hostBytes("data", at: page, count: 1) == [UInt8(ascii: "B")])
      #expect(env.hostSize("data") == 3 * 4096)
      // A write after the sync is synced by the next msync too (the page was cleaned).
      try r.cpu.storeBytes(a + 2 * page + 100, Array("again!".utf8))
      try r.cpu.msync(a + 2 * page, page, flags: MsyncFlags.sync)
      #expect(env.hostBytes("data", at: 2 * page + 100, count: 6) == Array("again!".utf8))
      try r.cpu.munmap(a, 3 * page)
      try r.cpu.close(fd)
      try env.umount()
    }
  }

  @Test func storeAfterFsyncIsWrittenByTheNextMsync() throws {
    // fsync cleans the page the way msync does (filemap_write_and_wait: folio_mkclean first), so
    // a store through the mapping after it faults, dirties the page again and is not lost.
    try withFileRig(.hostfs) { r, env in
      let fd = try env.create("data", pages: 1)
      let a = try r.cpu.mmap(0, page, prot: rw, flags: MapFlags.shared, fd: fd)
      try r.cpu.storeByte(a, UInt8(ascii: "x"))
      try r.mm.files.fsync(fd)
      #expect(env.hostBytes("data", at: 0, count: 1) == [UInt8(ascii: "x")])
      try r.cpu.storeByte(a + 1, UInt8(ascii: "y"))
      try r.cpu.msync(a, page, flags: MsyncFlags.sync)
      #expect(env.hostBytes("data", at: 0, count: 2) == [UInt8(ascii: "x"), UInt8(ascii: "y")])
      try r.cpu.munmap(a, page)
      try r.cpu.close(fd)
      try env.umount()
    }
  }

  @Test func sharedWriteMsyncAsyncThenMunmapReachesTheHostFile() throws {
    try withFileRig(.hostfs) { r, env in
      let fd = try env.create("data", pages: 2)
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: MapFlags.shared, fd: fd)
      try r.cpu.storeBytes(a + page + 7, Array("async".utf8))
      try r.cpu.msync(a, 2 * page, flags: MsyncFlags.async)
      try r.cpu.munmap(a, 2 * page)
      // munmap writes back the shared file pages it unmapped; the fd is still open.
      #expect(env.hostBytes("data", at: page + 7, count: 5) == Array("async".utf8))
      #expect(env.hostBytes("data", at: page + 6, count: 1) == [UInt8(ascii: "B")])
      try r.cpu.close(fd)
      try env.umount()
    }
  }

  @Test(arguments: TestFS.allCases)
  func twoSharedMappingsSeeEachOthersWrites(_ kind: TestFS) throws {
    try withFileRig(kind) { r, env in
      let fd = try env.create("data", pages: 2)
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: MapFlags.shared, fd: fd)
      let b = try r.cpu.mmap(0, 2 * page, prot: rw, flags: MapFlags.shared, fd: fd)
      // A private mapping that has only read the page maps the same page-cache page.
      let p = try r.cpu.mmap(0, 2 * page, prot: Prot.read, flags: MapFlags.private, fd: fd)
      #expect(try r.cpu.loadByte(p + 20) == UInt8(ascii: "A"))
      // Read first through b, so that its PTE exists before a writes.
      #expect(try r.cpu.loadByte(b + 20) == UInt8(ascii: "A"))
      try r.cpu.storeBytes(a + 20, Array("from-a".utf8))
      try r.cpu.storeBytes(b + page + 30, Array("from-b".utf8))
      #expect(try r.cpu.loadBytes(b + 20, count: 6) == Array("from-a".utf8))
      #expect(try r.cpu.loadBytes(a + page + 30, count: 6) == Array("from-b".utf8))
      #expect(try r.cpu.loadBytes(p + 20, count: 6) == Array("from-a".utf8))
      #expect(try r.cpu.loadBytes(p + page + 30, count: 6) == Array("from-b".utf8))
      // read(2) sees the page cache too.
      #expect(try env.fileBytes("data", at: 20, count: 6) == Array("from-a".utf8))
      try r.cpu.munmap(a, 2 * page)
      try r.cpu.munmap(b, 2 * page)
      try r.cpu.munmap(p, 2 * page)
      try r.cpu.close(fd)
      if kind == .hostfs {
        #expect(env.hostBytes("data", at: 20, count: 6) == Array("from-a".utf8))
        #expect(env.hostBytes("data", at: page + 30, count: 6) == Array("from-b".utf8))
      }
      try env.umount()
    }
  }

  // MARK: Truncate

  @Test(arguments: TestFS.allCases, [MapFlags.shared, MapFlags.private])
  func truncateWhileMappedGivesSigbusPastTheEOFPage(_ kind: TestFS, _ type: MapFlags) throws {
    try withFileRig(kind) { r, env in
      let fd = try env.create("data", pages: 3)
      let a = try r.cpu.mmap(0, 3 * page, prot: Prot.read, flags: type, fd: fd)
      for i in 0..<UInt64(3) { #expect(try r.cpu.loadByte(a + i * page + 50) == UInt8(ascii: "A") + UInt8(i)) }

      try r.cpu.ftruncate(fd, page + 100)
      // The page holding EOF stays: its head keeps the data, the rest reads zeros.
      #expect(try r.cpu.loadByte(a + page + 50) == UInt8(ascii: "B"))
      #expect(try r.cpu.loadByte(a + page + 99) == UInt8(ascii: "B"))
      #expect(try r.cpu.loadByte(a + page + 100) == 0)
      #expect(try r.cpu.loadBytes(a + page + 100, count: 4096 - 100) == [UInt8](repeating: 0, count: 4096 - 100))
      #expect(try r.cpu.loadByte(a) == UInt8(ascii: "A"))
      // The page past it gives SIGBUS, for loads and stores.
      #expect(throws: Signal.sigbus(address: a + 2 * page)) { try r.cpu.loadByte(a + 2 * page) }
      #expect(throws: Signal.sigbus(address: a + 2 * page + 8)) { try r.cpu.loadByte(a + 2 * page + 8) }
      if type == MapFlags.private {
        try r.cpu.mprotect(a, 3 * page, prot: rw)
        #expect(throws: Signal.sigbus(address: a + 2 * page)) { try r.cpu.storeByte(a + 2 * page, 1) }
      }

      // Growing the file again makes the page accessible, as zeros.
      try r.cpu.ftruncate(fd, 3 * page)
      #expect(try r.cpu.loadBytes(a + 2 * page, count: 4096) == [UInt8](repeating: 0, count: 4096))
      #expect(try r.cpu.loadByte(a + page + 200) == 0)
      #expect(try r.cpu.loadByte(a + page + 50) == UInt8(ascii: "B"))
      try r.cpu.munmap(a, 3 * page)
      try r.cpu.close(fd)
      if kind == .hostfs {
        #expect(env.hostSize("data") == 3 * 4096)
        #expect(env.hostBytes("data", at: page + 100, count: 1) == [0])
      }
      try env.umount()
    }
  }

  @Test(arguments: TestFS.allCases)
  func sharedWriteIntoTheEOFPageTailIsNotWrittenPastEOF(_ kind: TestFS) throws {
    try withFileRig(kind) { r, env in
      let fd = try env.create("data", pages: 1)
      try r.cpu.ftruncate(fd, 100)
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: MapFlags.shared, fd: fd)
      // Linux: the tail of the EOF page is writable but never reaches the file.
      try r.cpu.storeByte(a + 50, UInt8(ascii: "m"))
      try r.cpu.storeByte(a + 200, UInt8(ascii: "t"))
      #expect(try r.cpu.loadByte(a + 200) == UInt8(ascii: "t"))
      #expect(throws: Signal.sigbus(address: a + page)) { try r.cpu.storeByte(a + page, 1) }
      try r.cpu.msync(a, 2 * page, flags: MsyncFlags.sync)
      if kind == .hostfs {
        #expect(env.hostSize("data") == 100)
        #expect(env.hostBytes("data", at: 50, count: 1) == [UInt8(ascii: "m")])
      }
      #expect(try env.fileBytes("data", at: 0, count: 4096).count == 100)
      try r.cpu.munmap(a, 2 * page)
      try r.cpu.close(fd)
      try env.umount()
    }
  }

  // MARK: umount

  @Test(arguments: TestFS.allCases)
  func umountIsBusyWhileAFileIsOpenOrMapped(_ kind: TestFS) throws {
    try withFileRig(kind) { r, env in
      let fd = try env.create("data", pages: 2)
      expectErrno(.resourceBusy) { () throws(Errno) in try env.umount() }

      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: MapFlags.shared, fd: fd)
      try r.cpu.storeByte(a + page, UInt8(ascii: "u"))
      try r.cpu.close(fd)
      // Only the mapping holds the file now.
      expectErrno(.resourceBusy) { () throws(Errno) in try env.umount() }
      #expect(try r.cpu.loadByte(a + page) == UInt8(ascii: "u"))

      try r.cpu.munmap(a, 2 * page)
      try env.umount()
      // Nothing was in flight: every refusal was for a real user.
      #expect(r.machine.vmstat[.umountBusyInflight] == 0)
      // The mount is gone: its path no longer resolves, and a second umount is EINVAL.
      expectErrno(.noSuchFileOrDirectory) { () throws(Errno) in try r.cpu.open(env.path("data"), flags: 0) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.machine.umount(env.mountPoint) }
      if kind == .hostfs { #expect(env.hostBytes("data", at: page, count: 1) == [UInt8(ascii: "u")]) }
    }
  }

  @Test(arguments: TestFS.allCases)
  func umountIsBusyWhileAPrivateMappingRemains(_ kind: TestFS) throws {
    try withFileRig(kind) { r, env in
      let fd = try env.create("data", pages: 1)
      let a = try r.cpu.mmap(0, page, prot: Prot.read, flags: MapFlags.private, fd: fd)
      try r.cpu.close(fd)
      expectErrno(.resourceBusy) { () throws(Errno) in try env.umount() }
      try r.cpu.munmap(a, page)
      try env.umount()
      #expect(r.machine.vmstat[.umountBusyInflight] == 0)
    }
  }

  // MARK: Fault-around

  @Test(arguments: TestFS.allCases)
  func readFaultMapsNeighbouringCachedPages(_ kind: TestFS) throws {
    try withFileRig(kind) { r, env in
      let fd = try env.create("data", pages: 8)
      // Fill the page cache: every page through a first private mapping.
      let first = try r.cpu.mmap(0, 8 * page, prot: Prot.read, flags: MapFlags.private, fd: fd)
      for i in 0..<UInt64(8) { _ = try r.cpu.loadByte(first + i * page) }
      let before = r.machine.vmstat[.faultAroundPages]
      let faultsBefore = r.machine.vmstat[.pgfault]

      // The fault-around window is 16 pages aligned in the address space: place the mapping at
      // its start.
      let second = try r.cpu.mmap(
        faultAroundBase, 8 * page, prot: Prot.read, flags: MapFlags.private | MapFlags.fixedNoReplace, fd: fd)
      #expect(try r.cpu.loadByte(second + 3 * page) == UInt8(ascii: "D"))
      // The seven other cached pages of the 16-page window were mapped by that one fault.
      #expect(r.machine.vmstat[.faultAroundPages] - before == 7)
      for i in 0..<UInt64(8) { #expect(try r.cpu.loadByte(second + i * page + 1) == UInt8(ascii: "A") + UInt8(i)) }
      #expect(r.machine.vmstat[.pgfault] - faultsBefore == 1)

      try r.cpu.munmap(first, 8 * page)
      try r.cpu.munmap(second, 8 * page)
      try r.cpu.close(fd)
      try env.umount()
    }
  }

  @Test(arguments: TestFS.allCases)
  func faultAroundStopsAtEOF(_ kind: TestFS) throws {
    try withFileRig(kind) { r, env in
      let fd = try env.create("data", pages: 4)
      let first = try r.cpu.mmap(0, 4 * page, prot: Prot.read, flags: MapFlags.shared, fd: fd)
      for i in 0..<UInt64(4) { _ = try r.cpu.loadByte(first + i * page) }
      let before = r.machine.vmstat[.faultAroundPages]
      // The mapping is longer than the file: fault-around maps the 3 other file pages only.
      let second = try r.cpu.mmap(
        faultAroundBase, 8 * page, prot: Prot.read, flags: MapFlags.shared | MapFlags.fixedNoReplace, fd: fd)
      _ = try r.cpu.loadByte(second + 2 * page)
      #expect(r.machine.vmstat[.faultAroundPages] - before == 3)
      #expect(throws: Signal.sigbus(address: second + 4 * page)) { try r.cpu.loadByte(second + 4 * page) }
      try r.cpu.munmap(first, 4 * page)
      try r.cpu.munmap(second, 8 * page)
      try r.cpu.close(fd)
      try env.umount()
    }
  }

  @Test(arguments: TestFS.allCases)
  func faultAroundPagesZeroDisablesFaultAround(_ kind: TestFS) throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.faultAroundPages = 0
    try withFileRig(kind, config: config) { r, env in
      let fd = try env.create("data", pages: 8)
      let first = try r.cpu.mmap(0, 8 * page, prot: Prot.read, flags: MapFlags.private, fd: fd)
      for i in 0..<UInt64(8) { _ = try r.cpu.loadByte(first + i * page) }
      let faultsBefore = r.machine.vmstat[.pgfault]
      let second = try r.cpu.mmap(
        faultAroundBase, 8 * page, prot: Prot.read, flags: MapFlags.private | MapFlags.fixedNoReplace, fd: fd)
      for i in 0..<UInt64(8) { #expect(try r.cpu.loadByte(second + i * page) == UInt8(ascii: "A") + UInt8(i)) }
      #expect(r.machine.vmstat[.faultAroundPages] == 0)
      // One fault per page.
      #expect(r.machine.vmstat[.pgfault] - faultsBefore == 8)
      try r.cpu.munmap(first, 8 * page)
      try r.cpu.munmap(second, 8 * page)
      try r.cpu.close(fd)
      try env.umount()
    }
  }

  // MARK: mprotect

  @Test(arguments: TestFS.allCases)
  func mprotectWriteOnSharedMappingOfReadOnlyFdIsEACCES(_ kind: TestFS) throws {
    try withFileRig(kind) { r, env in
      let rwfd = try env.create("data", pages: 2)
      try r.cpu.close(rwfd)
      let fd = try r.cpu.open(env.path("data"), flags: OpenFlags.readOnly)
      let a = try r.cpu.mmap(0, 2 * page, prot: Prot.read, flags: MapFlags.shared, fd: fd)
      expectErrno(.permissionDenied) { () throws(Errno) in try r.cpu.mprotect(a, 2 * page, prot: rw) }
      expectErrno(.permissionDenied) { () throws(Errno) in try r.cpu.mprotect(a + page, page, prot: Prot.write) }
      // Nothing changed: still readable, still not writable.
      #expect(try r.cpu.loadByte(a + page) == UInt8(ascii: "B"))
      #expect(throws: Signal.sigsegv(.accErr, address: a)) { try r.cpu.storeByte(a, 1) }
      #expect(r.mm.mapsLines().first?.hasPrefix("\(hex8(a))-\(hex8(a + 2 * page)) r--s ") == true)
      try r.cpu.munmap(a, 2 * page)
      try r.cpu.close(fd)
      try env.umount()
    }
  }

  @Test(arguments: TestFS.allCases)
  func mprotectWriteOnPrivateMappingOfReadOnlyFdGivesAPrivateCopy(_ kind: TestFS) throws {
    try withFileRig(kind) { r, env in
      let rwfd = try env.create("data", pages: 2)
      try r.cpu.close(rwfd)
      let fd = try r.cpu.open(env.path("data"), flags: OpenFlags.readOnly)
      let a = try r.cpu.mmap(0, 2 * page, prot: Prot.read, flags: MapFlags.private, fd: fd)
      #expect(try r.cpu.loadByte(a + page) == UInt8(ascii: "B"))
      try r.cpu.mprotect(a, 2 * page, prot: rw)
      try r.cpu.storeBytes(a + page, Array("mine".utf8))
      #expect(try r.cpu.loadBytes(a + page, count: 4) == Array("mine".utf8))
      #expect(try env.fileBytes("data", at: page, count: 4) == fill("B", 4))
      try r.cpu.munmap(a, 2 * page)
      try r.cpu.close(fd)
      if kind == .hostfs { #expect(env.hostBytes("data", at: page, count: 4) == fill("B", 4)) }
      try env.umount()
    }
  }

  // MARK: /proc/self/maps

  @Test(arguments: TestFS.allCases)
  func mapsShowsFileMappingsWithDeviceInodeAndPath(_ kind: TestFS) throws {
    try withFileRig(kind) { r, env in
      let fd = try env.create("data", pages: 3)
      let file = try r.mm.files.get(fd)
      let dev = file.inode.fs.device
      let devText = hex2(dev.major) + ":" + hex2(dev.minor)
      let ino = file.inode.ino
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: MapFlags.shared, fd: fd, offset: Int64(page))
      let b = try r.cpu.mmap(0, page, prot: Prot.read, flags: MapFlags.private, fd: fd)
      let lines = r.mm.mapsLines()
      // Linux: `start-end perms offset MAJ:MIN inode`, padded so that the path starts in column 74.
      let expectedA = fileLine(a, a + 2 * page, "rw-s", offset: page, dev: devText, ino: ino, path: "/mnt/data")
      let expectedB = fileLine(b, b + page, "r--p", offset: 0, dev: devText, ino: ino, path: "/mnt/data")
      #expect(lines.contains(expectedA), "\(lines)")
      #expect(lines.contains(expectedB), "\(lines)")
      try r.cpu.munmap(a, 2 * page)
      try r.cpu.munmap(b, page)
      try r.cpu.close(fd)
      try env.umount()
    }
  }
}

/// A free address aligned to the 16-page fault-around window.
fileprivate let faultAroundBase: UInt64 = 0x4000_0000

/// `%02x`, as maps prints device numbers.
fileprivate func hex2(_ v: UInt32) -> String {
  let s = String(v, radix: 16)
  return s.count >= 2 ? s : "0" + s
}

/// A maps line of a file mapping: the path starts in column 74 (`seq_pad` to 73, then a space).
fileprivate func fileLine(
  _ start: UInt64, _ end: UInt64, _ perms: String, offset: UInt64, dev: String, ino: UInt64, path: String
) -> String {
  var s = "\(hex8(start))-\(hex8(end)) \(perms) \(hex8(offset)) \(dev) \(ino)"
  s += String(repeating: " ", count: max(1, 73 - s.utf8.count))
  return s + path
}
