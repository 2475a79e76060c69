/// `PROT_*` values for `mmap` and `mprotect`.
public enum Prot {
  public static let none: Int32 = 0
  public static let read: Int32 = 0x1
  public static let write: Int32 = 0x2
  public static let exec: Int32 = 0x4
  public static let growsDown: Int32 = 0x0100_0000
  public static let growsUp: Int32 = 0x0200_0000
}

/// `MAP_*` values for `mmap` (x86-64).
public enum MapFlags {
  public static let shared: Int32 = 0x01
  public static let `private`: Int32 = 0x02
  public static let sharedValidate: Int32 = 0x03
  public static let type: Int32 = 0x0f
  public static let fixed: Int32 = 0x10
  public static let anonymous: Int32 = 0x20
  public static let growsDown: Int32 = 0x0100
  public static let denyWrite: Int32 = 0x0800
  public static let executable: Int32 = 0x1000
  public static let locked: Int32 = 0x2000
  public static let noReserve: Int32 = 0x4000
  public static let populate: Int32 = 0x8000
  public static let nonBlock: Int32 = 0x10000
  public static let stack: Int32 = 0x20000
  public static let hugeTLB: Int32 = 0x40000
  public static let sync: Int32 = 0x80000
  public static let fixedNoReplace: Int32 = 0x100000
  public static let uninitialized: Int32 = 0x4000000
  /// `LEGACY_MAP_MASK`: the flags `MAP_SHARED_VALIDATE` accepts without checking. It predates
  /// `MAP_FIXED_NOREPLACE`, which `MAP_SHARED_VALIDATE` therefore refuses (EOPNOTSUPP).
  public static let legacyMask: Int32 =
    shared | `private` | fixed | anonymous | denyWrite | executable | uninitialized | growsDown | locked
    | noReserve | populate | nonBlock | stack | hugeTLB
}

/// `MADV_*` advice values.
public enum Advice {
  public static let normal: Int32 = 0
  public static let random: Int32 = 1
  public static let sequential: Int32 = 2
  public static let willNeed: Int32 = 3
  public static let dontNeed: Int32 = 4
  public static let free: Int32 = 8
  public static let remove: Int32 = 9
  public static let dontFork: Int32 = 10
  public static let doFork: Int32 = 11
  public static let mergeable: Int32 = 12
  public static let unmergeable: Int32 = 13
  public static let hugePage: Int32 = 14
  public static let noHugePage: Int32 = 15
  public static let dontDump: Int32 = 16
  public static let doDump: Int32 = 17
  public static let wipeOnFork: Int32 = 18
  public static let keepOnFork: Int32 = 19
  public static let cold: Int32 = 20
  public static let pageOut: Int32 = 21
  public static let populateRead: Int32 = 22
  public static let populateWrite: Int32 = 23
  public static let dontNeedLocked: Int32 = 24
  public static let collapse: Int32 = 25
  public static let hwPoison: Int32 = 100
  public static let softOffline: Int32 = 101
}
