import Faultline
import FaultlineTestSupport
import Glibc
import Synchronization
import Testing

/// Writes `bytes` to the host file `path` (created, truncated) with plain Glibc calls, so that
/// nothing of it is in any Faultline page cache.
func writeHostFile(_ path: String, _ bytes: [UInt8]) -> Bool {
  let h = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
  guard h >= 0 else { return false }
  defer { Glibc.close(h) }
  return bytes.withUnsafeBytes { pwrite(h, $0.baseAddress, $0.count, 0) } == bytes.count
}

/// A read fault on a file page that is not in the page cache yet (so the fault must fill it from
/// the host file), paused at `.insideFileFault` — before the page-cache read — while another
/// thread munmaps the range, closes the fd and tries `umount`.
///
/// Three threads, as in `MunmapOrderingTests`:
/// - A faults with `cpu.faultIn(target, write: false)`; the hook pauses it once at
///   `.insideFileFault`.
/// - B waits for "paused", munmaps the whole mapping, records whether A was still paused when
///   `munmap` returned, closes the fd and tries `umount("/mnt")`, recording the answer.
/// - The controller releases A: in the overtaking designs once B has finished (up to 10 s);
///   in the blocking ones after a 50 ms observation that B's `munmap` has not returned (an
///   ordering check, not a timing claim).
///
/// Observed table (what the assertions pin):
///
/// | design        | fput        | munmap     | fill after unmap | atime after unmap | umount in flight  | fault  |
/// |---------------|-------------|------------|------------------|-------------------|-------------------|--------|
/// | .speculative  | .deferred   | overtakes  | 1                | 1                 | EBUSY (inflight)  | MAPERR |
/// | .speculative  | .synchronous| overtakes  | 1                | 1                 | EBUSY (inflight)  | MAPERR |
/// | .sequenced    | both        | waits      | 0                | 0                 | — (after A)       | ok     |
/// | .mmapLock     | both        | waits      | 0                | 0                 | — (after A)       | ok     |
/// | .perVMALock   | both        | waits      | 0                | 0                 | — (after A)       | ok     |
///
/// In the blocking designs B's `umount` runs after A's fault is done and succeeds at once in both
/// fput modes: only SPF keeps VMA references past `munmap`, so only there does `.deferred` keep
/// the file until the VMA's last reference (`drainDeferredFrees`).
@Suite struct FileFaultRaceTests {
  final class Shared: Sendable {
    let paused = Atomic<Bool>(false)
    let release = Atomic<Bool>(false)
    let armed = Atomic<Bool>(true)
    let bMunmapReturned = Atomic<Bool>(false)
    /// 1 when B's munmap returned while A was still paused, 0 otherwise, -1 when never set.
    let munmapReturnedWhileAPaused = Atomic<Int>(-1)
    let bDone = Atomic<Bool>(false)
    let munmapFailed = Atomic<Bool>(false)
    let closeFailed = Atomic<Bool>(false)
    /// B's umount: 0 success, else the errno; -1 when not tried.
    let bUmount = Atomic<Int32>(-1)
    /// Whether A was still paused when B's umount answered.
    let bUmountWhileAPaused = Atomic<Bool>(false)
    let timeouts = Atomic<Int>(0)
    let aborts = Atomic<Int>(0)
    let insideFileFaultCalls = Atomic<Int>(0)
    let outcome = Locked<FaultOutcome?>(nil)
  }

  struct Case: CustomStringConvertible, Sendable {
    let design: FaultDesign
    let fput: FputMode
    var description: String { "\(design)/\(fput.rawValue)" }
  }

  static let cases: [Case] = FaultDesign.allCases.flatMap { d in FputMode.allCases.map { Case(design: d, fput: $0) } }

  static let umountCounters: [VMStatItem] = [.filemapFillAfterUnmap, .atimeAfterUnmap, .umountBusyInflight]

  @Test(arguments: cases)
  func readFaultFillingThePageCacheRacesMunmapCloseAndUmount(c: Case) throws {
    let dir = makeHostTempDir("fileraces")
    defer { _ = system("rm -rf '\(dir)'") }
    // Four pages of distinct bytes, written on the host before Faultline opens the file.
    let content = (0..<(4 * Int(page))).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
    #expect(writeHostFile(dir + "/data", content))

    var config = AddressSpaceConfig(profile: .reference)
    config.fputMode = c.fput
    try withRig(config: config, design: c.design) { r in
      let fs = try HostFS(root: dir, machine: r.machine)
      r.machine.mount(fs, at: "/mnt")
      let fd = try r.cpu.open("/mnt/data", flags: OpenFlags.readOnly)
      let file = try r.mm.files.getRaw(fd)
      let inode = file.inode
      let a = try r.cpu.mmap(testBase, 4 * page, prot: Prot.read, flags: MapFlags.private | MapFlags.fixed, fd: fd)
      // Page 0 through the locked path (the speculative designs abort `spf_pte_alloc` on this
      // first fault): it allocates the page-table levels, so that the fault on page 1 can run
      // speculatively. Fault-around maps only cached pages, so page 1 stays out of the cache.
      #expect(try r.cpu.loadByte(a + 5) == content[5])
      let target = a + page
      #expect(inode.pageCache.find(1) == nil, "page 1 must not be cached before the race")
      #expect(r.mm.pageTable.pte(at: target).isNone)
      // Relatime would update atime on the next read: it is older than a day.
      inode.atimeNanoseconds = 0

      let fillsBefore = inode.pageCache.fills
      let before = Self.umountCounters.map { r.machine.vmstat[$0] }
      let mm = r.mm!
      let machine = r.machine
      let s = Shared()
      let overtakes = c.design == .speculative || c.design == .sequenced
      mm.faultHook = { point, addr in
        if case .aborted = point { s.aborts.add(1, ordering: .relaxed) }
        guard point == .insideFileFault, addr == target else { return }
        s.insideFileFaultCalls.add(1, ordering: .relaxed)
        guard s.armed.exchange(false, ordering: .acquiringAndReleasing) else { return }
        s.paused.store(true, ordering: .releasing)
        if !boundedWait({ s.release.load(ordering: .acquiring) }) { s.timeouts.add(1, ordering: .relaxed) }
      }
      runThreads(3) { t in
        switch t {
        case 0:  // A: the fault.
          let cpu = try! CPU(mm: mm)
          let o = cpu.faultIn(target, write: false)
          s.outcome.withLock { $0 = o }
        case 1:  // B: munmap, close, umount.
          defer { s.bDone.store(true, ordering: .releasing) }
          guard boundedWait({ s.paused.load(ordering: .acquiring) }) else {
            s.timeouts.add(1, ordering: .relaxed)
            return
          }
          do { try mm.munmap(a, 4 * page) } catch { s.munmapFailed.store(true, ordering: .relaxed) }
          s.munmapReturnedWhileAPaused.store(s.release.load(ordering: .acquiring) ? 0 : 1, ordering: .relaxed)
          s.bMunmapReturned.store(true, ordering: .releasing)
          do { try mm.files.close(fd) } catch { s.closeFailed.store(true, ordering: .relaxed) }
          do throws(Errno) {
            try machine.umount("/mnt")
            s.bUmount.store(0, ordering: .relaxed)
          } catch {
            s.bUmount.store(error.rawValue, ordering: .relaxed)
          }
          s.bUmountWhileAPaused.store(!s.release.load(ordering: .acquiring), ordering: .relaxed)
        default:  // The controller.
          if !boundedWait({ s.paused.load(ordering: .acquiring) }) { s.timeouts.add(1, ordering: .relaxed) }
          if overtakes {
            if !boundedWait({ s.bDone.load(ordering: .acquiring) }) { s.timeouts.add(1, ordering: .relaxed) }
          } else {
            usleep(50_000)
          }
          s.release.store(true, ordering: .releasing)
        }
      }
      mm.faultHook = nil

      let d = zip(Self.umountCounters, before).map { r.machine.vmstat[$0] &- $1 }
      let (fillAfter, atimeAfter, busyInflight) = (d[0], d[1], d[2])
      let outcome = s.outcome.withLock { $0 }
      #expect(s.timeouts.load(ordering: .relaxed) == 0)
      #expect(s.munmapFailed.load(ordering: .relaxed) == false)
      #expect(s.closeFailed.load(ordering: .relaxed) == false)
      #expect(s.insideFileFaultCalls.load(ordering: .relaxed) == 1)
      // The page was read from the host exactly once, and atime moved, except under Lespinasse's
      // design, whose fault reads nothing once munmap overtook it.
      #expect(inode.pageCache.fills - fillsBefore == (c.design == .sequenced ? 0 : 1))
      #expect((inode.atimeNanoseconds != 0) == (c.design != .sequenced))
      let bUmount = s.bUmount.load(ordering: .relaxed)

      switch c.design {
      case .speculative:
        // A holds only a VMA reference (and, with synchronous fput, its own file reference):
        // munmap overtakes it.
        #expect(s.munmapReturnedWhileAPaused.load(ordering: .relaxed) == 1, "munmap did not overtake the fault")
        // Both fput modes keep the file alive for the paused fault: `.deferred` through the
        // detached VMA (released with its last reference), `.synchronous` through the fault's
        // own `get_file_rcu` reference taken at lookup. So the fill still reads the host file
        // after munmap and relatime still moves atime: both side effects are counted. The
        // synchronous mode does not avoid them; it only changes who holds the file.
        #expect(fillAfter == 1, "filemap_fill_after_unmap")
        #expect(atimeAfter == 1, "atime_after_unmap")
        // umount while A is paused: EBUSY, and only in-flight users hold the mount.
        #expect(s.bUmountWhileAPaused.load(ordering: .relaxed) == true)
        #expect(bUmount == Errno.resourceBusy.rawValue)
        #expect(busyInflight == 1, "umount_busy_inflight")
        // pteMapLock sees the VMA detached; the mmap_lock retry finds no VMA.
        #expect(outcome == .signal(.sigsegv(.mapErr, address: target)))
        #expect(s.aborts.load(ordering: .relaxed) == 1)
      case .sequenced:
        // A holds nothing: munmap, close and umount all overtake it. Its file section begins
        // with the sequence check, which fails, so it aborts before it looks the page up: no
        // fill, no atime, no file reference (umount succeeds while A is paused, in both fput
        // modes). The mmap_lock retry finds no VMA.
        #expect(s.munmapReturnedWhileAPaused.load(ordering: .relaxed) == 1, "munmap did not overtake the fault")
        #expect(fillAfter == 0)
        #expect(atimeAfter == 0)
        #expect(s.bUmountWhileAPaused.load(ordering: .relaxed) == true)
        #expect(bUmount == 0, "umount while the fault is paused")
        #expect(busyInflight == 0)
        #expect(outcome == .signal(.sigsegv(.mapErr, address: target)))
        #expect(s.aborts.load(ordering: .relaxed) == 1)
      case .mmapLock, .perVMALock:
        // `.perVMALock` holds the VMA's read lock, `.mmapLock` the lock: munmap waits for the
        // paused fault.
        #expect(s.munmapReturnedWhileAPaused.load(ordering: .relaxed) == 0, "munmap returned during a locked fault")
        #expect(fillAfter == 0)
        #expect(atimeAfter == 0)
        #expect(outcome == .ok)
        #expect(s.aborts.load(ordering: .relaxed) == 0)
        #expect(s.bUmountWhileAPaused.load(ordering: .relaxed) == false)
        // fputMode only matters where VMA references outlive the tree (SPF): here the file
        // goes with the VMA, so umount right after close + munmap succeeds in both modes.
        #expect(bUmount == 0, "umount after close + munmap")
        #expect(busyInflight == 0)
      }
      // Invariant 1: nothing left mapped in the range.
      for p in 0..<4 { #expect(r.mm.pageTable.pte(at: a + UInt64(p) * page).isNone) }
      #expect(r.mm.mapCount == 0)

      // Invariant 4: once faults drain, umount succeeds.
      if bUmount != 0 {
        var retried: Int32 = -1
        do throws(Errno) {
          try r.machine.umount("/mnt")
          retried = 0
        } catch {
          retried = error.rawValue
        }
        if c.fput == .synchronous {
          // The fault's own file reference went with the fault: no grace period needed.
          #expect(retried == 0, "umount after the fault finished")
        }
        if retried != 0 {
          r.machine.drainDeferredFrees()
          #expect(throws: Never.self) { try r.machine.umount("/mnt") }
        }
      }
      #expect(r.machine.namespace.activeMounts.allSatisfy { $0.path != "/mnt" })
    }
  }
}
