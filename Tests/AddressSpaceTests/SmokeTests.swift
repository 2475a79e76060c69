import Faultline
import FaultlineTestSupport
import Testing

@Suite struct SmokeTests {
  @Test func mapTouchUnmap() throws {
    try withRig { r in
      let a = try r.cpu.mmap(0, 8 * page, prot: rw, flags: anonPrivate)
      #expect(a == 0x7FFF_F7FF_F000 - 8 * page)
      try r.cpu.storeByte(a + 5, 42)
      #expect(try r.cpu.loadByte(a + 5) == 42)
      #expect(try r.cpu.loadByte(a + page) == 0)
      print(r.mm.maps())
      try r.cpu.munmap(a, 8 * page)
      #expect(throws: Signal.sigsegv(.mapErr, address: a)) { try r.cpu.loadByte(a) }
      print(r.machine.vmstat.render())
    }
  }
}
