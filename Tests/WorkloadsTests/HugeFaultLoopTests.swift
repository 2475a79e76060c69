import Faultline
import FaultlineWorkloads
import Testing

/// page_fault1-thp's loops (`hugeAnonymousFaultLoop` and its host twin) run briefly, touch their
/// memory and leave nothing mapped; the counters they report come from the right place. No
/// timing checks, and no check of how many faults were huge: that depends on the host's THP
/// setting, and on the engine's THP fault path.
@Suite struct HugeFaultLoopTests {
  /// THP on `madvise`, pinned, so that `MADV_HUGEPAGE` is what makes the region eligible.
  func machine() throws -> Machine {
    var p = MachineProfile.reference
    p.thpEnabled = .madvise
    p.thpPMDEnabled = .inherit
    return try Machine(memoryBytes: 64 << 20, profile: p)
  }

  @Test func regionRoundsUpToWhole2MiBExtents() {
    #expect(hugeFaultRegion(16 << 20) == 16 << 20)
    #expect(hugeFaultRegion(3 << 20) == 4 << 20)
    #expect(hugeFaultRegion(1) == 2 << 20)
    #expect(hugeFaultRegion(0) == 2 << 20)
  }

  /// Two threads, each mapping 4 MiB (two extents) per pass: every page written, at least one
  /// fault per extent and at most one per page, and afterwards no mapping and no frame left.
  @Test func engineLoopTouchesEveryPageAndUnmapsEverything() throws {
    let machine = try machine()
    let mm = try AddressSpace(machine: machine)
    machine.drainDeferredFrees()
    let baseline = machine.memory.framesInUse
    let faultsBefore = machine.vmstat[.pgfault]
    let r = try hugeAnonymousFaultLoop(mm: mm, threads: 2, seconds: 0.05, regionBytes: 4 << 20)
    let faults = machine.vmstat[.pgfault] - faultsBefore
    #expect(r.pages > 0 && r.pages % 1024 == 0)
    #expect(r.touchNanoseconds > 0)
    #expect(faults >= UInt64(r.pages / 512) && faults <= UInt64(r.pages))
    #expect(mm.mapCount == 0)
    machine.drainDeferredFrees()
    #expect(machine.memory.framesInUse == baseline)
    mm.destroy()
    machine.drainDeferredFrees()
    #expect(machine.memory.framesInUse == 0)
  }

  /// With one space per thread (`--isolated`), each thread's space is left empty too.
  @Test func engineLoopOnIsolatedSpacesUnmapsEverything() throws {
    let machine = try machine()
    let mm = try AddressSpace(machine: machine)
    let spaces = try (0..<2).map { _ in try AddressSpace(machine: machine) }
    let r = try hugeAnonymousFaultLoop(mm: mm, threads: 2, seconds: 0.05, regionBytes: 2 << 20, isolated: spaces)
    #expect(r.pages > 0 && r.pages % 512 == 0)
    #expect(spaces.allSatisfy { $0.mapCount == 0 } && mm.mapCount == 0)
    for s in spaces + [mm] { s.destroy() }
    machine.drainDeferredFrees()
    #expect(machine.memory.framesInUse == 0)
  }

  @Test func regionThatIsNotWhole2MiBExtentsIsEINVAL() throws {
    let machine = try machine()
    let mm = try AddressSpace(machine: machine)
    defer { mm.destroy() }
    #expect(throws: Errno.invalidArgument) {
      _ = try hugeAnonymousFaultLoop(mm: mm, threads: 1, seconds: 0.01, regionBytes: 3 << 20)
    }
    #expect(throws: Errno.invalidArgument) {
      _ = try hostHugeAnonymousFaultLoop(threads: 1, seconds: 0.01, regionBytes: 0)
    }
  }

  @Test func hostLoopWritesWholeRegions() throws {
    let r = try hostHugeAnonymousFaultLoop(threads: 2, seconds: 0.05, regionBytes: 4 << 20)
    #expect(r.pages > 0 && r.pages % 1024 == 0)
    #expect(r.touchNanoseconds > 0 && r.rate > 0)
    #expect(r.nanosecondsPer2MiB == r.nanosecondsPer4KiB * 512)
  }

  /// Counters are read by their `/proc/vmstat` names; one that is not there is absent, not 0.
  @Test func countersAreReadByNameAndMissingOnesAreAbsent() throws {
    let host = hostVMStat(["pgfault", "no_such_counter"])
    #expect(Array(host.keys) == ["pgfault"] && host["pgfault"]! > 0)
    let machine = try machine()
    let engine = engineVMStat(machine.vmstat.snapshot, ["pgfault", "no_such_counter"])
    #expect(engine == ["pgfault": 0])
  }
}
