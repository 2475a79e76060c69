import Synchronization

/// Creating, removing, splitting and merging VMAs (`mm/vma.c`), on the writer side: every
/// function here but `anonVMAPrepare` (which a fault calls under the read lock) runs with
/// `mmap_lock` held for write, inside the tree's write transaction.
///
/// Merge rules are Linux's (`is_mergeable_vma`, `is_mergeable_anon_vma`,
/// `can_vma_merge_before/after`): equal flags (soft-dirty aside), the same backing object with
/// contiguous page offsets, compatible `anon_vma`s (equal, or one absent), and no `VM_SPECIAL`.
extension AddressSpace {
  /// A new VMA holding one (tree) reference, not yet inserted.
  /// - Requires: `mmap_lock` held for write.
  func makeVMA(
    start: UInt64, end: UInt64, flags: VMFlags, pgoff: UInt64, shmem: ShmemFile?, file: OpenFile? = nil,
    sysvAttach: SysVAttach? = nil
  ) -> VMA {
    file?.fget()
    let v = VMA(mm: self, start: start, end: end, flags: flags, pgoff: pgoff, shmem: shmem, file: file, sysvAttach: sysvAttach)
    if mappingsPrepared(v) {
      file?.inode.addMappingLocked(v)
      shmem?.addMappingLocked(v)
    } else {
      file?.inode.addMapping(v)
      shmem?.addMapping(v)
    }
    _ = Unmanaged.passRetained(v)  // the tree's reference, dropped by `put()`
    return v
  }

  /// - Requires: `mmap_lock` held for write.
  func insertVMA(_ v: VMA) { tree.insert(v) }

  /// Makes `v`'s sequence odd until the transaction commits (`vm_write_begin`), once per
  /// transaction, after write-locking it where the design's faults lock VMAs (`vmaStartWrite`).
  /// - Requires: `mmap_lock` held for write.
  func vmaWriteBegin(_ v: VMA) {
    let gen = tree.transactionGeneration
    if v.writeGeneration == gen { return }
    v.writeGeneration = gen
    if config.design.writersLockVMAs { vmaStartWrite(v) }
    v.vmSequence.writeBegin()
    writeTouched.append(v)
  }

  /// `vma_start_write`: waits for the VMA's fault readers, then marks it write-locked until
  /// `mmap_write_unlock` bumps `mmLockSeq`.
  /// - Requires: `mmap_lock` held for write.
  func vmaStartWrite(_ v: VMA) {
    let current = mmLockSeq.pointee.load(ordering: .relaxed)
    if v.vmLockSeq.load(ordering: .relaxed) == current { return }
    v.vmLock.writeLock()
    v.vmLockSeq.store(current, ordering: .relaxed)
    v.vmLock.writeUnlock()
  }

  /// Takes `v` out of the tree for good; its tree reference drops after a grace period. With
  /// `unlink` false it stays in its backing object's registry until the caller, having zapped its
  /// entries, calls `unlinkFileVMA` (munmap's order: `unmap_vmas`, then `free_pgtables`).
  /// - Requires: `mmap_lock` held for write.
  func removeVMA(_ v: VMA, unlink: Bool = true) {
    vmaWriteBegin(v)
    tree.remove(v)
    v.markDetached()
    if unlink { unlinkFileVMA(v) }
    retiredVMAs.append(v)
  }

  /// `unlink_file_vma`: takes a detached VMA out of its backing object's registry (before its
  /// page tables can go: a truncate zaps through the registry) and puts its file reference, or,
  /// under SPF with deferred fput, leaves it to the VMA's last reference (`markFileInFlight`).
  /// - Requires: `mmap_lock` held for write.
  func unlinkFileVMA(_ v: VMA) {
    let prepared = mappingsPrepared(v)
    if let shmem = v.shmem { if prepared { shmem.removeMappingLocked(v) } else { shmem.removeMapping(v) } }
    if let file = v.file {
      if prepared { file.inode.removeMappingLocked(v) } else { file.inode.removeMapping(v) }
      // Only VMA references held by faults can outlive the tree: elsewhere the file goes now.
      if config.fputMode == .synchronous || !config.design.faultsReferenceVMAs {
        v.releaseFile()
      } else {
        v.markFileInFlight()
      }
    }
  }

  /// Changes the bounds of a VMA in the tree (`vma_adjust`/`vma_expand`/`vma_shrink`). The
  /// backing object's mapping lock is held over the change (`vma_prepare` takes `i_mmap_rwsem`
  /// for write), so a truncate or hole punch zapping through it sees the old bounds or the new.
  /// - Requires: `mmap_lock` held for write.
  func adjustVMA(_ v: VMA, start: UInt64, end: UInt64, pgoff: UInt64) {
    vmaWriteBegin(v)
    // vma_adjust_trans_huge: a huge PMD that a new bound cuts through is split first, so that
    // no huge PMD ever spans two VMAs.
    if start != v.start && !TransparentHugePage.isAligned(start) { pageTable.splitHugePMD(at: start) }
    if end != v.end && !TransparentHugePage.isAligned(end) { pageTable.splitHugePMD(at: end) }
    tree.remove(v)
    if mappingsPrepared(v) {
      v.setBounds(start: start, end: end, pgoff: pgoff)
    } else {
      v.withBackingMappingsLocked { v.setBounds(start: start, end: end, pgoff: pgoff) }
    }
    tree.insert(v)
  }

  /// `vma_prepare` … `vma_complete`: runs a split or merge of `vmas` (which share one backing
  /// object, as merge rules require) with that object's mapping lock held throughout, so that a
  /// truncate or hole punch zapping through the registry never finds a range whose entries are
  /// still present but covered by no registered VMA (one removed before its neighbour grew over
  /// it), nor half-changed bounds. The VMAs are write-marked first: vmSequence and the per-VMA
  /// lock come before the mapping lock. Private anonymous VMAs need no lock.
  /// - Requires: `mmap_lock` held for write, and no mapping lock (`vmaStartWrite` may wait for
  ///   faults).
  func withVMAsPrepared<T, E: Error>(_ vmas: [VMA?], _ body: () throws(E) -> T) throws(E) -> T {
    guard let first = vmas.first(where: { $0?.backing != nil }) ?? nil, vmaPreparedBacking == nil else {
      return try body()
    }
    for case let v? in vmas { vmaWriteBegin(v) }
    first.lockBackingMappings()
    vmaPreparedBacking = first.backing
    defer {
      vmaPreparedBacking = nil
      first.unlockBackingMappings()
    }
    return try body()
  }

  /// Whether this writer holds `v`'s backing object's mapping lock (`withVMAsPrepared`).
  /// - Requires: `mmap_lock` held for write.
  @inline(__always)
  func mappingsPrepared(_ v: VMA) -> Bool {
    guard let held = vmaPreparedBacking else { return false }
    return held === v.backing
  }

  /// - Requires: `mmap_lock` held for write.
  func setVMAFlags(_ v: VMA, _ flags: VMFlags) {
    if v.flags == flags { return }
    vmaWriteBegin(v)
    v.setFlags(flags)
  }

  /// Splits `v` at `addr` (`__split_vma`). With `newBelow`, the new VMA is the lower part and `v`
  /// keeps `[addr, end)`; otherwise the new VMA is `[addr, end)`. `checkMapCount` is the
  /// `split_vma` check (`ENOMEM` at `max_map_count`); munmap does its own.
  /// - Requires: `mmap_lock` held for write.
  @discardableResult
  func splitVMA(_ v: VMA, at addr: UInt64, newBelow: Bool, checkMapCount: Bool = true) throws(Errno) -> VMA {
    precondition(addr > v.start && addr < v.end && Page.isAligned(addr))
    if checkMapCount && mapCount >= config.maxMapCount { throw Errno.noMemory }
    // vm_ops->may_split: a hugetlb VMA splits only at huge page boundaries.
    if let huge = v.shmem?.hugetlb, addr & huge.size.offsetMask != 0 { throw Errno.invalidArgument }
    let (start, end, pgoff) = (v.start, v.end, v.pgoff)
    let splitPgoff = pgoff + ((addr - start) >> Page.shift)
    return withVMAsPrepared([v]) {
      let new: VMA
      if newBelow {
        new = makeVMA(start: start, end: addr, flags: v.flags, pgoff: pgoff, shmem: v.shmem, file: v.file, sysvAttach: v.sysvAttach)
        adjustVMA(v, start: addr, end: end, pgoff: splitPgoff)
      } else {
        new = makeVMA(
          start: addr, end: end, flags: v.flags, pgoff: splitPgoff, shmem: v.shmem, file: v.file, sysvAttach: v.sysvAttach)
        adjustVMA(v, start: start, end: addr, pgoff: pgoff)
      }
      new.setAnonVMA(v.anonVMA)
      new.anonChainShared = v.anonChainShared
      insertVMA(new)
      return new
    }
  }

  // MARK: Merge predicates

  /// `is_mergeable_vma`.
  func isMergeable(_ v: VMA, flags: VMFlags, shmem: AnyObject?) -> Bool {
    if !v.flags.subtracting(.softDirty).symmetricDifference(flags.subtracting(.softDirty)).isEmpty { return false }
    return v.backing === shmem
  }

  /// `is_mergeable_anon_vma`: a source with anon_vma `anon` (whose chain is shared with a fork
  /// parent when `cloned`) may join `target` when both anon_vmas are equal, or one is absent and
  /// the other's chain is its own alone (`vma_had_uncowed_parents`).
  func anonCompatible(_ anon: UInt64, cloned: Bool, _ target: VMA) -> Bool {
    let t = target.anonVMA
    if t == 0 && anon != 0 { return !cloned }
    if t != 0 && anon == 0 { return !target.anonChainShared }
    return anon == t
  }

  /// The check for merging with both neighbours at once: `is_mergeable_anon_vma(prev->anon_vma,
  /// next->anon_vma, NULL)`, where no VMA is passed, so chains are not looked at.
  func bothSidesAnonCompatible(_ a: UInt64, _ b: UInt64) -> Bool { a == 0 || b == 0 || a == b }

  /// `can_vma_merge_after`: a range starting at `prev.end` with page offset `pgoff` may join
  /// `prev`.
  func canMergeAfter(_ prev: VMA, flags: VMFlags, anon: UInt64, cloned: Bool = false, shmem: AnyObject?, pgoff: UInt64) -> Bool {
    isMergeable(prev, flags: flags, shmem: shmem) && anonCompatible(anon, cloned: cloned, prev)
      && prev.pgoff + prev.pages == pgoff
  }

  /// `can_vma_merge_before`: a range ending at `next.start`, whose end has page offset
  /// `pgoffEnd`, may join `next`.
  func canMergeBefore(_ next: VMA, flags: VMFlags, anon: UInt64, cloned: Bool = false, shmem: AnyObject?, pgoffEnd: UInt64) -> Bool {
    isMergeable(next, flags: flags, shmem: shmem) && anonCompatible(anon, cloned: cloned, next)
      && next.pgoff == pgoffEnd
  }

  // MARK: Merging

  /// Tries to extend a neighbour over the new range `[start, end)` (`vma_merge_new_range`, used
  /// by mmap and by mremap's `copy_vma`; brk extends its VMA itself, as `do_brk_flags` does).
  /// Returns the VMA that now covers the range, or `nil`.
  /// `anon`/`cloned` describe the anon_vma the range brings along (mremap's `copy_vma`).
  /// - Requires: `mmap_lock` held for write.
  func mergeNewRange(
    start: UInt64, end: UInt64, flags: VMFlags, pgoff: UInt64, shmem: AnyObject?, anon: UInt64 = 0, cloned: Bool = false
  ) -> VMA? {
    if flags.contains(.hugeTLB) || !flags.intersection(.special).isEmpty { return nil }
    let pages = (end - start) >> Page.shift
    let prev = tree.findPrev(start).flatMap { $0.end == start ? $0 : nil }
    let next = tree.findW(start).flatMap { $0.start == end ? $0 : nil }
    let left = prev.map { canMergeAfter($0, flags: flags, anon: anon, cloned: cloned, shmem: shmem, pgoff: pgoff) } ?? false
    var right =
      next.map { canMergeBefore($0, flags: flags, anon: anon, cloned: cloned, shmem: shmem, pgoffEnd: pgoff + pages) }
      ?? false
    if left && right && !bothSidesAnonCompatible(prev!.anonVMA, next!.anonVMA) { right = false }
    if !left && !right { return nil }
    return withVMAsPrepared([left ? prev : nil, right ? next : nil]) {
      if left, let prev {
        prev.adoptAnonVMA(anon, chainShared: cloned)
        if right, let next {
          let nextEnd = next.end
          prev.adoptAnonVMA(next.anonVMA, chainShared: next.anonChainShared)
          removeVMA(next)
          adjustVMA(prev, start: prev.start, end: nextEnd, pgoff: prev.pgoff)
        } else {
          adjustVMA(prev, start: prev.start, end: end, pgoff: prev.pgoff)
        }
        return prev
      }
      if right, let next {
        next.adoptAnonVMA(anon, chainShared: cloned)
        adjustVMA(next, start: start, end: next.end, pgoff: pgoff)
        return next
      }
      return nil
    }
  }

  /// Gives `[start, end)` of `vma` the flags `newFlags`, merging with a neighbour when Linux
  /// would and splitting otherwise (`vma_modify_flags`). Returns the VMA covering exactly
  /// `[start, end)`, with its flags not yet changed when it is `vma` itself after splits (the
  /// caller sets them). Throws `ENOMEM` when a split would pass `max_map_count`.
  /// - Requires: `mmap_lock` held for write.
  func modifyVMAFlags(_ vma: VMA, start: UInt64, end: UInt64, newFlags: VMFlags) throws(Errno) -> VMA {
    precondition(start >= vma.start && end <= vma.end && start < end)
    if newFlags.contains(.hugeTLB) || !newFlags.intersection(.special).isEmpty {
      return try splitForModify(vma, start: start, end: end)
    }
    // can_merge_remove_vma: a merge never removes a VMA with a close hook (a System V
    // segment's, `shm_close`), so a change of the whole VMA leaves it on its own. (Taking part
    // of it into a neighbour removes nothing.)
    if start == vma.start && end == vma.end && vma.shmem?.isSysVSegment == true {
      return try splitForModify(vma, start: start, end: end)
    }
    let prev = tree.findPrev(vma.start).flatMap { $0.end == vma.start ? $0 : nil }
    let next = tree.findW(vma.end).flatMap { $0.start == vma.end ? $0 : nil }
    let startPgoff = vma.pgoff + ((start - vma.start) >> Page.shift)
    let endPgoff = vma.pgoff + ((end - vma.start) >> Page.shift)
    let anon = vma.anonVMA
    let cloned = vma.anonChainShared
    let left =
      start == vma.start
      && (prev.map { canMergeAfter($0, flags: newFlags, anon: anon, cloned: cloned, shmem: vma.backing, pgoff: startPgoff) }
        ?? false)
    var right =
      end == vma.end
      && (next.map {
        canMergeBefore($0, flags: newFlags, anon: anon, cloned: cloned, shmem: vma.backing, pgoffEnd: endPgoff)
      } ?? false)
    if left && right && !bothSidesAnonCompatible(prev!.anonVMA, next!.anonVMA) { right = false }
    if !left && !right { return try splitForModify(vma, start: start, end: end) }
    let (mergePrev, mergeNext) = (left ? prev : nil, right ? next : nil)
    return withVMAsPrepared([vma, mergePrev, mergeNext]) {
      mergeForModify(vma, start: start, end: end, prev: mergePrev, next: mergeNext, startPgoff: startPgoff, endPgoff: endPgoff)
    }
  }

  /// The merge half of `modifyVMAFlags` (`vma_merge_existing_range`): `prev` and/or `next` (the
  /// neighbours that may merge) take over `[start, end)` of `vma`.
  /// - Requires: `mmap_lock` held for write, inside `withVMAsPrepared` over `vma`, `prev` and
  ///   `next`.
  private func mergeForModify(
    _ vma: VMA, start: UInt64, end: UInt64, prev: VMA?, next: VMA?, startPgoff: UInt64, endPgoff: UInt64
  ) -> VMA {
    let anon = vma.anonVMA
    let cloned = vma.anonChainShared
    if let prev {
      prev.adoptAnonVMA(anon, chainShared: cloned)
      if let next {
        let nextEnd = next.end
        prev.adoptAnonVMA(next.anonVMA, chainShared: next.anonChainShared)
        removeVMA(vma)
        removeVMA(next)
        adjustVMA(prev, start: prev.start, end: nextEnd, pgoff: prev.pgoff)
      } else if end < vma.end {
        let vEnd = vma.end
        adjustVMA(vma, start: end, end: vEnd, pgoff: endPgoff)
        adjustVMA(prev, start: prev.start, end: end, pgoff: prev.pgoff)
      } else {
        removeVMA(vma)
        adjustVMA(prev, start: prev.start, end: end, pgoff: prev.pgoff)
      }
      return prev
    }
    let next = next!
    next.adoptAnonVMA(anon, chainShared: cloned)
    let nextEnd = next.end
    if start > vma.start {
      let vStart = vma.start
      adjustVMA(vma, start: vStart, end: start, pgoff: vma.pgoff)
    } else {
      removeVMA(vma)
    }
    adjustVMA(next, start: start, end: nextEnd, pgoff: startPgoff)
    return next
  }

  /// - Requires: `mmap_lock` held for write.
  private func splitForModify(_ vma: VMA, start: UInt64, end: UInt64) throws(Errno) -> VMA {
    if start > vma.start { try splitVMA(vma, at: start, newBelow: true) }
    if end < vma.end { try splitVMA(vma, at: end, newBelow: false) }
    return vma
  }

  /// `anon_vma_prepare`: gives `vma` an anon_vma, reusing a neighbour's when they could merge
  /// (`find_mergeable_anon_vma`). Caller holds `mmap_lock` (read is enough: the CAS settles
  /// racing faults, as `page_table_lock` does in Linux).
  /// - Requires: `mmap_lock` held, for read at least.
  func anonVMAPrepare(_ vma: VMA) -> UInt64 {
    let current = vma.anonVMA
    if current != 0 { return current }
    var candidate: UInt64 = 0
    // Reads of neighbours are safe under the read lock: writers are excluded.
    // reusable_anon_vma: only an anon_vma whose chain is the neighbour's own. Linux tries the
    // next VMA first, then the previous one.
    if let next = tree.findW(vma.end), next.start == vma.end, next.anonVMA != 0, !next.anonChainShared,
      reusableAnonVMA(vma, next)
    {
      candidate = next.anonVMA
    } else if let prev = tree.findPrev(vma.start), prev.end == vma.start, prev.anonVMA != 0, !prev.anonChainShared,
      reusableAnonVMA(prev, vma)
    {
      candidate = prev.anonVMA
    }
    if candidate == 0 { candidate = anonVMASource.wrappingAdd(1, ordering: .relaxed).newValue }
    return vma.installAnonVMA(candidate)
  }

  /// `anon_vma_compatible`: adjacent, same object, contiguous offsets, flags equal but for the
  /// access and soft-dirty bits.
  private func reusableAnonVMA(_ a: VMA, _ b: VMA) -> Bool {
    let ignore: VMFlags = [.read, .write, .exec, .softDirty]
    return a.end == b.start && a.backing === b.backing
      && a.flags.subtracting(ignore) == b.flags.subtracting(ignore)
      && a.pgoff + a.pages == b.pgoff
  }
}
