import CFaultlineProbe
import Faultline
import Synchronization

/// Runs op sequences on the host kernel, in a forked child (`CFaultlineProbe`).
///
/// The first use reserves the window and its margins in this process with a PROT_NONE mapping
/// (`MAP_FIXED_NOREPLACE`), so that nothing the parent maps later lands there; every child unmaps
/// the reservation before its first op. The child drops its capabilities, so that the kernel
/// treats it as an unprivileged process, as the engine's default `AddressSpaceConfig` does
/// (`vm.mmap_min_addr` applies, `RLIMIT_MEMLOCK` limits mlock), and sets its `RLIMIT_MEMLOCK`
/// to `FL_PROBE_MEMLOCK_LIMIT`, the engine side's limit. System V segments the child
/// made are removed by the parent once the child is gone, however it ended (`fl_probe_run`).
public final class HostProbe: Sendable {
  /// Whether the probe can run here: not under ThreadSanitizer, whose runtime refuses the raw
  /// mappings a forked child makes in the window.
  public static var usable: Bool { fl_probe_built_with_tsan() == 0 }

  public let window: ConformWindow
  /// Drop every capability in the child (the default).
  public let dropCapabilities: Bool
  /// How long a child may run.
  public let timeoutMilliseconds: UInt32

  private static let reservations = Locked<[UInt64: UInt64]>([:])

  /// Reserves the window in this process (once per window start).
  public init(window: ConformWindow = ConformWindow(), dropCapabilities: Bool = true, timeoutMilliseconds: UInt32 = 10_000)
    throws(Errno)
  {
    self.window = window
    self.dropCapabilities = dropCapabilities
    self.timeoutMilliseconds = timeoutMilliseconds
    let failure: Int32 = Self.reservations.withLock { table in
      if let len = table[window.reserveStart] { return len == window.reserveLength ? 0 : Errno.fileExists.rawValue }
      let rc = fl_probe_reserve(window.reserveStart, window.reserveLength)
      if rc == 0 { table[window.reserveStart] = window.reserveLength }
      return rc
    }
    if failure != 0 { throw Errno(rawValue: failure) }
  }

  /// Why a host run produced no (or partial) results.
  public struct Failure: Error, CustomStringConvertible {
    public let status: Int32
    public let detail: Int32
    public let completed: Int
    public var description: String {
      let what: String
      switch status {
      case -1: what = "fork failed (errno \(detail))"
      case -2: what = "the child timed out"
      case -3: what = "the child died of signal \(detail)"
      case -4: what = "the child exited with status \(detail)"
      case -5: what = "no shared buffer (errno \(detail))"
      default: what = "bad arguments"
      }
      return "host probe: \(what) after \(completed) ops"
    }
  }

  /// Runs `ops` in a fresh child and returns one result per op.
  public func run(_ ops: [ConformOp]) throws(Failure) -> [ConformResult] {
    let raw = ops.map(Self.encode)
    var results = [fl_probe_result](repeating: fl_probe_result(), count: max(ops.count, 1))
    let dataCap = ops.reduce(4 << 20) { total, op in
      switch op {
      case .load(_, let n): total + Int(min(n, 1 << 20))
      case .mincore(_, let n): total + Int(min(Page.covering(n), 1 << 16))
      default: total
      }
    }
    var data = [UInt8](repeating: 0, count: dataCap)
    var completed: UInt32 = 0
    var detail: Int32 = 0
    let rc = raw.withUnsafeBufferPointer { opsBuf in
      results.withUnsafeMutableBufferPointer { resBuf in
        data.withUnsafeMutableBufferPointer { dataBuf in
          fl_probe_run(
            opsBuf.baseAddress, UInt32(ops.count), window.reserveStart, window.reserveLength, window.start,
            window.length, dropCapabilities ? 1 : 0, resBuf.baseAddress, dataBuf.baseAddress, UInt64(dataCap),
            timeoutMilliseconds, &completed, &detail)
        }
      }
    }
    if rc != 0 || Int(completed) != ops.count {
      throw Failure(status: rc, detail: detail, completed: Int(completed))
    }
    return zip(ops, results).map { op, r in Self.decode(op, r, data) }
  }

  static func encode(_ op: ConformOp) -> fl_probe_op {
    var o = fl_probe_op()
    func set(_ kind: fl_probe_kind, _ args: UInt64...) {
      o.kind = kind.rawValue
      withUnsafeMutableBytes(of: &o.args) { buf in
        for (i, a) in args.enumerated() { buf.storeBytes(of: a, toByteOffset: i * 8, as: UInt64.self) }
      }
    }
    func u(_ v: Int32) -> UInt64 { UInt64(UInt32(bitPattern: v)) }
    switch op {
    case .mmap(let addr, let length, let prot, let flags):
      set(FL_PROBE_MMAP, addr, length, u(prot), u(flags), op.placementFree ? 1 : 0)
    case .munmap(let addr, let length): set(FL_PROBE_MUNMAP, addr, length)
    case .mprotect(let addr, let length, let prot): set(FL_PROBE_MPROTECT, addr, length, u(prot))
    case .madvise(let addr, let length, let advice): set(FL_PROBE_MADVISE, addr, length, u(advice))
    case .mremap(let old, let oldSize, let newSize, let flags, let newAddress):
      set(FL_PROBE_MREMAP, old, oldSize, newSize, u(flags), newAddress, op.placementFree ? 1 : 0)
    case .mlock(let addr, let length): set(FL_PROBE_MLOCK, addr, length)
    case .mlock2(let addr, let length, let flags): set(FL_PROBE_MLOCK2, addr, length, u(flags))
    case .munlock(let addr, let length): set(FL_PROBE_MUNLOCK, addr, length)
    case .mincore(let addr, let length): set(FL_PROBE_MINCORE, addr, length)
    case .load(let addr, let length): set(FL_PROBE_LOAD, addr, length)
    case .store(let addr, let length, let pattern): set(FL_PROBE_STORE, addr, length, UInt64(pattern))
    case .maps: set(FL_PROBE_MAPS)
    case .pkeyAlloc(let flags, let rights): set(FL_PROBE_PKEY_ALLOC, flags, rights)
    case .pkeyFree(let key): set(FL_PROBE_PKEY_FREE, u(key))
    case .pkeyMprotect(let addr, let length, let prot, let key): set(FL_PROBE_PKEY_MPROTECT, addr, length, u(prot), u(key))
    case .wrpkru(let value): set(FL_PROBE_WRPKRU, UInt64(value))
    case .shmget(let key, let size, let flags, let slot): set(FL_PROBE_SHMGET, u(key), size, u(flags), UInt64(slot))
    case .shmat(let slot, let addr, let flags): set(FL_PROBE_SHMAT, UInt64(bitPattern: Int64(slot)), addr, u(flags))
    case .shmdt(let addr): set(FL_PROBE_SHMDT, addr)
    case .shmctl(let slot, let cmd): set(FL_PROBE_SHMCTL, UInt64(bitPattern: Int64(slot)), u(cmd))
    case .brk(let addr, let relative): set(FL_PROBE_BRK, addr, relative ? 1 : 0)
    case .heapMunmap(let offset, let length): set(FL_PROBE_HEAP_MUNMAP, offset, length)
    case .mseal(let addr, let length, let flags): set(FL_PROBE_MSEAL, addr, length, flags)
    case .mlockall(let flags): set(FL_PROBE_MLOCKALL, u(flags))
    case .munlockall: set(FL_PROBE_MUNLOCKALL)
    }
    return o
  }

  static func decode(_ op: ConformOp, _ r: fl_probe_result, _ data: [UInt8]) -> ConformResult {
    let bytes = Array(data[Int(r.data_off)..<Int(r.data_off) + Int(r.data_len)])
    switch op {
    case .load, .store:
      let signal: AccessSignal? =
        switch r.signo {
        case 0: nil
        case 7: .sigbus(code: r.code)
        default: .sigsegv(code: r.code)
        }
      return .access(signal: signal, faultAddress: signal == nil ? 0 : r.fault_addr, bytes: bytes)
    case .maps:
      let text = String(decoding: bytes, as: UTF8.self)
      return .maps(text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init))
    case .brk:
      return .returned(UInt64(bitPattern: r.ret))  // never fails; -1 is a break a byte below
    default:
      if r.ret == -1 { return .failed(r.err) }
      if case .mincore = op { return .vector(bytes) }
      return .returned(UInt64(bitPattern: r.ret))
    }
  }
}
