import Faultline
import FaultlineTestSupport
import Testing

// System V shared memory (issue 13, rule 9): shmget, shmat, shmdt, shmctl. Ground truth:
// ipc/shm.c (newseg, shm_more_checks, do_shmat, ksys_shmdt, do_shm_rmid), ipc/util.c
// (ipc_idr_alloc, ipcperms), run on this machine's 6.18 kernel as root by Tests/Probes/sysv_shm.c
// and sysv_shm2.c (outputs beside them; comments quote their lines).

/// The maps line of a System V attachment: offset, device 00:01, the id as inode, and
/// `/SYSV<key> (deleted)` from column 74, as
/// `7ffff7fbf000-7ffff7fc0000 rw-s 00000000 00:01 0                          /SYSV00000000 (deleted)`.
func sysvLine(_ start: UInt64, _ end: UInt64, _ perms: String, id: Int32, key: Int32, offset: UInt64 = 0) -> String {
  var s = "\(hex8(start))-\(hex8(end)) \(perms) \(hex8(offset)) 00:01 \(id)"
  s += String(repeating: " ", count: max(1, 73 - s.utf8.count))
  return s + "/SYSV" + hex8(UInt64(UInt32(bitPattern: key))) + " (deleted)"
}

@Suite struct SysVShmTests {
  /// "id=0", "segsz=56 nattch=0 key=0 mode=600", "at 0x7ffff7fbf000 nattch=1" with its maps
  /// line, "at ro ... nattch=2" `r--s`, "b[0]=5": both attachments share the page. The first
  /// attach lands right below mmap_base (no THP alignment: shmem THP is off).
  @Test func privateSegmentAttachesTwiceAndSharesItsPage() throws {
    try withRig { r throws in
      let id = try r.cpu.shmget(ShmFlags.ipcPrivate, 56, flags: [.create, .exclusive, 0o600])
      #expect(id == 0)
      #expect(try r.cpu.shmStat(id) == ShmidDS(key: 0, size: 56, mode: 0o600, attachments: 0))
      let a = try r.cpu.shmat(id)
      #expect(a == 0x7FFF_F7FF_E000)
      #expect(try r.cpu.shmStat(id).attachments == 1)
      let b = try r.cpu.shmat(id, flags: .readOnly)
      #expect(try r.cpu.shmStat(id).attachments == 2)
      #expect(r.mm.mapsLines() == [sysvLine(b, b + page, "r--s", id: id, key: 0), sysvLine(a, a + page, "rw-s", id: id, key: 0)])
      try r.cpu.storeByte(a, 5)
      #expect(try r.cpu.loadByte(b) == 5)
      #expect(throws: Signal.sigsegv(.accErr, address: b)) { try r.cpu.storeByte(b, 1) }
      // SHM_RDONLY maps a read-only file: mprotect cannot add write.
      expectErrno(.permissionDenied) { () throws(Errno) in try r.cpu.mprotect(b, page, prot: rw) }
      try r.cpu.shmdt(a)
      try r.cpu.shmdt(b)
      try r.cpu.shmctl(id, .remove)
    }
  }

  /// "shmget(IPC_PRIVATE,0,...) = EINVAL", "shmget(0x1234,0,0600) = ENOENT",
  /// "shmget(0x1234,0,IPC_CREAT|0600) = EINVAL", "key id=1", "IPC_CREAT|IPC_EXCL = EEXIST",
  /// a larger size EINVAL, a smaller or zero size the id; -1UL and SHMMAX+ EINVAL; 1 TiB ENOMEM
  /// unless SHM_NORESERVE; SHM_HUGETLB ENOMEM with no huge pages (as root).
  @Test func shmgetErrnosAsTheHostGaveThem() throws {
    try withRig { r throws in
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.shmget(ShmFlags.ipcPrivate, 0, flags: [.create, 0o600]) }
      expectErrno(.noSuchFileOrDirectory) { () throws(Errno) in try r.cpu.shmget(0x1234, 0, flags: 0o600) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.shmget(0x1234, 0, flags: [.create, 0o600]) }
      let k = try r.cpu.shmget(0x1234, 3 * page + 5, flags: [.create, 0o600])
      expectErrno(.fileExists) { () throws(Errno) in try r.cpu.shmget(0x1234, 3 * page + 5, flags: [.create, .exclusive, 0o600]) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.shmget(0x1234, 3 * page + 6, flags: 0o600) }
      #expect(try r.cpu.shmget(0x1234, 100, flags: 0o600) == k)
      #expect(try r.cpu.shmget(0x1234, 0, flags: 0o600) == k)
      #expect(try r.cpu.shmget(0x1234, 0, flags: [.create, 0o600]) == k)
      expectErrno(.noSuchFileOrDirectory) { () throws(Errno) in try r.cpu.shmget(0x5555, page, flags: [.exclusive, 0o600]) }
      for huge in [UInt64.max, UInt64.max - (1 << 25)] {
        expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.shmget(ShmFlags.ipcPrivate, huge, flags: [.create, 0o600]) }
      }
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.shmget(ShmFlags.ipcPrivate, 1 << 40, flags: [.create, 0o600]) }
      let big = try r.cpu.shmget(ShmFlags.ipcPrivate, 1 << 40, flags: [.create, .noReserve, 0o600])
      // Recorded as root: ENOMEM with no huge pages. The engine's caller is unprivileged:
      // EPERM, as "nobody SHM_HUGETLB" in sysv_shm_review.txt (SysVShmReviewTests).
      expectErrno(.notPermitted) { () throws(Errno) in try r.cpu.shmget(ShmFlags.ipcPrivate, page, flags: [.create, .hugeTLB, 0o600]) }
      // "IPC_STAT|0x100 = EINVAL": no IPC_64 on x86-64; unknown ids EINVAL.
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.shmctl(k, ShmctlCommand(rawValue: 0x102)) }
      for bad: Int32 in [-1, k + 5, k + 32768] {
        expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.shmStat(bad) }
      }
      try r.cpu.shmctl(k, .remove)
      try r.cpu.shmctl(big, .remove)
      #expect(r.machine.shm.ids.isEmpty)
    }
  }

  /// "shmat(99999999) = EINVAL", "shmat(-1) = EINVAL", "0x10001 = EINVAL", "0x10001,SHM_RND =
  /// 0x10000", "shmat(k,c,0) = EINVAL" (in use), "SHM_REMAP" replaces, "shmat(k,0,SHM_REMAP) =
  /// EINVAL", beyond TASK_SIZE ENOMEM, "SHM_EXEC" `rwxs`; a segment of 3 pages + 5 bytes maps 4.
  @Test func shmatAddressRulesAsTheHostGaveThem() throws {
    try withRig { r throws in
      let k = try r.cpu.shmget(0x1234, 3 * page + 5, flags: [.create, 0o600])
      let c = try r.cpu.shmat(k)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.shmat(99_999_999) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.shmat(-1) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.shmat(k, 0x10001) }
      #expect(try r.cpu.shmat(k, 0x10001, flags: .round) == 0x10000)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.shmat(k, c) }
      #expect(try r.cpu.shmat(k, c, flags: .remap) == c)
      #expect(try r.cpu.shmat(k, 0x20000, flags: .remap) == 0x20000)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.shmat(k, 0, flags: .remap) }
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.shmat(k, 0x7FFF_FFFF_F000) }
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.shmat(k, 0x8000_0000_0000) }
      // SHM_EXEC needs the mode's x bit unless privileged (the probe ran as root; as an
      // unprivileged user "0600 exec: Permission denied", "0700 exec: ok").
      expectErrno(.permissionDenied) { () throws(Errno) in try r.cpu.shmat(k, 0x30000, flags: .exec) }
      let x = try r.cpu.shmget(0x4321, 3 * page + 5, flags: [.create, 0o700])
      #expect(try r.cpu.shmat(x, 0x30000, flags: .exec) == 0x30000)
      #expect(
        r.mm.mapsLines() == [
          sysvLine(0x10000, 0x14000, "rw-s", id: k, key: 0x1234), sysvLine(0x20000, 0x24000, "rw-s", id: k, key: 0x1234),
          sysvLine(0x30000, 0x34000, "rwxs", id: x, key: 0x4321), sysvLine(c, c + 4 * page, "rw-s", id: k, key: 0x1234),
        ])
      #expect(try r.cpu.shmStat(k).attachments == 3)
      // 3 pages + 5 bytes: the fourth page is the object's too.
      try r.cpu.storeByte(c + 3 * page + 100, 1)
      try r.cpu.shmctl(k, .remove)
      try r.cpu.shmctl(x, .remove)
    }
  }

  /// "after split nattch=7" (nattch counts VMAs), "shmdt(c+ps) = EINVAL", "shmdt(c+1) = EINVAL",
  /// "shmdt(c) = 0" detaching all three pieces ("after dt nattch=4"); after munmap of the first
  /// page, "shmdt(ya) = 0" still finds the rest (pgoff 1 at ya + 1 page), "shmdt(ya+ps) = EINVAL".
  @Test func shmdtDetachesEveryPieceOfTheAttachment() throws {
    try withRig { r throws in
      let k = try r.cpu.shmget(0x1234, 3 * page + 5, flags: [.create, 0o600])
      let c = try r.cpu.shmat(k)
      let other = try r.cpu.shmat(k, 0x10000)
      try r.cpu.mprotect(c + page, page, prot: .read)
      #expect(try r.cpu.shmStat(k).attachments == 4)
      #expect(
        mapsLines(r, in: c, c + 4 * page) == [
          sysvLine(c, c + page, "rw-s", id: k, key: 0x1234),
          sysvLine(c + page, c + 2 * page, "r--s", id: k, key: 0x1234, offset: page),
          sysvLine(c + 2 * page, c + 4 * page, "rw-s", id: k, key: 0x1234, offset: 2 * page),
        ])
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.shmdt(c + page) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.shmdt(c + 1) }
      try r.cpu.shmdt(c)
      #expect(try r.cpu.shmStat(k).attachments == 1)
      #expect(mapsLines(r, in: c, c + 4 * page).isEmpty)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.shmdt(0x7FFF_0000) }
      try r.cpu.shmdt(other)
      let y = try r.cpu.shmget(ShmFlags.ipcPrivate, 2 * page, flags: [.create, 0o600])
      let ya = try r.cpu.shmat(y)
      try r.cpu.munmap(ya, page)
      #expect(try r.cpu.shmStat(y).attachments == 1)
      try r.cpu.shmdt(ya)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.shmdt(ya + page) }
      #expect(try r.cpu.shmStat(y).attachments == 0)
      // "mremap ... nat=1": a moved, grown attachment is still one, and shmdt finds it.
      let yb = try r.cpu.shmat(y)
      let yc = try r.cpu.mremap(yb, 2 * page, 4 * page, flags: .mayMove)
      #expect(try r.cpu.shmStat(y).attachments == 1)
      try r.cpu.shmdt(yc)
      #expect(try r.cpu.shmStat(y).attachments == 0)
      try r.cpu.shmctl(y, .remove)
      try r.cpu.shmctl(k, .remove)
    }
  }

  /// "after rmid nat=4", "key=0 mode=1600", maps lines keep `/SYSV00001234`; "shmat(k,0,0)"
  /// after IPC_RMID still attaches, the key is gone ("shmget(0x1234,0,0600) = ENOENT"); "child
  /// nat=10": a fork child's attachments count too; after the last detach the id is EINVAL.
  @Test func removedSegmentLivesUntilItsLastDetach() throws {
    try withRig { r throws in
      let k = try r.cpu.shmget(0x1234, page, flags: [.create, 0o600])
      let a = try r.cpu.shmat(k)
      try r.cpu.storeByte(a, 4)
      try r.cpu.shmctl(k, .remove)
      #expect(try r.cpu.shmStat(k) == ShmidDS(key: 0, size: page, mode: 0o1600, attachments: 1))
      #expect(r.mm.mapsLines() == [sysvLine(a, a + page, "rw-s", id: k, key: 0x1234)])
      let b = try r.cpu.shmat(k)
      #expect(try r.cpu.loadByte(b) == 4)
      expectErrno(.noSuchFileOrDirectory) { () throws(Errno) in try r.cpu.shmget(0x1234, 0, flags: 0o600) }
      try r.cpu.shmctl(k, .remove)
      let child = try r.cpu.fork()
      #expect(try r.cpu.shmStat(k).attachments == 4)
      child.destroy()
      #expect(try r.cpu.shmStat(k).attachments == 2)
      try r.cpu.shmdt(a)
      try r.cpu.shmdt(b)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.shmStat(k) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.shmat(k) }
      #expect(r.machine.shm.ids.isEmpty)
    }
  }

  /// Ids are `seq << 15 | index`: indexes go round (0, 1, 2 even after 0 is freed), and the
  /// sequence moves on when the index wraps.
  @Test func idsAreAllocatedCyclically() throws {
    try withRig { r throws in
      let a = try r.cpu.shmget(ShmFlags.ipcPrivate, page, flags: [.create, 0o600])
      try r.cpu.shmctl(a, .remove)
      let b = try r.cpu.shmget(ShmFlags.ipcPrivate, page, flags: [.create, 0o600])
      #expect([a, b] == [0, 1])
      try r.cpu.shmctl(b, .remove)
    }
  }

  /// The namespace belongs to the machine: a segment made in one address space attaches in
  /// another, and a store in one is seen in the other.
  @Test func segmentsAreSharedByEveryAddressSpaceOfAMachine() throws {
    try withRig { r throws in
      let id = try r.cpu.shmget(0x77, page, flags: [.create, 0o600])
      let other = try AddressSpace(machine: r.machine, config: AddressSpaceConfig(profile: .reference))
      defer { other.destroy() }
      let c = try CPU(mm: other)
      #expect(try c.shmget(0x77, 0, flags: 0o600) == id)
      let x = try c.shmat(id)
      let y = try r.cpu.shmat(id)
      try c.storeByte(x, 9)
      #expect(try r.cpu.loadByte(y) == 9)
      #expect(try r.cpu.shmStat(id).attachments == 2)
      try c.shmdt(x)
      try r.cpu.shmdt(y)
      try r.cpu.shmctl(id, .remove)
    }
  }

  /// Tests/Probes/sysv_shm_access.c, unprivileged: "rw attach: Permission denied", "ro attach:
  /// ok", "ro exec: Permission denied" for a 0400 segment.
  @Test func modeBitsDecideTheAttach() throws {
    try withRig { r throws in
      let z = try r.cpu.shmget(ShmFlags.ipcPrivate, page, flags: [.create, 0o400])
      expectErrno(.permissionDenied) { () throws(Errno) in try r.cpu.shmat(z) }
      let a = try r.cpu.shmat(z, flags: .readOnly)
      expectErrno(.permissionDenied) { () throws(Errno) in try r.cpu.shmat(z, flags: [.readOnly, .exec]) }
      try r.cpu.shmdt(a)
      try r.cpu.shmctl(z, .remove)
    }
  }
}

/// VMAs of a segment and the merge rules (Tests/Probes/sysv_shm_merge.c, sysv_shm_merge2.c): a
/// merge never removes a VMA with a close hook, so changing a whole VMA back leaves it apart;
/// changing part of one moves that part into its neighbour. mremap with `MREMAP_FIXED` and equal
/// sizes moves a segment's VMA only alone (sysv_shm_mremap.c; conform found it).
@Suite struct SysVShmVMATests {
  @Test func wholeVMAChangesNeverMergeButPartialOnesDo() throws {
    try withRig { r throws in
      let id = try r.cpu.shmget(ShmFlags.ipcPrivate, 4 * page, flags: [.create, 0o600])
      let a = try r.cpu.shmat(id)
      func line(_ s: UInt64, _ e: UInt64, _ perms: String) -> String { sysvLine(s, e, perms, id: id, key: 0, offset: s - a) }
      try r.cpu.mprotect(a + page, page, prot: .read)
      try r.cpu.mprotect(a + page, page, prot: rw)
      // "after mprotect(a+1p, 1p, RW) (whole middle VMA)": three VMAs stay.
      #expect(r.mm.mapsLines() == [line(a, a + page, "rw-s"), line(a + page, a + 2 * page, "rw-s"), line(a + 2 * page, a + 4 * page, "rw-s")])
      try r.cpu.shmdt(a)
      let b = try r.cpu.shmat(id)
      try r.cpu.mprotect(b, page, prot: .read)
      try r.cpu.mprotect(b + page, page, prot: .read)
      // "after mprotect(a+1p, 1p, R) (part of the second VMA)".
      #expect(
        r.mm.mapsLines() == [
          sysvLine(b, b + 2 * page, "r--s", id: id, key: 0), sysvLine(b + 2 * page, b + 4 * page, "rw-s", id: id, key: 0, offset: 2 * page),
        ])
      try r.cpu.shmdt(b)
      try r.cpu.shmctl(id, .remove)
    }
  }

  /// "two VMAs and a hole: Bad address", "one VMA and a hole: Bad address", "one whole VMA:
  /// moved".
  @Test func mremapMovesASegmentsVMAOnlyAlone() throws {
    try withRig { r throws in
      let id = try r.cpu.shmget(ShmFlags.ipcPrivate, 4 * page, flags: [.create, 0o600])
      let b = try r.cpu.shmat(id)
      try r.cpu.mprotect(b, page, prot: .read)
      let to = b - 64 * page
      expectErrno(.badAddress) { () throws(Errno) in try r.cpu.mremap(b, 8 * page, 8 * page, flags: [.mayMove, .fixed], newAddress: to) }
      expectErrno(.badAddress) { () throws(Errno) in try r.cpu.mremap(b + page, 4 * page, 4 * page, flags: [.mayMove, .fixed], newAddress: to) }
      #expect(try r.cpu.mremap(b + page, 3 * page, 3 * page, flags: [.mayMove, .fixed], newAddress: to) == to)
      try r.cpu.shmdt(b)
      // The moved VMA maps offset 1 page: shmdt finds it from one page below (ksys_shmdt).
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.shmdt(to) }
      try r.cpu.shmdt(to - page)
      #expect(try r.cpu.shmStat(id).attachments == 0)
      try r.cpu.shmctl(id, .remove)
    }
  }

  /// Found by `faultline conform` (issue 13), confirmed on the host: each attach has its own
  /// `struct file`, so the first two pages of attach `a`, moved next to the last two pages of
  /// attach `b` (offsets 0-2 before 2-4 of the segment), stay apart: host maps
  /// `…2a000-…2c000 rw-s 00000000` and `…2c000-…2e000 rw-s 00002000`.
  @Test func vmasOfTwoAttachesNeverMerge() throws {
    try withRig { r throws in
      let id = try r.cpu.shmget(ShmFlags.ipcPrivate, 4 * page, flags: [.create, 0o600])
      let a = try r.cpu.shmat(id)
      let b = try r.cpu.shmat(id)
      #expect(try r.cpu.mremap(a, 2 * page, 2 * page, flags: [.mayMove, .fixed], newAddress: b) == b)
      #expect(r.mm.mapsLines() == [
        sysvLine(b, b + 2 * page, "rw-s", id: id, key: 0), sysvLine(b + 2 * page, b + 4 * page, "rw-s", id: id, key: 0, offset: 2 * page),
        sysvLine(a + 2 * page, a + 4 * page, "rw-s", id: id, key: 0, offset: 2 * page),
      ])
      // shmdt(b) finds attach a's piece at b first and unmaps only that attach's VMAs within the
      // segment's size; attach b's piece at b+2p then matches shmdt(b) again.
      try r.cpu.shmdt(b)
      #expect(r.mm.mapsLines() == [
        sysvLine(b + 2 * page, b + 4 * page, "rw-s", id: id, key: 0, offset: 2 * page),
        sysvLine(a + 2 * page, a + 4 * page, "rw-s", id: id, key: 0, offset: 2 * page),
      ])
      try r.cpu.shmdt(b)
      try r.cpu.shmdt(a)
      #expect(r.mm.mapsLines() == [])
      #expect(try r.cpu.shmStat(id).attachments == 0)
      try r.cpu.shmctl(id, .remove)
    }
  }
}
