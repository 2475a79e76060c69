import Faultline
import FaultlineTestSupport
import Synchronization
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

/// Ids, permissions of `IPC_STAT` and `SHM_HUGETLB` (issue 13 review, F3 to F5).
@Suite struct SysVShmIdAndPermissionTests {
  /// sysv_shm_cycle.c: "first 0", then 66 segments made and removed in turn get "1 2 … 63 32768
  /// 32769 32770" (the cycle is 64 indexes while few are in use); with 50 kept ("kept
  /// 32771..32820"), the cycle is 75: "32821 … 32842 65536 65537 65538 65589 …".
  @Test func idsCycleOverTheIndexesInUseTimesOneAndAHalf() throws {
    try withRig { r throws in
      func makeAndRemove() throws -> Int32 {
        let id = try r.cpu.shmget(ShmFlags.ipcPrivate, page, flags: [.create, 0o600])
        try r.cpu.shmctl(id, .remove)
        return id
      }
      var ids: [Int32] = []
      for _ in 0..<67 { ids.append(try makeAndRemove()) }
      #expect(ids == Array(0...63) + [32768, 32769, 32770])
      var kept: [Int32] = []
      for _ in 0..<50 { kept.append(try r.cpu.shmget(ShmFlags.ipcPrivate, page, flags: [.create, 0o600])) }
      #expect(kept.first == 32771 && kept.last == 32820)
      ids = []
      for _ in 0..<30 { ids.append(try makeAndRemove()) }
      #expect(ids == Array(32821...32842) + [65536, 65537, 65538] + Array(65589...65593))
      for id in kept { try r.cpu.shmctl(id, .remove) }
    }
  }

  /// sysv_shm_review.c as nobody: "IPC_STAT own 0000 = EACCES", "IPC_STAT own 0200 = EACCES",
  /// "SHM_STAT own 0000 = EACCES", "SHM_STAT_ANY own 0000" the id.
  @Test func statNeedsReadPermissionButStatAnyDoesNot() throws {
    try withRig { r throws in
      let z = try r.cpu.shmget(ShmFlags.ipcPrivate, page, flags: [.create])
      let w = try r.cpu.shmget(ShmFlags.ipcPrivate, page, flags: [.create, 0o200])
      expectErrno(.permissionDenied) { () throws(Errno) in try r.cpu.shmStat(z) }
      expectErrno(.permissionDenied) { () throws(Errno) in try r.cpu.shmStat(w) }
      expectErrno(.permissionDenied) { () throws(Errno) in try r.cpu.shmctl(z & 0x7fff, .shmStat) }
      #expect(try r.cpu.shmctl(z & 0x7fff, .shmStatAny) == z)
      #expect(r.machine.shm.segmentSize(z) == page)
      try r.cpu.shmctl(z, .remove)
      try r.cpu.shmctl(w, .remove)
    }
  }

  /// sysv_shm_review.c: "nobody SHM_HUGETLB = EPERM", with SHM_NORESERVE too; "root
  /// SHM_HUGETLB = ENOMEM" with no huge pages. A size the machine has no pages of is EINVAL
  /// first (hstate_sizelog).
  @Test func hugetlbSegmentsNeedCapIPCLock() throws {
    try withRig { r throws in
      for flags: ShmFlags in [[.create, .hugeTLB, 0o600], [.create, .hugeTLB, .noReserve, 0o600]] {
        expectErrno(.notPermitted) { () throws(Errno) in try r.cpu.shmget(ShmFlags.ipcPrivate, 2 << 20, flags: flags) }
      }
      let oddSize = ShmFlags(rawValue: 25 << MapFlags.hugeShift).union([.create, .hugeTLB, 0o600])
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.shmget(ShmFlags.ipcPrivate, 2 << 20, flags: oddSize) }
    }
    var root = AddressSpaceConfig(profile: .reference)
    root.capIPCLock = true
    try withRig(config: root) { r throws in
      expectErrno(.noMemory) { () throws(Errno) in
        try r.cpu.shmget(ShmFlags.ipcPrivate, 2 << 20, flags: [.create, .hugeTLB, 0o600])
      }
    }
  }
}

/// `shmat` racing `IPC_RMID` (issue 13 review, F7): `do_shmat` raises `shm_nattch` under the
/// namespace lock before it maps, so a removal meanwhile leaves the segment (marked
/// `SHM_DEST`) for the attach; it goes with the attach's detach. An attach that starts after
/// the removal is `EINVAL`.
@Suite struct SysVShmAttachRaceTests {
  final class Outcome: @unchecked Sendable {
    let go = Atomic<Int>(0)
    var address: UInt64?
    var error: Errno?
  }

  @Test func anAttachRacingRemovalKeepsTheSegmentUntilItsDetach() throws {
    try withRig { r throws in
      for _ in 0..<300 {
        let id = try r.cpu.shmget(ShmFlags.ipcPrivate, page, flags: [.create, 0o600])
        let o = Outcome()
        let mm: AddressSpace = r.mm
        runThreads(2) { t in
          o.go.add(1, ordering: .acquiringAndReleasing)
          while o.go.load(ordering: .acquiring) < 2 {}
          let cpu = try! CPU(mm: mm)
          if t == 0 {
            do throws(Errno) { o.address = try cpu.shmat(id) } catch { o.error = error }
          } else {
            _ = try? cpu.shmctl(id, .remove)
          }
        }
        if let a = o.address {
          // Attached: the removed segment is still there, counting this attach.
          let ds = try r.cpu.shmStat(id)
          #expect(ds.attachments == 1 && ds.mode & ShmNamespace.destMode != 0 && ds.key == 0)
          #expect(r.machine.shm.ids.contains(id))
          try r.cpu.shmdt(a)
        } else {
          #expect(o.error == .invalidArgument)
        }
        #expect(!r.machine.shm.ids.contains(id))
        if !r.machine.shm.ids.isEmpty { break }
      }
    }
  }
}
