/// `vm_flags` bits with Linux's values (`include/linux/mm.h`).
package struct VMFlags: OptionSet, Hashable, Sendable {
  package let rawValue: UInt64
  package init(rawValue: UInt64) { self.rawValue = rawValue }

  package static let read = VMFlags(rawValue: 0x0000_0001)
  package static let write = VMFlags(rawValue: 0x0000_0002)
  package static let exec = VMFlags(rawValue: 0x0000_0004)
  package static let shared = VMFlags(rawValue: 0x0000_0008)
  static let mayRead = VMFlags(rawValue: 0x0000_0010)
  static let mayWrite = VMFlags(rawValue: 0x0000_0020)
  static let mayExec = VMFlags(rawValue: 0x0000_0040)
  static let mayShare = VMFlags(rawValue: 0x0000_0080)
  package static let growsDown = VMFlags(rawValue: 0x0000_0100)
  static let pfnMap = VMFlags(rawValue: 0x0000_0400)
  package static let locked = VMFlags(rawValue: 0x0000_2000)
  static let io = VMFlags(rawValue: 0x0000_4000)
  static let seqRead = VMFlags(rawValue: 0x0000_8000)
  static let randRead = VMFlags(rawValue: 0x0001_0000)
  package static let dontCopy = VMFlags(rawValue: 0x0002_0000)
  static let dontExpand = VMFlags(rawValue: 0x0004_0000)
  package static let lockOnFault = VMFlags(rawValue: 0x0008_0000)
  static let account = VMFlags(rawValue: 0x0010_0000)
  package static let noReserve = VMFlags(rawValue: 0x0020_0000)
  static let hugeTLB = VMFlags(rawValue: 0x0040_0000)
  package static let sync = VMFlags(rawValue: 0x0080_0000)
  package static let wipeOnFork = VMFlags(rawValue: 0x0200_0000)
  package static let dontDump = VMFlags(rawValue: 0x0400_0000)
  static let softDirty = VMFlags(rawValue: 0x0800_0000)
  static let mixedMap = VMFlags(rawValue: 0x1000_0000)
  static let hugePage = VMFlags(rawValue: 0x2000_0000)
  static let noHugePage = VMFlags(rawValue: 0x4000_0000)
  /// `VM_PKEY_BIT0`..`VM_PKEY_BIT3` (x86: `VM_HIGH_ARCH_0`..`3`, bits 32-35): the VMA's
  /// protection key. Being flags, keys take part in the merge rules (VMAs with different keys
  /// never merge) and travel with splits, mremap and fork.
  static let pkeyBits = VMFlags(rawValue: 0xF << VMFlags.pkeyShift)
  /// `VM_PKEY_SHIFT`.
  package static let pkeyShift: UInt64 = 32

  /// `VM_SPECIAL`: never merged, never grown by mremap.
  static let special: VMFlags = [.io, .dontExpand, .pfnMap, .mixedMap]
  /// `VM_ACCESS_FLAGS`.
  package static let access: VMFlags = [.read, .write, .exec]
  /// `VM_STACK` on x86-64.
  package static let stack: VMFlags = .growsDown

  /// `vma_is_accessible`.
  @inline(__always) var isAccessible: Bool { !intersection(Self.access).isEmpty }

  /// `vma_pkey`: the protection key (0 unless a key was set).
  @inline(__always) package var pkey: Int { Int((rawValue >> Self.pkeyShift) & 0xF) }

  /// `calc_vm_prot_bits` for PROT_READ/WRITE/EXEC with protection key `pkey`.
  static func fromProt(_ prot: Prot, pkey: Int = 0) -> VMFlags {
    var f = VMFlags(rawValue: UInt64(pkey & 0xF) << pkeyShift)
    if prot.contains(.read) { f.insert(.read) }
    if prot.contains(.write) { f.insert(.write) }
    if prot.contains(.exec) { f.insert(.exec) }
    return f
  }

  /// The bits of a PTE that follow the VMA's flags besides present/write (the arch part of
  /// `vm_get_page_prot` on x86-64): NX unless `VM_EXEC`, and the protection key in bits 59-62.
  @inline(__always) var ptePageProt: UInt64 {
    (contains(.exec) ? 0 : PTE.noExecute) | (UInt64(pkey) << PTE.pkeyShift)
  }

  /// The four permission characters of a maps line (`rwxp`/`rwxs`).
  var permissionString: String {
    (contains(.read) ? "r" : "-") + (contains(.write) ? "w" : "-") + (contains(.exec) ? "x" : "-")
      + (contains(.mayShare) ? "s" : "p")
  }
}
