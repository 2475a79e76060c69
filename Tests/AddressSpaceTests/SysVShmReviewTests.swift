import Faultline
import FaultlineTestSupport
import Testing

// System V shared memory as the issue 13 review found it wrong. Ground truth:
// Tests/Probes/sysv_shm_review.c, run on this machine's 6.18 kernel as root under `unshare -i`
// (a fresh IPC namespace), its child as nobody (output in sysv_shm_review.txt; comments quote it).

@Suite struct SysVShmReviewTests {
  /// "shmget(IPC_CREAT|0x80000000|0600) = 0", "mode=600": a negative shmflg makes a segment;
  /// the unknown bits are ignored.
  @Test func negativeShmflgMakesASegment() throws {
    try withRig { r throws in
      let flags = ShmFlags(rawValue: Int32(bitPattern: 0x8000_0000 | 0o1600))
      let id = try r.cpu.shmget(ShmFlags.ipcPrivate, page, flags: flags)
      #expect(try r.cpu.shmStat(id) == ShmidDS(key: 0, size: page, mode: 0o600, attachments: 0))
      // The lookup of an existing key asks the same bits of the owner's.
      let k = try r.cpu.shmget(0x42, page, flags: flags)
      #expect(try r.cpu.shmget(0x42, page, flags: ShmFlags(rawValue: Int32(bitPattern: 0x8000_0000 | 0o600))) == k)
      try r.cpu.shmctl(id, .remove)
      try r.cpu.shmctl(k, .remove)
    }
  }
}
