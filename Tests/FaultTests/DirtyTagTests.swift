import Faultline
import FaultlineTestSupport
import Glibc
import Testing

/// The page cache's dirty flag against its dirty tag (review of issue 15's lockless page cache):
/// `markDirty` skips the tag when the frame's dirty flag is already set, so a flag set without
/// the tag must not make a later write invisible to writeback.
@Suite struct DirtyTagTests {
  static let page: UInt64 = 4096

  /// A zap of a dirty PTE after writeback cleaned the page but before `mkclean` reached that
  /// PTE marks the frame dirty (`zap_pte_range`'s `folio_mark_dirty`) under the PTL, where the
  /// page-cache lock cannot be taken, so no tag goes with it. A `write` to the page afterwards
  /// must still reach the file at `fsync`.
  @Test(arguments: [Advice.dontNeed, Advice.pageOut])
  func aWriteAfterAZapThatRacedWritebackIsWrittenBack(_ advice: Advice) throws {
    try withFileRig(.hostfs) { r, env in
      let fd = try env.create("f", pages: 1)
      let inode = try r.mm.files.getRaw(fd).inode
      let a = try r.cpu.mmap(0, Self.page, prot: Prot.read | Prot.write, flags: MapFlags.shared, fd: fd)
      try r.cpu.storeBytes(a + 10, Array("mapped".utf8))
      #expect(inode.pageCache.isDirty(0))

      // Writeback takes the page (clearing its dirty state); the zap runs before its mkclean.
      _ = try inode.pageCache.writeback(
        from: 0, to: 1,
        mkclean: { _, _ in try? r.cpu.madvise(a, Self.page, advice: advice) })
      #expect(env.hostBytes("f", at: 10, count: 6) == Array("mapped".utf8))

      let bytes = Array("written".utf8)
      _ = try bytes.withUnsafeBytes { (p) throws(Errno) in try r.mm.files.pwrite(fd, p, at: 100) }
      #expect(inode.pageCache.isDirty(0), "the write left the page untagged")
      try r.mm.files.fsync(fd)
      #expect(env.hostBytes("f", at: 100, count: bytes.count) == bytes, "fsync lost the write")

      try r.cpu.munmap(a, Self.page)
      try r.cpu.close(fd)
      try env.umount()
    }
  }
}
