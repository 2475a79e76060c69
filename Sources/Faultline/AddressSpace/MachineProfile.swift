/// What makes one Linux machine's mm answers differ from another's: CPU features and kernel
/// settings, in one value. A `Machine` follows one profile; nothing else in the engine reads the
/// host's settings.
///
/// `MachineProfile.host` is this machine's (read once from `/proc/cpuinfo`, `/proc/sys/vm`,
/// `/sys/kernel/mm`, and one probe mmap for the LSM minimum); it is the engine's default, so that
/// on a given machine the engine answers as that machine's Linux does. Tests of a semantic pin
/// `.reference` or `.x86PKU` instead, and set the field they test, so that they pass on any host.
///
/// Which settings the engine follows today: `protectionKeys`, `mmapMinAddr`, `lsmMmapMinAddr`,
/// `maxMapCount`, `shmemTHP` for placement (`shmem_get_unmapped_area`), `legacyVALayout`
/// (through `AddressSpaceConfig`), the hugetlb pool (`Machine.hugetlb`: the page counts,
/// the sizes, the default size), and the anonymous THP settings `thpEnabled`, `thpPMDEnabled`
/// and `thpUseZeroPage` (`TransparentHugePage`). The others (THP `defrag`, overcommit, KSM,
/// 56-bit `TASK_SIZE`) are read and carried, and the README lists them as not modelled yet.
public struct MachineProfile: Sendable, Equatable {
  /// Memory protection keys (`X86_FEATURE_OSPKE`).
  public enum ProtectionKeys: String, Sendable, CaseIterable {
    /// No protection keys: `pkey_alloc` is EINVAL (then ENOSPC), every VMA has key 0, PROT_EXEC
    /// implies read.
    case none
    /// x86 PKU with the kernel's support: 16 keys, a PKRU register per thread, execute-only
    /// memory for PROT_EXEC alone.
    case x86
  }

  /// `/sys/kernel/mm/transparent_hugepage/enabled`.
  public enum THPEnabled: String, Sendable, CaseIterable {
    /// THP for every eligible anonymous mapping.
    case always
    /// THP only in `MADV_HUGEPAGE` regions.
    case madvise
    /// No THP.
    case never
  }

  /// `/sys/kernel/mm/transparent_hugepage/hugepages-<size>kB/enabled`: one THP size's own
  /// setting (multi-size THP, Linux 6.8). Faultline implements only the PMD size (2048 kB); the
  /// smaller sizes' files are not read.
  public enum THPSizeEnabled: String, Sendable, CaseIterable {
    /// This size in every eligible anonymous mapping, whatever the global `enabled` says.
    case always
    /// Follow the global `enabled` (the only choice before 6.8, so the value of a kernel
    /// without the per-size files).
    case inherit
    /// This size only in `MADV_HUGEPAGE` regions.
    case madvise
    /// Never this size.
    case never
  }

  /// `/sys/kernel/mm/transparent_hugepage/defrag`.
  public enum THPDefrag: String, Sendable, CaseIterable {
    /// Direct reclaim and compaction on a THP allocation failure.
    case always
    /// Wake kswapd/kcompactd and fall back to base pages.
    case `defer` = "defer"
    /// Direct reclaim in `MADV_HUGEPAGE` regions, defer elsewhere.
    case deferMadvise = "defer+madvise"
    /// Direct reclaim only in `MADV_HUGEPAGE` regions.
    case madvise
    /// Never reclaim or compact for THP.
    case never
  }

  /// `/sys/kernel/mm/transparent_hugepage/shmem_enabled`.
  public enum ShmemTHP: String, Sendable, CaseIterable {
    /// Huge pages for every shmem/tmpfs mapping.
    case always
    /// Huge pages only where the file size covers the whole huge page.
    case withinSize = "within_size"
    /// Huge pages only in `MADV_HUGEPAGE` regions.
    case advise
    /// No huge pages for shmem.
    case never
    /// Emergency setting: no huge pages, for every mount.
    case deny
    /// Huge pages for every mount, for testing.
    case force
  }

  /// `vm.overcommit_memory`.
  public enum Overcommit: Int, Sendable, CaseIterable {
    /// 0: heuristic overcommit.
    case heuristic = 0
    /// 1: always overcommit.
    case always = 1
    /// 2: strict accounting (`overcommit_ratio`).
    case never = 2
  }

  /// The CPU's protection keys, as the kernel enables them.
  public var protectionKeys: ProtectionKeys
  /// `vm.mmap_min_addr` (`dac_mmap_min_addr`): `MAP_FIXED` below it is EPERM without
  /// `CAP_SYS_RAWIO`.
  public var mmapMinAddr: UInt64
  /// `CONFIG_LSM_MMAP_MIN_ADDR` (0 when the kernel has none). The kernel's `mmap_min_addr` is
  /// the larger of the two: hints are raised to it and placement starts there, but the
  /// `MAP_FIXED` check uses `mmapMinAddr` alone (without an LSM that enforces it).
  public var lsmMmapMinAddr: UInt64
  /// `vm.legacy_va_layout`: bottom-up placement from `TASK_UNMAPPED_BASE` when set
  /// (`AddressSpaceConfig.mmapIsLegacy`).
  public var legacyVALayout: Bool
  /// `/sys/kernel/mm/transparent_hugepage/enabled`.
  public var thpEnabled: THPEnabled
  /// `/sys/kernel/mm/transparent_hugepage/defrag`.
  public var thpDefrag: THPDefrag
  /// `/sys/kernel/mm/transparent_hugepage/shmem_enabled`.
  public var shmemTHP: ShmemTHP
  /// `/sys/kernel/mm/transparent_hugepage/use_zero_page`: a read fault in a THP-eligible range
  /// maps the huge zero page (else it allocates a huge page, as a write would).
  public var thpUseZeroPage: Bool
  /// `/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/enabled`: the PMD size's own setting
  /// (`inherit` follows `thpEnabled`).
  public var thpPMDEnabled: THPSizeEnabled
  /// `/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages`.
  public var nrHugepages: Int
  /// `/sys/kernel/mm/hugepages/hugepages-2048kB/nr_overcommit_hugepages`.
  public var nrOvercommitHugepages: Int
  /// Whether the kernel has 1 GiB huge pages (`/sys/kernel/mm/hugepages/hugepages-1048576kB`,
  /// x86's `X86_FEATURE_GBPAGES`): without them `MAP_HUGE_1GB` is `EINVAL`.
  public var hugePages1G: Bool
  /// `/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages`.
  public var nrHugepages1G: Int
  /// `/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_overcommit_hugepages`.
  public var nrOvercommitHugepages1G: Int
  /// `Hugepagesize` in `/proc/meminfo` (`default_hugepagesz=`): the size `MAP_HUGETLB` gets
  /// without a `MAP_HUGE_*` encoding, and the one `vm.nr_hugepages` sets.
  public var defaultHugePageSize: HugePageSize
  /// `vm.max_map_count`.
  public var maxMapCount: Int
  /// `vm.overcommit_memory`.
  public var overcommitMemory: Overcommit
  /// Whether the kernel has KSM (`/sys/kernel/mm/ksm`).
  public var ksm: Bool
  /// Bits of user address space the CPU and kernel can give: 47 (4-level paging) or 56 (LA57).
  /// Either way mmap places below 2^47 unless a hint asks for more; Faultline's MMU walk covers
  /// 47 bits only.
  public var taskSizeBits: Int

  /// A profile with every setting given.
  public init(
    protectionKeys: ProtectionKeys, mmapMinAddr: UInt64, lsmMmapMinAddr: UInt64, legacyVALayout: Bool,
    thpEnabled: THPEnabled, thpDefrag: THPDefrag, shmemTHP: ShmemTHP, nrHugepages: Int,
    nrOvercommitHugepages: Int, maxMapCount: Int, overcommitMemory: Overcommit, ksm: Bool, taskSizeBits: Int,
    hugePages1G: Bool = true, nrHugepages1G: Int = 0, nrOvercommitHugepages1G: Int = 0,
    defaultHugePageSize: HugePageSize = .size2M, thpUseZeroPage: Bool = true, thpPMDEnabled: THPSizeEnabled = .inherit
  ) {
    self.protectionKeys = protectionKeys
    self.mmapMinAddr = mmapMinAddr
    self.lsmMmapMinAddr = lsmMmapMinAddr
    self.legacyVALayout = legacyVALayout
    self.thpEnabled = thpEnabled
    self.thpDefrag = thpDefrag
    self.shmemTHP = shmemTHP
    self.nrHugepages = nrHugepages
    self.nrOvercommitHugepages = nrOvercommitHugepages
    self.maxMapCount = maxMapCount
    self.overcommitMemory = overcommitMemory
    self.ksm = ksm
    self.taskSizeBits = taskSizeBits
    self.hugePages1G = hugePages1G
    self.nrHugepages1G = nrHugepages1G
    self.nrOvercommitHugepages1G = nrOvercommitHugepages1G
    self.defaultHugePageSize = defaultHugePageSize
    self.thpUseZeroPage = thpUseZeroPage
    self.thpPMDEnabled = thpPMDEnabled
  }

  /// The engine as it behaved before profiles: an x86-64 machine without protection keys,
  /// `mmap_min_addr` 4096 and no LSM minimum, the default `max_map_count`, THP on madvise (the
  /// PMD size inheriting it, the huge zero page in use), and
  /// an empty hugetlb pool with 2 MiB and 1 GiB pages (2 MiB the default), as a stock kernel
  /// boots.
  public static let reference = MachineProfile(
    protectionKeys: .none, mmapMinAddr: Page.size, lsmMmapMinAddr: 0, legacyVALayout: false, thpEnabled: .madvise,
    thpDefrag: .madvise, shmemTHP: .never, nrHugepages: 0, nrOvercommitHugepages: 0, maxMapCount: 65530,
    overcommitMemory: .heuristic, ksm: true, taskSizeBits: 47)

  /// `.reference` on a CPU with protection keys (Intel since Skylake-SP, AMD since Zen 3).
  public static let x86PKU: MachineProfile = {
    var p = MachineProfile.reference
    p.protectionKeys = .x86
    return p
  }()

  /// The largest of the two minimums: where hints are raised to and placement stops
  /// (the kernel's `mmap_min_addr` after `update_mmap_min_addr`).
  public var effectiveMmapMinAddr: UInt64 { max(mmapMinAddr, lsmMmapMinAddr) }

  /// Number of protection keys (`arch_max_pkey`): 16 on x86 with PKU, else 1.
  public var maxPkey: Int { protectionKeys == .x86 ? 16 : 1 }
}
