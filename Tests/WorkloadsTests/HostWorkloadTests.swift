import Faultline
import FaultlineWorkloads
import Testing

/// The host-kernel loops and the engine's DONTNEED twin run briefly and do work. No timing checks.
@Suite struct HostWorkloadTests {
  @Test func hostAnonymousFaultLoopFaults() throws {
    let r = try hostAnonymousFaultLoop(regionBytes: 1 << 20, rounds: 3)
    #expect(r.pages == 3 * 256)
    #expect(r.touchNanoseconds > 0)
    #expect(r.totalNanoseconds >= r.touchNanoseconds)
  }

  @Test func hostEbizzyRecords() throws {
    let r = try hostEbizzy(threads: 2, seconds: 0.05, chunkBytes: 64 << 10)
    #expect(r.records > 0)
    #expect(r.recordsPerSecond > 0)
  }

  @Test(arguments: [false, true]) func hostFileFaultLoopFaults(shared: Bool) throws {
    let rate = try hostFileFaultLoop(directory: "/tmp", threads: 2, seconds: 0.05, shared: shared, regionBytes: 256 << 10)
    #expect(rate > 0)
  }

  @Test func hostFileFaultLoopBadDirectoryThrows() {
    #expect(throws: (any Error).self) {
      _ = try hostFileFaultLoop(
        directory: "/nonexistent-faultline-dir", threads: 1, seconds: 0.05, shared: false, regionBytes: 64 << 10)
    }
  }

  @Test func hostDontneedLoopFaults() throws {
    let rate = try hostDontneedLoop(threads: 2, seconds: 0.05, regionBytes: 256 << 10)
    #expect(rate > 0)
  }

  @Test func engineDontneedLoopFaults() throws {
    let machine = try Machine(memoryBytes: 32 << 20)
    let mm = try AddressSpace(machine: machine)
    let rate = try dontneedLoop(mm: mm, threads: 2, seconds: 0.05, regionBytes: 256 << 10)
    #expect(rate > 0)
    mm.destroy()
    machine.drainDeferredFrees()
    #expect(machine.memory.framesInUse == 0)
  }
}
