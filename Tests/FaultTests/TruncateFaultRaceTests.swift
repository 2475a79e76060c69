import Faultline
import FaultlineTestSupport
import Synchronization
import Testing

/// A file fault that checked the size, then lost the race to a truncate before reading the page
/// (found by `faultline explore fault-truncate`, schedule `F,T,T,T,F,F,F`): Linux's
/// `invalidate_lock` keeps the fault from reading the page back into the cache beyond the new
/// EOF; the fault gets SIGBUS and the cache holds nothing past EOF.
@Suite struct TruncateFaultRaceTests {
  @Test(arguments: FaultDesign.allCases)
  func faultAfterTruncateReadsNothingBeyondEOF(design: FaultDesign) throws {
    var config = AddressSpaceConfig()
    config.faultAroundPages = 0
    try withRig(config: config, design: design) { r in
      r.machine.mount(TmpFS(memory: r.machine.memory), at: "/t")
      let fd = try r.cpu.open("/t/f", flags: OpenFlags.readWrite | OpenFlags.create)
      try r.cpu.ftruncate(fd, 2 * page)
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: MapFlags.shared, fd: fd)
      let inode = try r.mm.files.getRaw(fd).inode
      let truncated = Atomic<Bool>(false)
      r.mm.faultHook = { point, addr in
        // Inside ->fault, after the size check: truncate the page away.
        if point == .insideFileFault, addr == a + page, !truncated.exchange(true, ordering: .relaxed) {
          try? inode.truncate(to: page)
        }
      }
      #expect(throws: Signal.sigbus(address: a + page)) { try r.cpu.loadByte(a + page) }
      r.mm.faultHook = nil
      let didTruncate = truncated.load(ordering: .relaxed)
      #expect(didTruncate)
      #expect(inode.pageCache.residentPages == 0)
      #expect(r.mm.pageTable.pte(at: a + page).isNone)
      try r.cpu.munmap(a, 2 * page)
      try r.cpu.close(fd)
      try r.machine.umount("/t")
    }
  }
}
