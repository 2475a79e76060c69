import CFaultlineProbe
import FaultlineConform
import Testing

@Suite("Host probe")
struct ProbeTests {
  let window = ConformWindow()

  @Test func probeReportsMapErrAndAccErrOnTheHost() throws {
    let probe = try HostProbe(window: window)
    let a = window.start
    let ops: [ConformOp] = [
      .load(addr: a, length: 1),
      .mmap(addr: a, length: 8192, prot: 1, flags: 0x22 | 0x10),
      .load(addr: a + 4095, length: 2),
      .store(addr: a + 8, length: 4, pattern: 7),
      .mprotect(addr: a, length: 4096, prot: 3),
      .store(addr: a + 8, length: 4, pattern: 7),
      .load(addr: a + 6, length: 8),
      .maps,
    ]
    let r = try probe.run(ops)
    #expect(r[0] == .access(signal: .sigsegv(code: 1), faultAddress: a, bytes: []))
    #expect(r[1] == .returned(a))
    #expect(r[2] == .access(signal: nil, faultAddress: 0, bytes: [0, 0]))
    #expect(r[3] == .access(signal: .sigsegv(code: 2), faultAddress: a + 8, bytes: []))
    #expect(r[4] == .returned(0))
    #expect(r[5] == .access(signal: nil, faultAddress: 0, bytes: []))
    #expect(r[6] == .access(signal: nil, faultAddress: 0, bytes: [0, 0, 7, 8, 9, 10, 0, 0]))
    guard case .maps(let lines) = r[7] else {
      Issue.record("no maps")
      return
    }
    #expect(lines.count == 2)
    #expect(lines.first?.hasPrefix("100000000000-100000001000 rw-p 00000000 00:00 0") == true)
  }

  @Test func probeRecordsErrnoAndPartialLoads() throws {
    let probe = try HostProbe(window: window)
    let a = window.start
    let r = try probe.run([
      .munmap(addr: a + 1, length: 4096),
      .mmap(addr: a, length: 4096, prot: 3, flags: 0x22 | 0x10),
      .store(addr: a + 4094, length: 4, pattern: 1),
      .load(addr: a + 4092, length: 8),
    ])
    #expect(r[0] == .failed(22))
    #expect(r[2] == .access(signal: .sigsegv(code: 1), faultAddress: a + 4096, bytes: []))
    #expect(r[3] == .access(signal: .sigsegv(code: 1), faultAddress: a + 4096, bytes: [0, 0, 1, 2]))
  }
}
