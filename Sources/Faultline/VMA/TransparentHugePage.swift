/// Which ranges of an address space may be mapped by a PMD-sized transparent huge page: the
/// size, and the eligibility rules of `mm/huge_memory.c` (`__thp_vma_allowable_orders`,
/// `thp_vma_suitable_order`) for the one order Faultline implements, `HPAGE_PMD_ORDER`.
///
/// What is eligible, as Linux decides for a page fault:
/// - only private anonymous memory: shared anonymous memory and tmpfs are shmem, whose huge
///   pages (`shmem_enabled`) Faultline does not model; file mappings have no THP here; hugetlb
///   VMAs are never THP;
/// - not `VM_NOHUGEPAGE` (`MADV_NOHUGEPAGE`, and every `MAP_STACK` mapping since 6.7);
/// - the PMD size's setting allows it: `hugepages-2048kB/enabled` `always`, or `madvise` in a
///   `VM_HUGEPAGE` VMA, or `inherit` with the global `enabled` saying the same;
/// - the aligned 2 MiB range around the address lies wholly inside the VMA.
///
/// A VMA without an anon_vma yet is eligible (the fault makes one), as Linux allows `in_pf`.
/// `prctl(PR_SET_THP_DISABLE)` and the smaller multi-size THP orders are not modelled.
package enum TransparentHugePage {
  /// `HPAGE_PMD_ORDER`: a PMD-mapped huge page is 2^9 base pages.
  package static let order = 9
  /// `HPAGE_PMD_NR`: base pages in one.
  package static let pages = 1 << order
  /// `HPAGE_PMD_SIZE`: bytes in one (2 MiB), the span of one PMD entry.
  package static let size: UInt64 = PageTable.pmdSize
  /// `HPAGE_PMD_MASK`: the bits of an address that name its huge page.
  package static let mask: UInt64 = ~(size - 1)

  /// The start of the 2 MiB range holding `address` (`address & HPAGE_PMD_MASK`).
  @inline(__always) package static func roundDown(_ address: UInt64) -> UInt64 { address & mask }

  /// Whether `address` is 2 MiB aligned.
  @inline(__always) package static func isAligned(_ address: UInt64) -> Bool { address & ~mask == 0 }

  /// `thp_vma_allowable_order(vma, vm_flags, TVA_IN_PF, HPAGE_PMD_ORDER)`: whether a VMA with
  /// `flags`, anonymous (`isAnonymous`: private, no file, no shmem) or not, may hold PMD-mapped
  /// huge pages under `profile`. Says nothing about alignment; see `vmaSuitable`.
  package static func vmaAllowable(flags: VMFlags, isAnonymous: Bool, profile: MachineProfile) -> Bool {
    vmaAllowable(
      flags: flags, isAnonymous: isAnonymous, unadvised: settingAllows(profile, advised: false),
      advised: settingAllows(profile, advised: true))
  }

  /// `vmaAllowable` with the profile's answers for an unadvised and an advised VMA
  /// (`settingAllows`) already worked out, as the fault path keeps them.
  @inline(__always)
  static func vmaAllowable(flags: VMFlags, isAnonymous: Bool, unadvised: Bool, advised: Bool) -> Bool {
    if !isAnonymous || flags.contains(.hugeTLB) || flags.contains(.shared) { return false }
    // vma_thp_disabled: VM_NOHUGEPAGE (MMF_DISABLE_THP is not modelled).
    if flags.contains(.noHugePage) { return false }
    return flags.contains(.hugePage) ? advised : unadvised
  }

  /// `faultAllowed` with the profile's answers already worked out (see `vmaAllowable`).
  @inline(__always)
  static func faultAllowed(
    flags: VMFlags, isAnonymous: Bool, start: UInt64, end: UInt64, address: UInt64, unadvised: Bool, advised: Bool
  ) -> Bool {
    vmaAllowable(flags: flags, isAnonymous: isAnonymous, unadvised: unadvised, advised: advised)
      && vmaSuitable(start: start, end: end, address: address)
  }

  /// The sysfs half of `thp_vma_allowable_orders` for the PMD order: the per-size setting, and
  /// the global `enabled` where it says `inherit`; `advised` is `VM_HUGEPAGE`.
  package static func settingAllows(_ profile: MachineProfile, advised: Bool) -> Bool {
    switch profile.thpPMDEnabled {
    case .always: true
    case .madvise: advised
    case .never: false
    case .inherit:
      switch profile.thpEnabled {
      case .always: true
      case .madvise: advised
      case .never: false
      }
    }
  }

  /// `thp_vma_suitable_order` for an anonymous VMA `[start, end)`: the 2 MiB range holding
  /// `address` lies wholly inside it.
  @inline(__always)
  package static func vmaSuitable(start: UInt64, end: UInt64, address: UInt64) -> Bool {
    let haddr = roundDown(address)
    return haddr >= start && haddr &+ size <= end && haddr &+ size > haddr
  }

  /// Both checks: a fault at `address` in a VMA `[start, end)` with `flags` may map a PMD-sized
  /// huge page.
  package static func faultAllowed(
    flags: VMFlags, isAnonymous: Bool, start: UInt64, end: UInt64, address: UInt64, profile: MachineProfile
  ) -> Bool {
    vmaSuitable(start: start, end: end, address: address)
      && vmaAllowable(flags: flags, isAnonymous: isAnonymous, profile: profile)
  }
}
