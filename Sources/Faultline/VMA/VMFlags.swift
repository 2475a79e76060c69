/// `vm_flags` bits with Linux's values (`include/linux/mm.h`).
package struct VMFlags: OptionSet, Hashable, Sendable {
  /// The `vm_flags` word.
  package let rawValue: UInt64
  /// The flags whose bits are set in `rawValue`.
  package init(rawValue: UInt64) { self.rawValue = rawValue }

  /// `VM_READ`: loads are allowed.
  package static let read = VMFlags(rawValue: 0x0000_0001)
  /// `VM_WRITE`: stores are allowed (on a private mapping, by copy on write).
  package static let write = VMFlags(rawValue: 0x0000_0002)
  /// `VM_EXEC`: instruction fetch is allowed; without it the PTEs carry NX.
  package static let exec = VMFlags(rawValue: 0x0000_0004)
  /// `VM_SHARED`: a writable shared mapping (stores reach the backing object).
  package static let shared = VMFlags(rawValue: 0x0000_0008)
  /// `VM_MAYREAD`: `mprotect` may add `VM_READ`.
  static let mayRead = VMFlags(rawValue: 0x0000_0010)
  /// `VM_MAYWRITE`: `mprotect` may add `VM_WRITE` (clear on a shared mapping of a file not open
  /// for writing).
  static let mayWrite = VMFlags(rawValue: 0x0000_0020)
  /// `VM_MAYEXEC`: `mprotect` may add `VM_EXEC`.
  static let mayExec = VMFlags(rawValue: 0x0000_0040)
  /// `VM_MAYSHARE`: any `MAP_SHARED` mapping, writable or not (the `s` of a maps line).
  static let mayShare = VMFlags(rawValue: 0x0000_0080)
  /// `VM_GROWSDOWN`: a stack that grows down on a fault just below it (`MAP_GROWSDOWN`).
  package static let growsDown = VMFlags(rawValue: 0x0000_0100)
  /// `VM_PFNMAP`: raw frames with no `struct page` (never set by Faultline; part of `VM_SPECIAL`).
  static let pfnMap = VMFlags(rawValue: 0x0000_0400)
  /// `VM_LOCKED`: pages are populated and kept resident (`mlock`, `MAP_LOCKED`).
  package static let locked = VMFlags(rawValue: 0x0000_2000)
  /// `VM_IO`: a device mapping (never set by Faultline; part of `VM_SPECIAL`).
  static let io = VMFlags(rawValue: 0x0000_4000)
  /// `VM_SEQ_READ`: `MADV_SEQUENTIAL`.
  static let seqRead = VMFlags(rawValue: 0x0000_8000)
  /// `VM_RAND_READ`: `MADV_RANDOM`.
  static let randRead = VMFlags(rawValue: 0x0001_0000)
  /// `VM_DONTCOPY`: not copied into a `fork` child (`MADV_DONTFORK`).
  package static let dontCopy = VMFlags(rawValue: 0x0002_0000)
  /// `VM_DONTEXPAND`: `mremap` may not grow it (part of `VM_SPECIAL`).
  static let dontExpand = VMFlags(rawValue: 0x0004_0000)
  /// `VM_LOCKONFAULT`: locked, but populated only as it faults (`MLOCK_ONFAULT`).
  package static let lockOnFault = VMFlags(rawValue: 0x0008_0000)
  /// `VM_ACCOUNT`: charged to the commit accounting (private writable memory).
  static let account = VMFlags(rawValue: 0x0010_0000)
  /// `VM_NORESERVE`: not charged to the commit accounting (`MAP_NORESERVE`).
  package static let noReserve = VMFlags(rawValue: 0x0020_0000)
  /// `VM_HUGETLB`: a hugetlbfs mapping.
  static let hugeTLB = VMFlags(rawValue: 0x0040_0000)
  /// `VM_SYNC`: synchronous page faults for DAX (`MAP_SYNC`).
  package static let sync = VMFlags(rawValue: 0x0080_0000)
  /// `VM_WIPEONFORK`: a `fork` child sees it zero-filled (`MADV_WIPEONFORK`).
  package static let wipeOnFork = VMFlags(rawValue: 0x0200_0000)
  /// `VM_DONTDUMP`: left out of core dumps (`MADV_DONTDUMP`).
  package static let dontDump = VMFlags(rawValue: 0x0400_0000)
  /// `VM_SOFTDIRTY`: soft-dirty tracking; ignored by the merge rules.
  static let softDirty = VMFlags(rawValue: 0x0800_0000)
  /// `VM_MIXEDMAP`: a mix of frames with and without `struct page` (part of `VM_SPECIAL`).
  static let mixedMap = VMFlags(rawValue: 0x1000_0000)
  /// `VM_HUGEPAGE`: `MADV_HUGEPAGE`.
  static let hugePage = VMFlags(rawValue: 0x2000_0000)
  /// `VM_NOHUGEPAGE`: `MADV_NOHUGEPAGE` (also set on `MAP_STACK` mappings).
  static let noHugePage = VMFlags(rawValue: 0x4000_0000)
  /// `VM_PKEY_BIT0`..`VM_PKEY_BIT3` (x86: `VM_HIGH_ARCH_0`..`3`, bits 32-35): the VMA's
  /// protection key. Being flags, keys take part in the merge rules (VMAs with different keys
  /// never merge) and travel with splits, mremap and fork.
  static let pkeyBits = VMFlags(rawValue: 0xF << VMFlags.pkeyShift)
  /// `VM_PKEY_SHIFT`.
  package static let pkeyShift: UInt64 = 32
  /// `VM_DROPPABLE` (bit 40 on 64-bit, Linux 6.11): a `MAP_DROPPABLE` mapping. `mlock` leaves
  /// it unlocked, `MADV_KEEPONFORK` and `MADV_DODUMP` refuse it (`EINVAL`).
  package static let droppable = VMFlags(rawValue: 1 << 40)
  /// `VM_SEALED` (`VM_SEALED_BIT` 42, 64-bit only; Linux 6.10 used bit 63): `mseal` sealed the
  /// VMA, so munmap, mremap, mprotect, `MAP_FIXED` over it and discarding read-only anonymous
  /// memory are `EPERM`. Being a flag, it keeps sealed and unsealed VMAs from merging and travels
  /// with splits and fork.
  package static let sealed = VMFlags(rawValue: 1 << 42)

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
