import Faultline
import Glibc

/// The file scenarios.
extension Scenario {
  /// A fault on a shared tmpfs mapping vs ftruncate below the page (invariants 3, 7 and
  /// truncate's own rule: once it returned, no PTE maps a page beyond EOF).
  public static let faultTruncate = Scenario(
    name: "fault-truncate",
    summary: "read/write fault on page 1 of a shared tmpfs mapping vs ftruncate(fd, 4096)",
    threads: ["F", "T"], variants: ["read", "write"], usesFputMode: true, needsWorkDir: false,
    make: { config, s in try TruncateRun(config, s) })

  /// A read fault filling the page cache from a host file vs munmap + close + umount
  /// (invariants 1, 3, 4, 7), as `FileFaultRaceTests`.
  public static let fileFaultMunmapUmount = Scenario(
    name: "file-fault-munmap-umount",
    summary: "read fault on an uncached page of a private HostFS mapping vs munmap, close, umount",
    threads: ["F", "W"], variants: ["read"], usesFputMode: true, needsWorkDir: true,
    make: { config, s in try UmountRun(config, s) })
}

/// One run of `fault-truncate`: a 2-page tmpfs file mapped `MAP_SHARED` read-write, page 0
/// faulted in first (page tables), fault-around off (it would map page 1 from the cache); the
/// fault on page 1 races `ftruncate(fd, 4096)`, which leaves page 1 beyond EOF.
///
/// Checks: the result is `ok` or `SIGBUS` (fixed when they did not overlap); once ftruncate
/// returned, page 1 has no PTE; frames (3); page 1 is not in the page cache once both finished
/// (a fault that read it in after truncate dropped it: `cache_beyond_eof`, a violation).
/// Sabotage: the truncate thread does not truncate.
final class TruncateRun: ScenarioRig, ScenarioRun {
  var bodies: [@Sendable () -> Void] = []
  var inode: Inode?

  init(_ config: ScenarioConfig, _ s: Scheduler) throws {
    try super.init(config, s) { $0.faultAroundPages = 0 }
    let (mm, cpu, page) = (self.mm!, self.cpu!, Self.page)
    machine.mount(TmpFS(memory: machine.memory), at: "/mnt")
    let fd = try cpu.open("/mnt/data", flags: OpenFlags.readWrite | OpenFlags.create)
    let bytes = (0..<2 * Int(page)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
    _ = try bytes.withUnsafeBytes { try mm.files.pwrite(fd, $0, at: 0) }
    let base = try cpu.mmap(Self.base, 2 * page, prot: Prot.read | Prot.write,
                            flags: MapFlags.shared | MapFlags.fixed, fd: fd)
    _ = try cpu.loadByte(base)
    target = base + page
    range = (base, base + 2 * page)
    let inode = try mm.files.getRaw(fd).inode
    self.inode = inode
    let sabotage = config.sabotage
    inode.truncateHook = { [s] point, _ in s.yield(label(point)) }
    bodies = [
      faultBody(write: config.variant == "write"),
      Self.writerBody(s, times, "ftruncate") { () throws(Errno) in if !sabotage { try mm.files.ftruncate(fd, page) } },
    ]
    arm()
  }

  func quiescent(step: Int, violations: inout [String]) {
    checkMappedFramesLive(step, &violations)
    if times.value.writerEnd != 0 { checkBeyondEOF("step \(step)", &violations) }
  }

  func checkBeyondEOF(_ when: String, _ violations: inout [String]) {
    if let mm, mm.pageTable.pte(at: target).mapsFrame {
      violations.append("truncate: PTE at \(hex(target)) beyond EOF after ftruncate returned (\(when))")
    }
  }

  func finish(allFinished: Bool, violations: inout [String]) -> Observation {
    var o = observe(&violations)
    if allFinished {
      checkMappedFramesLive(-1, &violations)
      checkBeyondEOF("end", &violations)
      checkResultOrdering(before: "ok", after: "SIGBUS", &violations)
      // A fault must not read page 1 back into the cache after truncate dropped it (the
      // explorer found this; the page cache now re-checks EOF under its lock).
      if let inode, let p = inode.pageCache.find(1) {
        machine.memory.put(p)
        o.effects["cache_beyond_eof"] = "yes"
        violations.append("page 1 is in the page cache beyond EOF after both finished")
      }
    }
    inode?.truncateHook = nil
    inode = nil
    bodies = []
    teardown(allFinished: allFinished, &violations) { violations in
      // With deferred fput the VMA (and so the file) goes with its last reference, after a
      // grace period.
      machine.drainDeferredFrees()
      do throws(Errno) { try machine.umount("/mnt") } catch { violations.append("teardown: umount: \(error)") }
    }
    return o
  }
}

/// One run of `file-fault-munmap-umount`: a 4-page host file mapped private read-only through
/// `HostFS`; page 0 faulted first (page tables; fault-around maps only cached pages, so page 1
/// stays uncached); atime set old so relatime moves it. The fault on page 1 must read the page
/// from the host. The writer munmaps the mapping, closes the fd and umounts, with a yield point
/// after each call.
///
/// Checks: once munmap returned, no PTE in the range (1); frames (3); the fault is `ok` or
/// `SIGSEGV(MAPERR)` (7); umount gets EBUSY only while a fault is in flight, or under SPF with
/// deferred fput (the detached VMA holds the file until its last reference); once every thread
/// finished, umount succeeds, after the deferred frees with `.deferred`, at once otherwise (4).
/// Side effects recorded: `umount` (its answer), `refs_after_munmap` (file references beyond the
/// fd's when munmap returned: a fault's own, or the detached VMA's), `umount_needed_drain`.
final class UmountRun: ScenarioRig, ScenarioRun {
  struct State: Sendable {
    var munmapStart = 0, munmapEnd = 0, umountAt = 0
    var refsAfterMunmap = 0
    var umountError: Int32 = -1
  }
  var bodies: [@Sendable () -> Void] = []
  let state = Shared(State())
  var file: OpenFile?

  init(_ config: ScenarioConfig, _ s: Scheduler) throws {
    try super.init(config, s)
    let (mm, cpu, page, machine) = (self.mm!, self.cpu!, Self.page, self.machine)
    let fs = try HostFS(root: config.workDir, machine: machine)
    machine.mount(fs, at: "/mnt")
    let fd = try cpu.open("/mnt/data", flags: OpenFlags.readOnly)
    let file = try mm.files.getRaw(fd)
    self.file = file
    let base = try cpu.mmap(Self.base, 4 * page, prot: Prot.read, flags: MapFlags.private | MapFlags.fixed, fd: fd)
    _ = try cpu.loadByte(base)
    target = base + page
    range = (base, base + 4 * page)
    file.inode.atimeNanoseconds = 0
    let (times, state, sabotage) = (times, state, config.sabotage)
    let writer: @Sendable () -> Void = {
      let start = s.stamp()
      times.with { $0.writerStart = start }
      state.with { $0.munmapStart = start }
      do throws(Errno) {
        if !sabotage { try mm.munmap(base, 4 * page) }
      } catch {
        times.with { $0.errors.append("munmap: \(error)") }
      }
      let end = s.stamp()
      let refs = file.references - 1
      times.with { $0.writerEnd = end }
      state.with {
        $0.munmapEnd = end
        $0.refsAfterMunmap = refs
      }
      s.yield("munmap returned")
      do throws(Errno) { try mm.files.close(fd) } catch { times.with { $0.errors.append("close: \(error)") } }
      s.yield("closed")
      var answer: Int32 = 0
      do throws(Errno) { try machine.umount("/mnt") } catch { answer = error.rawValue }
      let at = s.stamp()
      state.with {
        $0.umountError = answer
        $0.umountAt = at
      }
    }
    bodies = [faultBody(write: false), writer]
    arm()
  }

  func quiescent(step: Int, violations: inout [String]) {
    checkMappedFramesLive(step, &violations)
    if state.value.munmapEnd != 0 {
      for a in mappedPages() { violations.append("inv1: PTE at \(hex(a)) after munmap returned (step \(step))") }
    }
  }

  func finish(allFinished: Bool, violations: inout [String]) -> Observation {
    var o = observe(&violations)
    let st = state.value
    let t = times.value
    let deferredSPF = config.design.faultsReferenceVMAs && config.fputMode == .deferred
    if allFinished {
      checkMappedFramesLive(-1, &violations)
      for a in mappedPages() { violations.append("inv1: PTE at \(hex(a)) after munmap returned (end)") }
      checkResultOrdering(before: "ok", after: "SIGSEGV(MAPERR)", &violations)
      o.effects["umount"] = st.umountError == 0 ? "ok" : (st.umountError == Errno.resourceBusy.rawValue ? "EBUSY" : "errno \(st.umountError)")
      o.effects["refs_after_munmap"] = "\(st.refsAfterMunmap)"
      let faultInFlight = t.faultEnd == 0 || t.faultEnd >= st.umountAt
      if st.umountError == Errno.resourceBusy.rawValue {
        if !faultInFlight && !deferredSPF {
          violations.append("inv4: umount EBUSY after the fault finished, munmap and close")
        }
      } else if st.umountError != 0 {
        violations.append("inv4: umount failed with errno \(st.umountError)")
      }
    }
    o.writerFirst = st.munmapEnd != 0 && (t.faultEnd == 0 || st.munmapEnd < t.faultEnd)
    if allFinished && st.umountError != 0 {
      // Invariant 4: the faults are done, so umount succeeds now; with deferred fput (SPF) only
      // after the deferred frees, where the detached VMA's last reference holds the file.
      do throws(Errno) {
        try machine.umount("/mnt")
        o.effects["umount_needed_drain"] = "no"
      } catch {
        machine.drainDeferredFrees()
        do throws(Errno) {
          try machine.umount("/mnt")
          o.effects["umount_needed_drain"] = "yes"
          if !deferredSPF { violations.append("inv4: umount needed the deferred frees without deferred fput") }
        } catch {
          violations.append("inv4: umount still fails after faults drained: \(error)")
        }
      }
    }
    file = nil
    bodies = []
    teardown(allFinished: allFinished, &violations)
    return o
  }
}
