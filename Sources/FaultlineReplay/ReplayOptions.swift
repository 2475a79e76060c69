import Faultline

/// How a replay runs, and the state of the recorded process that a log cannot carry: its
/// privileges, its resource limits, its layout, how much memory it touched.
public struct ReplayOptions: Sendable {
  /// `mmap_base` for every address space; `nil` takes it from the script: the end of the first
  /// hint-less `mmap` the kernel placed (see `ReplayExecutor`).
  public var mapsBase: UInt64?
  /// The fault design of every address space.
  public var design: FaultDesign = .mmapLock
  /// The engine's frame arena. A log whose populating calls (`MAP_POPULATE`, `MAP_LOCKED`,
  /// `mlock`, `MADV_POPULATE_*`, stores) add up to more gets an arena that size instead
  /// (`ReplayExecutor.arenaBytes`), up to `maxArenaBytes`.
  public var memoryBytes: Int = 1 << 30
  /// The machine the engine models (`faultline replay --profile`).
  public var profile: MachineProfile = .host
  /// Loads and stores longer than this are skipped (the fuzzer bounds its work with it).
  public var maxAccessBytes: UInt64 = .max
  /// Strict replay: no kernel-made memory is inferred (the ELF, ld.so, the stack a call lands
  /// on), and `open` runs on the engine's tmpfs instead of taking the recorded result with a
  /// stand-in file (`StandInFile`). `nil`: strict for op scripts (scripts with `load`, `store`,
  /// `maps` or `wrpkru`), inferring for traced programs. Mappings of fds the script never
  /// opened are stand-ins either way.
  public var strict: Bool?
  /// The log was recorded as root: `CAP_IPC_LOCK` (no `RLIMIT_MEMLOCK` bound on `mlock`,
  /// `MAP_LOCKED`, `mlockall`) and `CAP_SYS_RAWIO` (`MAP_FIXED` below `vm.mmap_min_addr`).
  public var privileged = false
  /// The resource limits the log was recorded under; the others keep Linux's defaults
  /// (`AddressSpaceConfig`). An unlimited `RLIMIT_STACK` selects the legacy layout, as on Linux.
  public var rlimits: [ReplayRlimit: UInt64] = [:]
  /// The legacy bottom-up layout (`setarch -L`, `ADDR_COMPAT_LAYOUT`); `nil` infers it from the
  /// log: a program whose first hint-less mmap the kernel placed in the lower half of the
  /// address space (near `TASK_UNMAPPED_BASE`) ran with it.
  public var legacyLayout: Bool?
  /// Called with one line per call when set (`--verbose`).
  public var log: (@Sendable (String) -> Void)?

  /// The largest arena sized from a log: 32 GiB (the arena's frame metadata, touched when it is
  /// made, is 9 MiB per GiB).
  public static let maxArenaBytes = 32 << 30

  public init(mapsBase: UInt64? = nil, design: FaultDesign = .mmapLock) {
    self.mapsBase = mapsBase
    self.design = design
  }

  /// `config` with the privileges and limits above.
  func apply(to config: inout AddressSpaceConfig) {
    if privileged {
      config.capIPCLock = true
      config.capSysRawIO = true
    }
    for (limit, value) in rlimits {
      switch limit {
      case .memlock: config.rlimitMemlock = value
      case .addressSpace: config.rlimitAS = value
      case .data: config.rlimitData = value
      case .stack: config.rlimitStack = value
      }
    }
  }
}

/// The resource limits a replay can be given (`faultline replay --rlimit NAME=VALUE`).
public enum ReplayRlimit: String, CaseIterable, Sendable {
  /// `RLIMIT_MEMLOCK`: locked memory (`mlock`, `MAP_LOCKED`).
  case memlock = "MEMLOCK"
  /// `RLIMIT_AS`: the address space's size.
  case addressSpace = "AS"
  /// `RLIMIT_DATA`: private writable memory and the heap.
  case data = "DATA"
  /// `RLIMIT_STACK`: how far the stack grows; unlimited selects the legacy layout.
  case stack = "STACK"

  /// Reads `NAME=VALUE` (`MEMLOCK=64M`, `RLIMIT_AS=unlimited`): the value in bytes, a number
  /// with an optional `K`, `M` or `G`, or `unlimited`/`infinity`. `nil` when it is neither.
  public static func parse(_ text: String) -> (ReplayRlimit, UInt64)? {
    let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
    guard parts.count == 2 else { return nil }
    var name = parts[0].uppercased()
    if name.hasPrefix("RLIMIT_") { name.removeFirst(7) }
    guard let limit = ReplayRlimit(rawValue: name) else { return nil }
    let value = parts[1].lowercased()
    if value == "unlimited" || value == "infinity" { return (limit, .max) }
    var digits = Substring(value)
    var shift: UInt64 = 0
    switch digits.last {
    case "k": shift = 10
    case "m": shift = 20
    case "g": shift = 30
    default: break
    }
    if shift != 0 { digits = digits.dropLast() }
    let n = digits.hasPrefix("0x") ? UInt64(digits.dropFirst(2), radix: 16) : UInt64(digits)
    guard let n, n <= UInt64.max >> shift else { return nil }
    return (limit, n << shift)
  }
}
