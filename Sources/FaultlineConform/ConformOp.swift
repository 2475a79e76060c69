import Faultline

/// The operations `faultline conform` runs on both sides, and the window they run in.

/// One operation of a sequence. Addresses are absolute, so the host and the engine see the same.
public enum ConformOp: Equatable, Hashable, Sendable {
  /// `mmap(addr, length, prot, flags, -1, 0)`. Without `MAP_FIXED`/`MAP_FIXED_NOREPLACE` the
  /// result is compared modulo placement: two results outside the window agree, and each side
  /// unmaps its own at once.
  case mmap(addr: UInt64, length: UInt64, prot: Int32, flags: Int32)
  case munmap(addr: UInt64, length: UInt64)
  case mprotect(addr: UInt64, length: UInt64, prot: Int32)
  case madvise(addr: UInt64, length: UInt64, advice: Int32)
  /// `mremap(old, oldSize, newSize, flags, newAddress)`; a moved result outside the window is
  /// compared modulo placement and unmapped, as for `mmap`.
  case mremap(old: UInt64, oldSize: UInt64, newSize: UInt64, flags: Int32, newAddress: UInt64)
  case mlock(addr: UInt64, length: UInt64)
  case mlock2(addr: UInt64, length: UInt64, flags: Int32)
  case munlock(addr: UInt64, length: UInt64)
  /// `mincore(addr, length, vec)`: the vector is compared too.
  case mincore(addr: UInt64, length: UInt64)
  /// Reads `length` bytes at `addr`, lowest address first; the bytes are compared.
  case load(addr: UInt64, length: UInt64)
  /// Writes `length` bytes at `addr`: byte i is `(pattern + i) & 0xff`.
  case store(addr: UInt64, length: UInt64, pattern: UInt8)
  /// The `/proc/self/maps` lines overlapping the window.
  case maps
  /// `pkey_alloc(flags, access_rights)`: the key it returns.
  case pkeyAlloc(flags: UInt64, rights: UInt64)
  /// `pkey_free(pkey)`.
  case pkeyFree(key: Int32)
  /// `pkey_mprotect(addr, length, prot, pkey)`; key -1 is `mprotect`.
  case pkeyMprotect(addr: UInt64, length: UInt64, prot: Int32, key: Int32)
  /// `wrpkru`: sets the thread's PKRU (returns 0). Without protection keys the instruction
  /// does not exist: both sides answer `EOPNOTSUPP` instead of raising SIGILL.
  case wrpkru(UInt32)
  /// `shmget(key, size, flags)`: success returns `slot` on both sides (the kernels' ids differ),
  /// and later ops name the segment by its slot (0-3).
  case shmget(key: Int32, size: UInt64, flags: Int32, slot: Int)
  /// `shmat(id of slot, addr, flags)`; slot -1 (or one whose shmget failed) is id -1.
  case shmat(slot: Int, addr: UInt64, flags: Int32)
  case shmdt(addr: UInt64)
  /// `shmctl(id of slot, cmd, buf)`; for `IPC_STAT` the result is `shm_nattch`.
  case shmctl(slot: Int, cmd: Int32)
  /// `brk(addr)`, with `relative` the sequence's initial break plus `addr` (the host child's is
  /// wherever its parent's heap ends; the engine's is its `start_brk`), else `addr` itself. The
  /// result is the new break less the initial one, on both sides.
  case brk(addr: UInt64, relative: Bool)
  /// `munmap(initial break + offset, length)`: the heap that brk grew.
  case heapMunmap(offset: UInt64, length: UInt64)
  /// `mseal(addr, length, flags)` (Linux 6.10).
  case mseal(addr: UInt64, length: UInt64, flags: UInt64)
  /// `mlockall(flags)`.
  case mlockall(flags: Int32)
  /// `munlockall()`.
  case munlockall

  /// The call's name as the replay format writes it.
  public var name: String {
    switch self {
    case .mmap: "mmap"
    case .munmap: "munmap"
    case .mprotect: "mprotect"
    case .madvise: "madvise"
    case .mremap: "mremap"
    case .mlock: "mlock"
    case .mlock2: "mlock2"
    case .munlock: "munlock"
    case .mincore: "mincore"
    case .load: "load"
    case .store: "store"
    case .maps: "maps"
    case .pkeyAlloc: "pkey_alloc"
    case .pkeyFree: "pkey_free"
    case .pkeyMprotect: "pkey_mprotect"
    case .wrpkru: "wrpkru"
    case .shmget: "shmget"
    case .shmat: "shmat"
    case .shmdt: "shmdt"
    case .shmctl: "shmctl"
    case .brk: "brk"
    case .heapMunmap: "munmap"
    case .mseal: "mseal"
    case .mlockall: "mlockall"
    case .munlockall: "munlockall"
    }
  }

  /// Whether a successful result may land anywhere (compared modulo placement).
  var placementFree: Bool {
    switch self {
    case .mmap(_, _, _, let flags): flags & (MapFlagBits.fixed | MapFlagBits.fixedNoReplace) == 0
    case .mremap(_, _, _, let flags, _): flags & 1 != 0 && flags & 2 == 0
    default: false
    }
  }

  /// The length a placement-free result covers.
  var resultLength: UInt64 {
    switch self {
    case .mmap(_, let length, _, _): length
    case .mremap(_, _, let newSize, _, _): newSize
    default: 0
    }
  }
}

/// The `MAP_*` bits this module needs by value (the engine's `MapFlags` has them all).
enum MapFlagBits {
  static let fixed: Int32 = 0x10
  static let fixedNoReplace: Int32 = 0x100000
}

/// The address range the sequences work in, free on both sides.
///
/// In the host child, `[reserveStart, reserveStart + reserveLength)` (the window plus a margin on
/// each side) is reserved by the parent with a PROT_NONE mapping and unmapped first thing in the
/// child, so no mapping of the process touches the window and nothing can merge with it.
public struct ConformWindow: Sendable, Equatable {
  public var start: UInt64
  public var pages: UInt64
  /// Unmapped pages on each side of the window in the host child. Loads and stores may probe
  /// them; nothing maps them.
  public var marginPages: UInt64

  public init(start: UInt64 = 0x1000_0000_0000, pages: UInt64 = 64, marginPages: UInt64 = 16) {
    self.start = start
    self.pages = pages
    self.marginPages = marginPages
  }

  /// The huge-page window of `faultline conform --window thp`: 8 MiB (four PMD-sized ranges) at
  /// `0x200000000000`, 2 MiB aligned, so that every 2 MiB range of it can hold a PMD-mapped
  /// transparent huge page. Apart from the default window, so both can be reserved at once.
  public static let thp = ConformWindow(start: 0x2000_0000_0000, pages: 4 * hugePages, marginPages: 16)

  /// Base pages in one PMD-sized huge page (`HPAGE_PMD_NR`).
  public static let hugePages: UInt64 = 512
  /// Bytes in one PMD-sized huge page (2 MiB).
  public static let hugeSize: UInt64 = hugePages << Page.shift

  /// The whole 2 MiB-aligned ranges in the window (0 when it has none).
  public var hugeRanges: UInt64 {
    let first = (start + Self.hugeSize - 1) & ~(Self.hugeSize - 1)
    return first >= end ? 0 : (end - first) / Self.hugeSize
  }

  /// The start of huge range `index` (the first 2 MiB boundary at or above `start`, and on).
  public func hugeRange(_ index: UInt64) -> UInt64 {
    ((start + Self.hugeSize - 1) & ~(Self.hugeSize - 1)) + index * Self.hugeSize
  }

  public var length: UInt64 { pages << Page.shift }
  public var end: UInt64 { start + length }
  public var reserveStart: UInt64 { start - (marginPages << Page.shift) }
  public var reserveLength: UInt64 { (pages + 2 * marginPages) << Page.shift }

  /// Whether `[addr, addr+length)` lies inside the window (where results are compared exactly).
  public func contains(_ addr: UInt64, _ length: UInt64) -> Bool {
    addr >= start && addr < end && length <= end - addr
  }
}
