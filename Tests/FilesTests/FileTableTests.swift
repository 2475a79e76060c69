import Faultline
import FaultlineTestSupport
import Testing

// The fd table: lowest free fd from 3, EBADF, O_PATH, O_CREAT/O_EXCL/O_TRUNC, directories and
// ftruncate's checks, reference counts.

@Suite struct FileTableTests {
  func rig(_ memory: PhysicalMemory) -> (TmpFS, Namespace, FileTable) {
    let fs = TmpFS(memory: memory)
    let ns = Namespace()
    ns.mount(fs, at: "/")
    return (fs, ns, FileTable(namespace: ns))
  }

  @Test func fdsStartAtThreeAndTheLowestFreeIsReused() throws {
    try withMemory { memory in
      let (_, _, table) = rig(memory)
      let rw = OpenFlags.create | OpenFlags.readWrite
      #expect(try table.open("/a", flags: rw) == 3)
      #expect(try table.open("/b", flags: rw) == 4)
      #expect(try table.open("/a", flags: OpenFlags.readOnly) == 5)
      try table.close(4)
      #expect(try table.open("/c", flags: rw) == 4)
      #expect(try table.dup(3) == 6)
      #expect(try table.get(6) === table.get(3))
      #expect(try table.get(3).references == 2)
      #expect(table.openCount == 4)
      // The copy takes one reference per slot: fds 3 and 6 share one file.
      let child = table.copy()
      #expect(child.openCount == 4)
      #expect(try table.get(3).references == 4)
      child.closeAll()
      #expect(try table.get(3).references == 2)
      table.closeAll()
      #expect(table.openCount == 0)
    }
  }

  @Test func badFileDescriptorsAreEBADF() throws {
    try withMemory { memory in
      let (_, _, table) = rig(memory)
      expectErrno(.badFileDescriptor) { () throws(Errno) in try table.close(3) }
      expectErrno(.badFileDescriptor) { () throws(Errno) in try table.close(-1) }
      expectErrno(.badFileDescriptor) { () throws(Errno) in try table.close(0) }
      expectErrno(.badFileDescriptor) { () throws(Errno) in try table.get(99) }
      expectErrno(.badFileDescriptor) { () throws(Errno) in try table.ftruncate(42, 0) }
      let fd = try table.open("/f", flags: OpenFlags.create | OpenFlags.writeOnly)
      try table.close(fd)
      expectErrno(.badFileDescriptor) { () throws(Errno) in try table.close(fd) }
      expectErrno(.badFileDescriptor) { () throws(Errno) in try table.get(fd) }
    }
  }

  @Test func oPathFdIsRefusedForMmapAndIO() throws {
    try withMemory { memory in
      let (fs, _, table) = rig(memory)
      _ = try fs.create("/p")
      // O_PATH drops O_CREAT and O_TRUNC: no file is made.
      expectErrno(.noSuchFileOrDirectory) { () throws(Errno) in
        try table.open("/q", flags: OpenFlags.path | OpenFlags.create | OpenFlags.readWrite)
      }
      let fd = try table.open("/p", flags: OpenFlags.path | OpenFlags.readWrite | OpenFlags.truncate)
      expectErrno(.badFileDescriptor) { () throws(Errno) in try table.get(fd) }
      expectErrno(.badFileDescriptor) { () throws(Errno) in try table.get(fd, forMmap: true) }
      expectErrno(.badFileDescriptor) { () throws(Errno) in try table.fget(fd) }
      expectErrno(.badFileDescriptor) { () throws(Errno) in try table.ftruncate(fd, 0) }
      let raw = try table.getRaw(fd)
      #expect(raw.isPath && !raw.readable && !raw.writable)
      #expect(raw.flags == OpenFlags.path)
      try table.close(fd)
    }
  }

  @Test func createExclusiveTruncateAndDirectories() throws {
    try withMemory { memory in
      let (fs, _, table) = rig(memory)
      expectErrno(.noSuchFileOrDirectory) { () throws(Errno) in try table.open("/missing", flags: OpenFlags.readOnly) }
      let fd = try table.open("/d/e/f", flags: OpenFlags.create | OpenFlags.exclusive | OpenFlags.readWrite)
      let inode = try table.get(fd).inode
      #expect(inode.kind == .regular && inode.size == 0)
      expectErrno(.fileExists) { () throws(Errno) in
        try table.open("/d/e/f", flags: OpenFlags.create | OpenFlags.exclusive | OpenFlags.readWrite)
      }
      // O_CREAT without O_EXCL opens the existing file.
      let same = try table.open("/d/e/f", flags: OpenFlags.create | OpenFlags.readOnly)
      #expect(try table.get(same).inode === inode)

      _ = try [UInt8](repeating: 7, count: 5000).withUnsafeBytes { try table.pwrite(fd, $0, at: 0) }
      #expect(inode.size == 5000 && inode.pageCache.residentPages == 2)
      let t = try table.open("/d/e/f", flags: OpenFlags.truncate | OpenFlags.writeOnly)
      #expect(inode.size == 0 && inode.pageCache.residentPages == 0)

      // Implicit directories.
      let dir = try table.open("/d/e", flags: OpenFlags.directory)
      #expect(try table.get(dir).inode.kind == .directory)
      #expect(try table.get(dir).readable)
      expectErrno(.isDirectory) { () throws(Errno) in try table.open("/d", flags: OpenFlags.readWrite) }
      expectErrno(.isDirectory) { () throws(Errno) in try table.open("/d", flags: OpenFlags.create) }
      expectErrno(.isDirectory) { () throws(Errno) in try table.open("/", flags: OpenFlags.truncate) }
      expectErrno(.notDirectory) { () throws(Errno) in try table.open("/d/e/f", flags: OpenFlags.directory) }
      expectErrno(.notDirectory) { () throws(Errno) in try table.open("/d/e/f/g", flags: OpenFlags.create | OpenFlags.readWrite) }
      expectErrno(.invalidArgument) { () throws(Errno) in try table.ftruncate(dir, 0) }
      _ = try fs.mkdir("/empty")
      #expect(try fs.lookup("/empty").kind == .directory)
      expectErrno(.fileExists) { () throws(Errno) in try fs.mkdir("/empty") }
      for f in [fd, same, t, dir] { try table.close(f) }
      try fs.unlink("/d/e/f")
      expectErrno(.noSuchFileOrDirectory) { () throws(Errno) in try fs.lookup("/d/e/f") }
    }
  }

  @Test func ftruncateNeedsAWritableRegularFile() throws {
    try withMemory { memory in
      let (_, _, table) = rig(memory)
      let ro = try table.open("/r", flags: OpenFlags.create | OpenFlags.readOnly)
      expectErrno(.invalidArgument) { () throws(Errno) in try table.ftruncate(ro, 10) }
      let rw = try table.open("/r", flags: OpenFlags.readWrite)
      expectErrno(.invalidArgument) { () throws(Errno) in try table.ftruncate(rw, UInt64(Int64.max) + 1) }
      let file = try table.get(rw)
      let mtime = file.inode.mtimeNanoseconds
      file.inode.mtimeNanoseconds = 0
      try table.ftruncate(rw, 12_345)
      #expect(file.inode.size == 12_345)
      #expect(file.inode.mtimeNanoseconds >= mtime)
      let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4, alignment: 1)
      defer { buffer.deallocate() }
      expectErrno(.badFileDescriptor) { () throws(Errno) in try table.pread(0, into: buffer, at: 0) }
      expectErrno(.badFileDescriptor) { () throws(Errno) in try table.pwrite(ro, UnsafeRawBufferPointer(buffer), at: 0) }
      try table.close(ro)
      try table.close(rw)
    }
  }

  @Test func hostFSOpenCreateAndLookupShareOneInodePerHostFile() throws {
    try withMemory { memory in
      try withTempDirectory { dir in
        let fs = try HostFS(root: dir, memory: memory)
        let ns = Namespace()
        ns.mount(fs, at: "/host")
        let table = FileTable(namespace: ns)
        let a = try table.open("/host/x", flags: OpenFlags.create | OpenFlags.exclusive | OpenFlags.readWrite)
        let b = try table.open("/host/./x", flags: OpenFlags.readOnly)
        #expect(try table.get(a).inode === table.get(b).inode)
        expectErrno(.fileExists) { () throws(Errno) in try table.open("/host/x", flags: OpenFlags.create | OpenFlags.exclusive) }
        expectErrno(.noSuchFileOrDirectory) { () throws(Errno) in try table.open("/host/nope/x", flags: OpenFlags.create) }
        _ = try fs.mkdir("/sub")
        let d = try table.open("/host/sub", flags: OpenFlags.directory)
        #expect(try table.get(d).inode.kind == .directory)
        expectErrno(.isDirectory) { () throws(Errno) in try table.open("/host/sub", flags: OpenFlags.writeOnly) }
        expectErrno(.notDirectory) { () throws(Errno) in try HostFS(root: dir + "/x", memory: memory) }
        expectErrno(.noSuchFileOrDirectory) { () throws(Errno) in try HostFS(root: dir + "/none", memory: memory) }
        #expect(fs.name == "hostfs" && fs.speculativeSafe && !fs.backedByCache)
        for f in [a, b, d] { try table.close(f) }
      }
    }
  }
}
