import CFaultlineProbe
import Glibc
import FaultlineConform
import Testing

@Suite("Host probe", .enabled(if: HostProbe.usable, "ThreadSanitizer refuses the probe's mappings"))
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

@Suite("Host probe failures", .enabled(if: HostProbe.usable, "ThreadSanitizer refuses the probe's mappings"))
struct ProbeFailureTests {
  let window = ConformWindow()

  /// The child unmaps the page holding its own op list: reading the next op faults outside any
  /// probed access, and the parent reports the crash instead of results.
  @Test func aChildCrashIsReportedAsAnError() throws {
    _ = try HostProbe(window: window)
    let (rc, completed, detail) = HostProbeTestAccess.runUnmappingItsOwnOps([], window: window)
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
  /// Runs `first`, then an op that unmaps the page holding the op list, then `maps`, which the
  /// child can no longer read: it dies of SIGSEGV outside any probed access.
  static func runUnmappingItsOwnOps(_ first: [fl_probe_op], window: ConformWindow) -> (Int32, UInt32, Int32) {
    let page = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
    defer { munmap(page, 4096) }
    let count = first.count + 2
    let ops = page.bindMemory(to: fl_probe_op.self, capacity: count)
    for (i, op) in first.enumerated() { ops[i] = op }
    ops[first.count] = op(FL_PROBE_MUNMAP, UInt64(UInt(bitPattern: page)), 4096)
    ops[first.count + 1] = op(FL_PROBE_MAPS)
    var results = [fl_probe_result](repeating: fl_probe_result(), count: count)
    var data = [UInt8](repeating: 0, count: 1 << 20)
    var completed: UInt32 = 0
    var detail: Int32 = 0
    let rc = fl_probe_run(
      ops, UInt32(count), window.reserveStart, window.reserveLength, window.start, window.length, 1, &results, &data,
      UInt64(data.count), 5000, &completed, &detail)
    return (rc, completed, detail)
  }

  static func op(_ kind: fl_probe_kind, _ args: UInt64...) -> fl_probe_op {
    var o = fl_probe_op()
    o.kind = kind.rawValue
    withUnsafeMutableBytes(of: &o.args) { buf in
      for (i, a) in args.enumerated() { buf.storeBytes(of: a, toByteOffset: i * 8, as: UInt64.self) }
    }
    return o
  }
}

/// System V shared memory on both sides (issue 13, rule 9): segments are named by slot, the host
/// child's segments are gone once the probe returns (even those it never removed, and even when
/// it crashed), and the engine gives the same results.
@Suite("Host probe: System V shared memory", .enabled(if: HostProbe.usable, "ThreadSanitizer refuses the probe's mappings"))
struct ProbeShmTests {
  let window = ConformWindow()

  /// Whether a segment with `key` exists on the host (the child's own key keeps its low 16 bits).
  private func hostHasKey(_ key: Int32) -> Bool { fl_probe_segments_with_low_key(UInt32(key) & 0xFFFF) > 0 }

  @Test func hostAndEngineAgreeAndTheHostKeepsNoSegment() throws {
    let probe = try HostProbe(window: window)
    let a = window.start
    let key: Int32 = 0x464C_0F0F
    let ops: [ConformOp] = [
      .shmget(key: key, size: 56, flags: 0o1000 | 0o600, slot: 0),
      .shmget(key: key, size: 56, flags: 0o3000 | 0o600, slot: 1),  // EEXIST
      .shmat(slot: 0, addr: a, flags: 0),
      .shmat(slot: 0, addr: a, flags: 0),  // EINVAL: in use
      .shmat(slot: 0, addr: a + 0x2001, flags: 0o20000),  // SHM_RND
      .store(addr: a + 8, length: 4, pattern: 9),
      .load(addr: a + 0x2008, length: 4),
      .shmctl(slot: 0, cmd: 2),  // IPC_STAT: nattch 2
      .madvise(addr: a + 0x2000, length: 4096, advice: 102),
      .load(addr: a + 0x2008, length: 1),
      .shmdt(addr: a),
      .shmctl(slot: 0, cmd: 2),
      .maps,
    ]
    let host = try probe.run(ops)
    #expect(!hostHasKey(key), "the probe left the child's segment behind")
    let engine = try EngineRunner(window: window, profile: .host).run(ops)
    #expect(host[0] == .returned(0) && host[1] == .failed(17) && host[2] == .returned(a) && host[3] == .failed(22))
    #expect(host[4] == .returned(a + 0x2000))
    #expect(host[6] == .access(signal: nil, faultAddress: 0, bytes: [9, 10, 11, 12]))
    #expect(host[7] == .returned(2) && host[11] == .returned(1))
    #expect(host[9] == .access(signal: .sigsegv(code: 1), faultAddress: a + 0x2008, bytes: []))
    var comparator = ConformComparator(window: window)
    for (i, op) in ops.enumerated() {
      #expect(comparator.compare(op, host: host[i], engine: engine[i]) == nil, "op \(i): \(op.callText)")
    }
  }

  /// The child makes a segment, then unmaps its own op list and dies of SIGSEGV: the parent
  /// still removes the segment.
  @Test func aCrashedChildsSegmentIsRemovedToo() throws {
    _ = try HostProbe(window: window)
    let key: Int32 = 0x464C_0F0E
    let shmget = HostProbeTestAccess.op(FL_PROBE_SHMGET, UInt64(key), 4096, 0o1000 | 0o600, 0)
    let (rc, completed, _) = HostProbeTestAccess.runUnmappingItsOwnOps([shmget], window: window)
    #expect(rc == FL_PROBE_CRASHED.rawValue && completed == 2)
    #expect(!hostHasKey(key))
  }
}
