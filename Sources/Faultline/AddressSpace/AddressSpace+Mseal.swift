/// `mseal(2)` (`mm/mseal.c`, Linux 6.10; as 6.18 has it): seals every VMA of a range with
/// `VM_SEALED`, which no call can clear.
///
/// The refusals live where 6.18 has them, each a per-VMA check of the flag:
/// - `munmap`, and the unmap under `mmap(MAP_FIXED)`, `mremap(MREMAP_FIXED)` and `brk`
///   (`vms_gather_munmap_vmas`: `EPERM` before a split of a sealed VMA and for each sealed VMA
///   of the range, before anything is detached; a split of an unsealed first VMA stays);
/// - `mremap` of a sealed VMA, whatever the sizes (`check_prep_vma`, right after the `EFAULT`
///   check);
/// - `mprotect`/`pkey_mprotect` (`mprotect_fixup`, even for an unchanged protection; the VMAs
///   before the sealed one have already changed, as on Linux);
/// - the discarding advice on read-only private anonymous memory (`can_madvise_modify`).
extension AddressSpace {
  /// `mseal(addr, len, flags)`. `EINVAL` for any flag, an unaligned `addr`, a length that
  /// page-aligns past 2^64 or a range that wraps; a length of 0 is 0; `ENOMEM` when a hole lies
  /// anywhere in the range (nothing is sealed then). Sealing a sealed VMA again is 0.
  package func mseal(_ addr: UInt64, _ length: UInt64, flags: UInt64 = 0) throws(Errno) {
    if flags != 0 { throw Errno.invalidArgument }
    if !Page.isAligned(addr) { throw Errno.invalidArgument }
    let len = Page.roundUp(length)
    if length != 0 && len == 0 { throw Errno.invalidArgument }
    let end = addr &+ len
    if end < addr { throw Errno.invalidArgument }
    if end == addr { return }
    mmapWriteLock()
    defer { mmapWriteUnlock() }
    if rangeContainsUnmapped(addr, end) { throw Errno.noMemory }
    try msealApply(addr, end)
  }

  /// `range_contains_unmapped`: a hole at the start, between VMAs or at the end.
  /// - Requires: `mmap_lock` held for write.
  private func rangeContainsUnmapped(_ start: UInt64, _ end: UInt64) -> Bool {
    var prevEnd = start
    var v = tree.findW(start)
    while let vma = v, vma.start < end {
      if vma.start > prevEnd { return true }
      prevEnd = vma.end
      v = tree.findW(vma.end)
    }
    return prevEnd < end
  }

  /// `mseal_apply`: sets `VM_SEALED` on each VMA of the hole-free range, splitting at its edges
  /// and merging with sealed neighbours (`vma_modify_flags`).
  /// - Requires: `mmap_lock` held for write.
  private func msealApply(_ start: UInt64, _ end: UInt64) throws(Errno) {
    var cursor = start
    while cursor < end, let vma = tree.findW(cursor), vma.start < end {
      let stop = min(vma.end, end)
      var next = vma.end
      if !vma.flags.contains(.sealed) {
        let newFlags = vma.flags.union(.sealed)
        let target = try modifyVMAFlags(vma, start: max(vma.start, cursor), end: stop, newFlags: newFlags)
        setVMAFlags(target, newFlags)
        next = target.end
      }
      cursor = max(stop, next)
    }
  }

  /// `can_madvise_modify`: on a sealed VMA, the advice that discards data (`is_discard`) is
  /// refused on anonymous memory the caller could not write anyway — not writable, or its
  /// protection key denies `cpu` writes (`arch_vma_access_permitted`). File and shmem mappings,
  /// private or shared, may always discard.
  func canMadviseModify(_ vma: VMA, advice: Advice, cpu: CPU) -> Bool {
    if !vma.flags.contains(.sealed) { return true }
    let discards: Set<Advice> = [
      Advice.free, Advice.dontNeed, Advice.dontNeedLocked, Advice.remove, Advice.dontFork, Advice.wipeOnFork,
      Advice.guardInstall,
    ]
    if !discards.contains(advice) { return true }
    if !vma.isAnonymous { return true }
    return vma.flags.contains(.write) && cpu.pkeyAllows(vma.flags, write: true)
  }
}
