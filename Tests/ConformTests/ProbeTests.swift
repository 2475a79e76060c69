import CFaultlineProbe
import Glibc
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

@Suite("Host probe failures")
struct ProbeFailureTests {
  let window = ConformWindow()

  /// The child unmaps the page holding its own op list: reading the next op faults outside any
  /// probed access, and the parent reports the crash instead of results.
  @Test func aChildCrashIsReportedAsAnError() throws {
    _ = try HostProbe(window: window)
    let page = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
    defer { munmap(page, 4096) }
    let ops = page.bindMemory(to: fl_probe_op.self, capacity: 2)
    ops[0] = HostProbeTestAccess.op(FL_PROBE_MUNMAP, UInt64(UInt(bitPattern: page)), 4096)
    ops[1] = HostProbeTestAccess.op(FL_PROBE_MAPS)
    var results = [fl_probe_result](repeating: fl_probe_result(), count: 2)
    var data = [UInt8](repeating: 0, count: 1 << 20)
    var completed: UInt32 = 0
    var detail: Int32 = 0
    let rc = fl_probe_run(
      ops, 2, window.reserveStart, window.reserveLength, window.start, window.length, 1, &results, &data,
      UInt64(data.count), 5000, &completed, &detail)
    #expect(rc == FL_PROBE_CRASHED.rawValue)
    #expect(detail == SIGSEGV)
    #expect(completed == 1)
  }

  @Test func aFullDataAreaEndsTheChildWithAStatus() throws {
    _ = try HostProbe(window: window)
    let ops = [HostProbeTestAccess.op(FL_PROBE_LOAD, 0, 64)]
    var results = [fl_probe_result](repeating: fl_probe_result(), count: 1)
    var data = [UInt8](repeating: 0, count: 16)
    var completed: UInt32 = 0
    var detail: Int32 = 0
    let rc = fl_probe_run(
      ops, 1, window.reserveStart, window.reserveLength, window.start, window.length, 1, &results, &data, 16, 5000,
      &completed, &detail)
    #expect(rc == FL_PROBE_EXITED.rawValue)
    #expect(detail == 11)
    #expect(completed == 0)
  }
}

enum HostProbeTestAccess {
  static func op(_ kind: fl_probe_kind, _ args: UInt64...) -> fl_probe_op {
    var o = fl_probe_op()
    o.kind = kind.rawValue
    withUnsafeMutableBytes(of: &o.args) { buf in
      for (i, a) in args.enumerated() { buf.storeBytes(of: a, toByteOffset: i * 8, as: UInt64.self) }
    }
    return o
  }
}
