/// Guard markers (`MADV_GUARD_INSTALL`/`MADV_GUARD_REMOVE`, Linux 6.13): the page-table half.
///
/// A guard marker is a non-present PTE (`PTE.guardMarker`) that every access faults on with
/// `SIGSEGV`. What keeps it and what drops it, as on Linux (and the selftest
/// `tools/testing/selftests/mm/guard-regions.c`):
/// - `MADV_DONTNEED`, `MADV_FREE`, truncation and hole punching leave it (`zapRange` keeps
///   markers); `munmap` and teardown drop it (`dropMarkers`).
/// - `mprotect` leaves it (`changeProtection` skips it).
/// - `mremap` moves it with the other entries; `fork` copies it (the install gave the VMA an
///   anon_vma, so `vma_needs_copy` holds), except in a `MADV_WIPEONFORK` VMA.
extension PageTable {
  /// `madvise_guard_install`'s walk: every entry of `[start, end)` becomes a guard marker. An
  /// entry that maps a frame is zapped first (its mapcount now, its reference through `gather`),
  /// under the same PTL, so that no fault can slip a page in between. Returns `false` when a
  /// page-table level could not be allocated (`ENOMEM`); the entries before it are guarded.
  /// - Requires: `mmap_lock` held (read is enough).
  func installGuardMarkers(_ start: UInt64, _ end: UInt64, gather: inout MMUGather) -> Bool {
    var va = start
    while va < end {
      let tableEnd = min((va | (PageTable.pmdSize - 1)) &+ 1, end)
      // madvise_guard_install zaps the range first: a huge PMD the range covers whole goes
      // without a split; one it cuts through (or one a fault mapped since) is split, and its
      // entries become markers like any others.
      if tableEnd - va == PageTable.pmdSize, let pmd = lookupPMD(va) { zapHugePMD(pmd, gather: &gather) }
      splitHugePMD(at: va)
      guard let first = allocPTE(va, cache: nil) else { return false }
      let count = Int((tableEnd - va) >> Page.shift)
      let lock = ptl(for: first)
      lock.lock()
      for i in 0..<count {
        let old = PTE(raw: first[i].exchange(PTE.guardMarker, ordering: .acquiringAndReleasing))
        if old.isNone || old.isGuardMarker { continue }
        releaseZapped(old, gather: &gather)
      }
      lock.unlock()
      va = tableEnd
    }
    return true
  }

  /// `madvise_guard_remove`'s walk: clears the guard markers of `[start, end)`, leaving every
  /// other entry as it is.
  /// - Requires: `mmap_lock` held (read is enough).
  func removeGuardMarkers(_ start: UInt64, _ end: UInt64) {
    // No marker lies under a huge PMD: leave it whole.
    forEachPTETable(start, end, huge: { _, _ in true }) { table, from, to, _ in
      let lock = ptl(for: table)
      lock.lock()
      for i in from..<to where table[i].load(ordering: .relaxed) == PTE.guardMarker {
        table[i].store(0, ordering: .releasing)
      }
      lock.unlock()
    }
  }
}
