/// x86-64 page-table entry bits (`arch/x86/include/asm/pgtable_types.h`), shared by all four levels.
///
/// Faultline's "physical address" is an offset into its `PhysicalMemory` arena, so an entry's
/// address bits hold `pfn << 12`.
package struct PTE: Equatable, Sendable, CustomStringConvertible {
  /// The entry's 64 bits.
  package var raw: UInt64
  /// The entry whose bits are `raw`.
  @inline(__always) package init(raw: UInt64) { self.raw = raw }

  /// `_PAGE_PRESENT`: the hardware may use the entry.
  package static let present: UInt64 = 1 << 0
  /// `_PAGE_RW`: stores are allowed.
  package static let write: UInt64 = 1 << 1
  /// `_PAGE_USER`: reachable from user mode.
  package static let user: UInt64 = 1 << 2
  /// `_PAGE_ACCESSED`: set by the walker when the entry is used.
  package static let accessed: UInt64 = 1 << 5
  /// `_PAGE_DIRTY`: set by the walker on a store.
  package static let dirty: UInt64 = 1 << 6
  /// `_PAGE_PSE` (bit 7) in a PMD entry: the entry maps a 2 MiB huge page instead of naming a
  /// PTE table (`pmd_trans_huge`). Never set in a PTE (where bit 7 would be PAT).
  package static let huge: UInt64 = 1 << 7
  /// `_PAGE_PROTNONE` (the global bit reused): a PROT_NONE mapping that keeps its frame.
  static let protNone: UInt64 = 1 << 8
  /// `_PAGE_SPECIAL` (software bit 1): no `struct page` behind it (the zero frame).
  static let special: UInt64 = 1 << 9
  /// The guard marker (`PTE_MARKER_GUARD`, from `MADV_GUARD_INSTALL`): a non-present entry with
  /// only this software bit (`_PAGE_SOFTW2`, bit 10) set. Linux encodes it as a swap-type PTE
  /// marker; Faultline has no swap entries, so one bit that no present entry or PROT_NONE entry
  /// carries alone says the same. An access through it is `VM_FAULT_SIGSEGV`.
  package static let guardMarker: UInt64 = 1 << 10
  /// `_PAGE_NX` (bit 63): no instruction fetch.
  package static let noExecute: UInt64 = 1 << 63
  /// `_PAGE_BIT_PKEY_BIT0`: the protection key sits in bits 59-62.
  package static let pkeyShift: UInt64 = 59
  /// `_PAGE_PKEY_MASK`: the four protection-key bits (59-62).
  static let pkeyMask: UInt64 = 0xF << 59
  /// `PTE_PFN_MASK`: the physical-address bits (12-51).
  static let addressMask: UInt64 = 0x000F_FFFF_FFFF_F000

  /// Entry for an upper-level table (PGD, PUD, PMD) pointing at a lower table page.
  @inline(__always) package static func table(_ pfn: PFN) -> PTE {
    PTE(raw: pfn.physicalAddress | present | write | user | accessed)
  }

  /// `pte_none`: the entry is all zeros.
  @inline(__always) package var isNone: Bool { raw == 0 }
  /// The present bit is set (a PROT_NONE entry is not present; see `mapsFrame`).
  @inline(__always) package var isPresent: Bool { raw & Self.present != 0 }
  /// `pte_write`.
  @inline(__always) package var isWritable: Bool { raw & Self.write != 0 }
  /// `pte_dirty`.
  @inline(__always) package var isDirty: Bool { raw & Self.dirty != 0 }
  /// `pte_special`: maps the zero frame.
  @inline(__always) package var isSpecial: Bool { raw & Self.special != 0 }
  /// `pte_protnone`: a PROT_NONE entry that keeps its frame but is not present.
  @inline(__always) package var isProtNone: Bool { raw & (Self.present | Self.protNone) == Self.protNone }
  /// `is_guard_pte_marker`: the entry is a guard marker and nothing else.
  @inline(__always) package var isGuardMarker: Bool { raw == Self.guardMarker }
  /// Maps a frame (present, or PROT_NONE but still holding one).
  @inline(__always) package var mapsFrame: Bool { raw & (Self.present | Self.protNone) != 0 }
  /// Whether a PMD entry names a PTE table (present, not PSE), in one signed test of its low
  /// byte, as cheap as the present test alone on the fault path: a PMD entry is 0, a table
  /// entry (`table`: low byte 0x27, positive) or a huge leaf (PSE is bit 7: negative). Valid
  /// only for PMD entries, which are never non-zero without being one of those.
  @inline(__always) package static func pmdNamesTable(_ e: UInt64) -> Bool { Int8(truncatingIfNeeded: e) > 0 }
  /// `pmd_trans_huge` for a PMD entry: present and a leaf (PSE), not a table.
  @inline(__always) package var isHugePMD: Bool { raw & (Self.present | Self.huge) == Self.present | Self.huge }
  /// `pte_pfn`: the frame the entry maps, or the table page it points to.
  @inline(__always) package var pfn: PFN { PFN(physical: raw & Self.addressMask) }
  /// The protection key the hardware checks against PKRU.
  @inline(__always) package var pkey: Int { Int((raw & Self.pkeyMask) >> Self.pkeyShift) }

  package var description: String {
    if isNone { return "pte none" }
    if isGuardMarker { return "pte guard marker" }
    var s = "pte \(pfn)"
    if isPresent { s += " P" }
    if isWritable { s += " W" }
    if raw & Self.user != 0 { s += " U" }
    if raw & Self.accessed != 0 { s += " A" }
    if isDirty { s += " D" }
    if raw & Self.huge != 0 { s += " PSE" }
    if raw & Self.protNone != 0 { s += " PROTNONE" }
    if isSpecial { s += " SPECIAL" }
    if raw & Self.noExecute != 0 { s += " NX" }
    if pkey != 0 { s += " PKEY\(pkey)" }
    return s
  }
}
