import Faultline
import FaultlineTestSupport
import Testing

// Mounts and the namespace: umount refuses with EBUSY while a file is open, succeeds after the
// last close, and lookups through an unmounted mount fail.

@Suite struct MountTests {
  @Test func umountIsBusyWhileAFileIsOpenAndSucceedsAfterClose() throws {
    try withMemory { memory in
      let ns = Namespace()
      let mount = ns.mount(TmpFS(memory: memory), at: "/mnt/data/")
      #expect(mount.path == "/mnt/data")
      let table = FileTable(namespace: ns)
      let fd = try table.open("/mnt/data/f", flags: OpenFlags.create | OpenFlags.readWrite)
      #expect(mount.users == 1)
      expectErrno(.resourceBusy) { () throws(Errno) in try mount.umount() }
      #expect(mount.busyRefusals == 1)
      #expect(mount.isMounted)

      // A mapping-style extra reference on the file keeps the mount busy after close.
      let file = try table.fget(fd)
      #expect(file.references == 2)
      try table.close(fd)
      #expect(file.references == 1)
      #expect(mount.users == 1)
      expectErrno(.resourceBusy) { () throws(Errno) in try ns.umount("/mnt/data") }
      #expect(mount.busyRefusals == 2)
      file.fput()
      #expect(file.references == 0)
      #expect(mount.users == 0)

      try mount.umount()
      #expect(!mount.isMounted)
      #expect(mount.busyRefusals == 2)
      expectErrno(.invalidArgument) { () throws(Errno) in try mount.umount() }
      expectErrno(.noSuchFileOrDirectory) { () throws(Errno) in try table.open("/mnt/data/f", flags: OpenFlags.readOnly) }
      expectErrno(.noSuchFileOrDirectory) { () throws(Errno) in try ns.resolve("/mnt/data/f") }
      expectErrno(.noSuchFileOrDirectory) { () throws(Errno) in try OpenFile(inode: file.inode, flags: 0, mount: mount) }
      #expect(!mount.tryGet())
      #expect(ns.activeMounts.isEmpty)
    }
  }

  @Test func resolveTakesTheLongestMountPointByWholeComponents() throws {
    try withMemory { memory in
      let ns = Namespace()
      let root = ns.mount(TmpFS(memory: memory), at: "/")
      let data = ns.mount(TmpFS(memory: memory), at: "/mnt/data")
      let (m1, r1) = try ns.resolve("/mnt/data/a/../b//c/.")
      #expect(m1 === data && r1 == "/b/c")
      let (m2, r2) = try ns.resolve("/mnt/database")
      #expect(m2 === root && r2 == "/mnt/database")
      let (m3, r3) = try ns.resolve("/mnt/data")
      #expect(m3 === data && r3 == "/")

      // A later mount at the same point hides the earlier one until it goes.
      let over = ns.mount(TmpFS(memory: memory), at: "/mnt/data")
      #expect(try ns.resolve("/mnt/data/x").0 === over)
      try over.umount()
      #expect(try ns.resolve("/mnt/data/x").0 === data)
      // Unmounted, the directory underneath shows again.
      try data.umount()
      #expect(try ns.resolve("/mnt/data/x").0 === root)
      expectErrno(.invalidArgument) { () throws(Errno) in try ns.umount("/nowhere") }
    }
  }

  @Test func namespaceWithoutARootMountHasNothingElsewhere() throws {
    try withMemory { memory in
      let ns = Namespace()
      ns.mount(TmpFS(memory: memory), at: "/a")
      expectErrno(.noSuchFileOrDirectory) { () throws(Errno) in try ns.resolve("/b") }
      #expect(Namespace.normalize("") == "/")
      #expect(Namespace.normalize("../../x/./y/") == "/x/y")
    }
  }
}
