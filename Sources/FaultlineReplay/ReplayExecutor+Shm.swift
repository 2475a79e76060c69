import Faultline

/// System V shared memory in a replay: `shmget`, `shmat`, `shmdt` and `shmctl` run on the
/// machine's segments, with the ids the log recorded mapped to the engine's (a kernel's ids
/// depend on every segment it ever made, so they are compared as success or failure only).
extension ReplayExecutor {
  func executeShm(_ op: Operation, _ entry: ScriptEntry, in p: ReplayProcess, cpu: CPU) {
    switch op {
    case .shmget(let key, let size, let flags):
      let got = outcome { () throws(Errno) in
        UInt64(UInt32(bitPattern: try cpu.shmget(key, size, flags: ShmFlags(rawValue: flags))))
      }
      if case .value(let engineID) = got, case .value(let n) = entry.call.result {
        shmIDs[Int32(truncatingIfNeeded: n.bits)] = Int32(truncatingIfNeeded: engineID)
        recordAsRecorded(entry)
      } else {
        record(entry, got: got)
      }
    case .shmat(let id, let addr, let flags):
      guard let engineID = shmID(id, entry) else { return }
      let got = outcome { () throws(Errno) in try cpu.shmat(engineID, addr, flags: ShmatFlags(rawValue: flags)) }
      if case .value(let a) = got, let size = machine.shm.segmentSize(engineID), let r = range(a, size) {
        p.touched.insert(r)
        p.foreign.remove(r)
      }
      record(entry, got: got)
    case .shmdt(let addr):
      record(entry, got: outcome { () throws(Errno) in try cpu.shmdt(addr) })
    case .shmctl(let id, let cmd, let segsz, let nattch):
      guard let engineID = shmID(id, entry) else { return }
      let command = ShmctlCommand(rawValue: cmd)
      if command == .stat, case .value = entry.call.result {
        let got = outcome { () throws(Errno) in
          let ds = try cpu.shmStat(engineID)
          if let segsz, segsz != ds.size { return ds.size | 1 << 63 }
          if let nattch, nattch != UInt64(ds.attachments) { return UInt64(ds.attachments) | 1 << 62 }
          return 0
        }
        switch got {
        case .value(let v) where v & 1 << 63 != 0:
          report.executed += 1
          mismatch(entry, expected: "shm_segsz=\(segsz ?? 0)", got: "shm_segsz=\(v & ~(1 << 63))")
        case .value(let v) where v & 1 << 62 != 0:
          report.executed += 1
          mismatch(entry, expected: "shm_nattch=\(nattch ?? 0)", got: "shm_nattch=\(v & ~(1 << 62))")
        default:
          record(entry, got: got)
        }
        return
      }
      let got = outcome { () throws(Errno) in UInt64(UInt32(bitPattern: try cpu.shmctl(engineID, command))) }
      // IPC_INFO, SHM_INFO and SHM_STAT return indexes and ids of the recording kernel.
      if case .value = got, case .value = entry.call.result, command != .remove, command != .set,
        command != .lock, command != .unlock
      {
        recordAsRecorded(entry)
      } else {
        record(entry, got: got)
      }
    default:
      break
    }
  }

  /// The engine's id for a recorded one. An id the log never got from `shmget` belongs to a
  /// segment made outside it: the call is skipped, unless the kernel refused it with `EINVAL`,
  /// which the engine answers alike for an id it never gave (-1).
  private func shmID(_ id: Int32, _ entry: ScriptEntry) -> Int32? {
    if let e = shmIDs[id] { return e }
    if recordedErrno(entry, is: .invalidArgument) { return -1 }
    report.skip("\(entry.call.name): segment id the log never created")
    log(entry, "skipped (segment from outside the log)")
    return nil
  }

  /// Counts a call that succeeded as recorded, whose value is the recording kernel's own.
  private func recordAsRecorded(_ entry: ScriptEntry) {
    report.executed += 1
    report.matched += 1
    log(entry, "ok")
  }
}
