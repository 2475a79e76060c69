/// `vm_flags` bits with Linux's values (`include/linux/mm.h`).
public struct VMFlags: OptionSet, Hashable, Sendable {
  public let rawValue: UInt64
  public init(rawValue: UInt64) { self.rawValue = rawValue }

  public static let read = VMFlags(rawValue: 0x0000_0001)
  public static let write = VMFlags(rawValue: 0x0000_0002)
  public static let exec = VMFlags(rawValue: 0x0000_0004)
  public static let shared = VMFlags(rawValue: 0x0000_0008)
  public static let mayRead = VMFlags(rawValue: 0x0000_0010)
  public static let mayWrite = VMFlags(rawValue: 0x0000_0020)
  public static let mayExec = VMFlags(rawValue: 0x0000_0040)
  public static let mayShare = VMFlags(rawValue: 0x0000_0080)
  public static let growsDown = VMFlags(rawValue: 0x0000_0100)
  public static let pfnMap = VMFlags(rawValue: 0x0000_0400)
  public static let locked = VMFlags(rawValue: 0x0000_2000)
  public static let io = VMFlags(rawValue: 0x0000_4000)
  public static let seqRead = VMFlags(rawValue: 0x0000_8000)
  public static let randRead = VMFlags(rawValue: 0x0001_0000)
  public static let dontCopy = VMFlags(rawValue: 0x0002_0000)
  public static let dontExpand = VMFlags(rawValue: 0x0004_0000)
  public static let lockOnFault = VMFlags(rawValue: 0x0008_0000)
  public static let account = VMFlags(rawValue: 0x0010_0000)
  public static let noReserve = VMFlags(rawValue: 0x0020_0000)
  public static let hugeTLB = VMFlags(rawValue: 0x0040_0000)
  public static let sync = VMFlags(rawValue: 0x0080_0000)
  public static let wipeOnFork = VMFlags(rawValue: 0x0200_0000)
  public static let dontDump = VMFlags(rawValue: 0x0400_0000)
  public static let softDirty = VMFlags(rawValue: 0x0800_0000)
  public static let mixedMap = VMFlags(rawValue: 0x1000_0000)
  public static let hugePage = VMFlags(rawValue: 0x2000_0000)
  public static let noHugePage = VMFlags(rawValue: 0x4000_0000)
  /// `VM_PKEY_BIT0`..`VM_PKEY_BIT3` (x86: `VM_HIGH_ARCH_0`..`3`, bits 32-35): the VMA's
  /// protection key. Being flags, keys take part in the merge rules (VMAs with different keys
  /// never merge) and travel with splits, mremap and fork.
  public static let pkeyBits = VMFlags(rawValue: 0xF << VMFlags.pkeyShift)
  /// `VM_PKEY_SHIFT`.
  public static let pkeyShift: UInt64 = 32

  /// `VM_SPECIAL`: never merged, never grown by mremap.
  public static let special: VMFlags = [.io, .dontExpand, .pfnMap, .mixedMap]
  /// `VM_ACCESS_FLAGS`.
  public static let access: VMFlags = [.read, .write, .exec]
  /// `VM_STACK` on x86-64.
  public static let stack: VMFlags = .growsDown

  /// `vma_is_accessible`.
  @inline(__always) public var isAccessible: Bool { !intersection(Self.access).isEmpty }

  /// `vma_pkey`: the protection key (0 unless a key was set).
  @inline(__always) public var pkey: Int { Int((rawValue >> Self.pkeyShift) & 0xF) }

  /// `calc_vm_prot_bits` for PROT_READ/WRITE/EXEC with protection key `pkey`.
  public static func fromProt(_ prot: Int32, pkey: Int = 0) -> VMFlags {
    var f = VMFlags(rawValue: UInt64(pkey & 0xF) << pkeyShift)
    if prot & Prot.read != 0 { f.insert(.read) }
    if prot & Prot.write != 0 { f.insert(.write) }
    if prot & Prot.exec != 0 { f.insert(.exec) }
    return f
  }

  /// The bits of a PTE that follow the VMA's flags besides present/write (the arch part of
  /// `vm_get_page_prot` on x86-64): NX unless `VM_EXEC`, and the protection key in bits 59-62.
  @inline(__always) public var ptePageProt: UInt64 {
    (contains(.exec) ? 0 : PTE.noExecute) | (UInt64(pkey) << PTE.pkeyShift)
  }

  /// The four permission characters of a maps line (`rwxp`/`rwxs`).
  public var permissionString: String {
    (contains(.read) ? "r" : "-") + (contains(.write) ? "w" : "-") + (contains(.exec) ? "x" : "-")
      + (contains(.mayShare) ? "s" : "p")
  }
}
