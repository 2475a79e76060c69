/// The hugetlb pool (`mm/hugetlb.c`'s `struct hstate` for each size): how many huge pages the
/// machine holds, how many are free, reserved by mappings, or surplus, as `/proc/meminfo`'s
/// `HugePages_*` lines and `/sys/kernel/mm/hugepages/hugepages-*/` show them.
///
/// The pool is machine-wide (every address space of a `Machine` shares it) and starts from the
/// profile's `nr_hugepages` and `nr_overcommit_hugepages` for each size. It keeps Linux's
/// accounting exactly:
///
/// - `mmap` without `MAP_NORESERVE` reserves every huge page of the mapping up front
///   (`hugetlb_reserve_pages` → `hugetlb_acct_memory` → `gather_surplus_pages`): the free pages
///   not yet promised to another mapping, then surplus pages up to `nr_overcommit_hugepages`;
///   otherwise `ENOMEM`.
/// - A fault takes a page (`alloc_hugetlb_folio`): a reserved one consumes its reservation;
///   an unreserved one (`MAP_NORESERVE`) takes a free page nobody reserved, or a new surplus
///   page, or fails, which the fault delivers as `SIGBUS`.
/// - Freeing a page (`free_huge_folio`) gives a surplus page back to the system and returns a
///   persistent one to the free list; dropping unused reservations returns the surplus pages
///   gathered for them (`return_unused_surplus_pages`).
///
/// Faultline deliberately differs in what backs a huge page: the pool counts pages, and a
/// mapping's memory is the arena's 4 KiB frames, faulted one at a time (see `HugeTLBFile`).
/// Counts, errors and signals are Linux's; contiguity and `Rss` are not modelled.
public final class HugeTLBPool: @unchecked Sendable {
  /// The pool's figures for one size, as `/proc/meminfo` names them.
  public struct Status: Equatable, Sendable {
    /// `HugePages_Total` (`nr_hugepages`): persistent and surplus pages.
    public var total: Int
    /// `HugePages_Free` (`free_hugepages`): pages no mapping has faulted in, reserved or not.
    public var free: Int
    /// `HugePages_Rsvd` (`resv_hugepages`): pages promised to mappings and not yet faulted.
    public var reserved: Int
    /// `HugePages_Surp` (`surplus_hugepages`): pages above the persistent count.
    public var surplus: Int

    /// The figures as given.
    public init(total: Int, free: Int, reserved: Int, surplus: Int) {
      self.total = total
      self.free = free
      self.reserved = reserved
      self.surplus = surplus
    }
  }

  /// One size's counters and its `nr_overcommit_hugepages`.
  private struct HState {
    var status: Status
    var overcommit: Int
  }

  private let lock = PThreadMutex()
  /// Guarded by `lock`; only the sizes the machine supports.
  private var states: [HugePageSize: HState] = [:]
  /// The size `MAP_HUGETLB` without a size encoding gets (`default_hstate`, `Hugepagesize`).
  public let defaultSize: HugePageSize

  /// The pool `profile` describes: its persistent pages all free, nothing reserved.
  public init(profile: MachineProfile) {
    defaultSize = profile.defaultHugePageSize
    states[.size2M] = HState(
      status: Status(total: profile.nrHugepages, free: profile.nrHugepages, reserved: 0, surplus: 0),
      overcommit: profile.nrOvercommitHugepages)
    if profile.hugePages1G {
      states[.size1G] = HState(
        status: Status(total: profile.nrHugepages1G, free: profile.nrHugepages1G, reserved: 0, surplus: 0),
        overcommit: profile.nrOvercommitHugepages1G)
    }
  }

  /// Whether the machine has `size` (`size_to_hstate` is not `NULL`).
  public func supports(_ size: HugePageSize) -> Bool { lock.withLock { states[size] != nil } }

  /// The figures for `size`; `nil` when the machine does not support it.
  public func status(_ size: HugePageSize) -> Status? { lock.withLock { states[size]?.status } }

  /// The hugetlb lines of `/proc/meminfo` (`hugetlb_report_meminfo`): the default size's
  /// counts, its size, and the memory every size holds.
  public var meminfo: String {
    lock.withLock {
      let d = states[defaultSize]?.status ?? Status(total: 0, free: 0, reserved: 0, surplus: 0)
      var totalKB: UInt64 = 0
      for (size, s) in states { totalKB += UInt64(s.status.total) * (size.bytes >> 10) }
      // Values end in column 24, as hugetlb_report_meminfo's widths put them.
      func line(_ name: String, _ value: Int, kB: Bool = false) -> String {
        let v = String(value)
        let pad = String(repeating: " ", count: max(1, 24 - name.count - 1 - v.count))
        return name + ":" + pad + v + (kB ? " kB\n" : "\n")
      }
      return line("HugePages_Total", d.total) + line("HugePages_Free", d.free) + line("HugePages_Rsvd", d.reserved)
        + line("HugePages_Surp", d.surplus) + line("Hugepagesize", Int(defaultSize.kilobytes), kB: true)
        + line("Hugetlb", Int(totalKB), kB: true)
    }
  }

  /// Reserves `count` pages of `size` (`hugetlb_acct_memory(h, count)` → `gather_surplus_pages`):
  /// false, and nothing changed, when the free pages nobody reserved and the surplus allowed do
  /// not cover them.
  func reserve(_ count: Int, _ size: HugePageSize) -> Bool {
    if count == 0 { return true }
    return lock.withLock {
      guard var h = states[size] else { return false }
      let needed = h.status.reserved + count - h.status.free
      if needed > 0 {
        // alloc_surplus_hugetlb_folio, once per page: refused at nr_overcommit_hugepages.
        if h.status.surplus + needed > h.overcommit { return false }
        h.status.surplus += needed
        h.status.total += needed
        h.status.free += needed
      }
      h.status.reserved += count
      states[size] = h
      return true
    }
  }

  /// Drops `count` unused reservations of `size`, giving back the surplus pages they kept
  /// (`return_unused_surplus_pages`).
  func unreserve(_ count: Int, _ size: HugePageSize) {
    if count == 0 { return }
    lock.withLock {
      guard var h = states[size] else { return }
      h.status.reserved -= count
      let back = min(count, h.status.surplus, h.status.free - h.status.reserved)
      h.status.surplus -= back
      h.status.total -= back
      h.status.free -= back
      states[size] = h
    }
  }

  /// Takes a page of `size` for a fault (`alloc_hugetlb_folio`): with `reserved`, one of the
  /// caller's reservations; otherwise a free page nobody reserved, or a new surplus page. False
  /// when there is none (the fault's `SIGBUS`).
  func allocate(_ size: HugePageSize, reserved: Bool) -> Bool {
    lock.withLock {
      guard var h = states[size] else { return false }
      if reserved {
        h.status.reserved -= 1
        h.status.free -= 1
      } else if h.status.free > h.status.reserved {
        h.status.free -= 1
      } else if h.status.surplus < h.overcommit {
        // alloc_buddy_hugetlb_folio_with_mpol: a surplus page straight to the caller.
        h.status.surplus += 1
        h.status.total += 1
      } else {
        return false
      }
      states[size] = h
      return true
    }
  }

  /// Frees a page of `size` (`free_huge_folio`): a surplus page leaves the pool, a persistent
  /// one goes back to the free list.
  func free(_ size: HugePageSize) {
    lock.withLock {
      guard var h = states[size] else { return }
      if h.status.surplus > 0 {
        h.status.surplus -= 1
        h.status.total -= 1
      } else {
        h.status.free += 1
      }
      states[size] = h
    }
  }
}

/// A huge page size (`struct hstate`): x86-64 has 2 MiB pages (PMD entries) and, with
/// `X86_FEATURE_GBPAGES`, 1 GiB pages (PUD entries).
public enum HugePageSize: Int, Sendable, CaseIterable, Hashable {
  /// 2 MiB (`MAP_HUGE_2MB`, `hugepages-2048kB`).
  case size2M = 21
  /// 1 GiB (`MAP_HUGE_1GB`, `hugepages-1048576kB`).
  case size1G = 30

  /// log2 of the size: what `MAP_HUGE_*` encodes above `MAP_HUGE_SHIFT`.
  public var shift: Int { rawValue }
  /// The size in bytes.
  public var bytes: UInt64 { 1 << UInt64(rawValue) }
  /// `huge_page_mask`'s complement: the offset bits within a huge page.
  var offsetMask: UInt64 { bytes - 1 }
  /// Base pages in one huge page.
  var basePages: UInt64 { bytes >> Page.shift }

  /// `ALIGN(x, huge_page_size)`: `x` rounded up to a huge page boundary, wrapping to 0 past the
  /// top as the kernel's arithmetic does.
  package func roundUp(_ x: UInt64) -> UInt64 { (x &+ offsetMask) & ~offsetMask }

  /// The size `MAP_HUGE_*` names, or nil for a size the architecture has no pages of.
  init?(log2 value: Int) { self.init(rawValue: value) }

  /// The size in kB, as sysfs names it (`hugepages-2048kB`) and `Hugepagesize` prints it.
  public var kilobytes: UInt64 { bytes >> 10 }

  /// The device `/proc/self/maps` shows for an anonymous hugetlb mapping of this size: the
  /// kernel's internal hugetlbfs mount for it (`hugetlbfs_vfsmount[]`), whose anonymous device
  /// number comes from boot order; these are this machine's 6.18 kernel's (00:11 and 00:12).
  var mapsDevice: String {
    switch self {
    case .size2M: "00:11"
    case .size1G: "00:12"
    }
  }
}
