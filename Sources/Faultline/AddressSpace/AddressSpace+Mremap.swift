import Synchronization

/// `mremap(2)` as Linux 6.17+ does it (`mm/mremap.c`: `check_mremap_params`, `check_prep_vma`,
/// `mremap_at`, `mremap_to`, `remap_move`, `move_vma`, `move_page_tables`), checked against this
/// machine's 6.18 kernel:
///
/// - Shrinking unmaps the tail, across VMAs and holes; equal sizes without a new address return
///   `addr` unchanged.
/// - Growing in place extends the VMA when nothing lies in the way (`vma_merge_extend`, which may
///   merge it with the next VMA); otherwise, with `MREMAP_MAYMOVE`, the range moves.
/// - A move creates the destination VMA (or merges it into a neighbour, `copy_vma`), moves the
///   page-table entries — the frames stay where they are, nothing is copied — and unmaps the
///   source, or with `MREMAP_DONTUNMAP` leaves the source mapped but empty.
/// - `MREMAP_FIXED` with equal sizes moves every VMA of the range, keeping the gaps between them
///   (`remap_move`, 6.17+); a hole at the start is `EFAULT`, so is a System V segment's VMA
///   among others (`vma_multi_allowed`), and a failure part way leaves the VMAs already moved
///   where they went.
/// - `old_size` 0 duplicates a shared mapping (the new VMA maps the same pages).
///
/// Where 6.18 and older kernels differ, Faultline follows 6.18: the range checks (`EFAULT`) run
/// before the destination is unmapped, so a failing `MREMAP_FIXED` leaves the destination mapped.
/// `MREMAP_DONTUNMAP` of a locked VMA charges `locked_vm` for the new range and clears
/// `VM_LOCKED` on the source without uncharging it, as 6.18 does.
///
/// Concurrency: every VMA a move touches is write-marked (`vma_start_write`; odd `vmSequence`
/// for SPF) before its entries move, entries move under both PTLs, and a file mapping's entries
/// move under its inode's mapping lock, so truncate sees each entry at one place or the other.
extension AddressSpace {
  /// `mremap(old_address, old_size, new_size, flags, new_address)`: returns the mapping's new
  /// address.
  package func mremap(
    _ addr: UInt64, _ oldSize: UInt64, _ newSize: UInt64, flags: MremapFlags, newAddress: UInt64 = 0, cpu: CPU
  ) throws(Errno) -> UInt64 {
    var oldLen = Page.roundUp(oldSize)
    var newLen = Page.roundUp(newSize)
    // check_mremap_params.
    if !flags.subtracting([.mayMove, .fixed, .dontUnmap]).isEmpty { throw Errno.invalidArgument }
    if !Page.isAligned(addr) { throw Errno.invalidArgument }
    if newLen == 0 { throw Errno.invalidArgument }
    let taskSize = config.taskSize
    if newLen > taskSize { throw Errno.invalidArgument }
    let impliesNewAddr = !flags.isDisjoint(with: [.fixed, .dontUnmap])
    if impliesNewAddr {
      // new_address is only looked at when the call has one (host: ignored otherwise).
      if newAddress > taskSize - newLen { throw Errno.invalidArgument }
      if !Page.isAligned(newAddress) { throw Errno.invalidArgument }
      if !flags.contains(.mayMove) { throw Errno.invalidArgument }
      if flags.contains(.dontUnmap) && oldLen != newLen { throw Errno.invalidArgument }
      if addr &+ oldLen > newAddress && newAddress + newLen > addr { throw Errno.invalidArgument }
      mmapLock.readLock()
      let tooMany = mapCount + 2 >= config.maxMapCount - 3
      mmapLock.readUnlock()
      if tooMany { throw Errno.noMemory }
    }

    mmapWriteLock()
    var op = RemapOp(flags: flags)
    let result: Result<UInt64, Errno>
    do throws(Errno) {
      // No VMA lies at or above TASK_SIZE (and `addr + len` below cannot wrap).
      if addr >= taskSize { throw Errno.badAddress }
      if flags.contains(.fixed) && oldLen == newLen {
        result = .success(try remapMove(addr, oldLen, newAddress, &op))
      } else {
        guard let vma = tree.findW(addr), vma.start <= addr else { throw Errno.badAddress }
        try checkPrepVMA(vma, addr, &oldLen, &newLen, newAddress: newAddress, &op)
        result = .success(
          impliesNewAddr
            ? try mremapTo(addr, oldLen, newLen, newAddress, &op)
            : try mremapAt(vma, addr, oldLen, newLen, &op))
      }
    } catch {
      result = .failure(error)
    }
    let writeback = takePendingWriteback()
    mmapWriteUnlock()
    op.gather.finish(machine: machine, synchronous: op.moved)
    writeBack(writeback)
    let newAddr = try result.get()
    if op.populateExpand && newLen > oldLen {
      _ = mmPopulate(newAddr + oldLen, newLen - oldLen, ignoreErrors: true, cpu: cpu)
    }
    return newAddr
  }

  /// State of one mremap call (`struct vma_remap_struct`, reduced).
  struct RemapOp {
    let flags: MremapFlags
    var gather = MMUGather()
    /// Present entries moved: accesses through the old addresses must drain before returning.
    var moved = false
    /// A locked VMA grew: populate the new part after the unlock.
    var populateExpand = false
    init(flags: MremapFlags) { self.flags = flags }
    var dontUnmap: Bool { flags.contains(.dontUnmap) }
    var fixed: Bool { flags.contains(.fixed) }
    var mayMove: Bool { flags.contains(.mayMove) }
    var impliesNewAddr: Bool { !flags.isDisjoint(with: [.fixed, .dontUnmap]) }
  }

  /// `check_prep_vma`: the checks on the VMA at `addr` for a resize or a move; a hugetlb VMA's
  /// lengths round up to its huge page (`align_hugetlb`).
  private func checkPrepVMA(
    _ vma: VMA, _ addr: UInt64, _ oldLen: inout UInt64, _ newLen: inout UInt64, newAddress: UInt64,
    _ op: inout RemapOp
  ) throws(Errno) {
    // mseal: no resize or move of a sealed VMA, not even to the same size.
    if vma.flags.contains(.sealed) { throw Errno.notPermitted }
    if let huge = vma.shmem?.hugetlb {
      try hugetlbAlignRemap(huge, addr: addr, newAddress: newAddress, oldLen: &oldLen, newLen: &newLen)
    }
    let expand = newLen > oldLen
    if !expand && !op.impliesNewAddr { return }
    let flags = vma.flags
    // Duplicating a private mapping would create memory unrelated to the original.
    if oldLen == 0 && !flags.contains(.shared) && !flags.contains(.mayShare) { throw Errno.invalidArgument }
    if op.dontUnmap && !flags.intersection([.dontExpand, .pfnMap]).isEmpty { throw Errno.invalidArgument }
    // The part that moves must lie inside this VMA (a shrinking move keeps only `newLen`).
    if min(oldLen, newLen) > vma.end - addr { throw Errno.badAddress }
    if !expand { return }
    if flags.contains(.locked) { op.populateExpand = true }
    let pgoff = vma.pageIndex(addr)
    if pgoff &+ (newLen >> Page.shift) < pgoff { throw Errno.invalidArgument }
    if !flags.intersection([.dontExpand, .pfnMap]).isEmpty { throw Errno.badAddress }
    let delta = newLen - oldLen
    // mlock_future_ok.
    if flags.contains(.locked) && !config.capIPCLock && lockedVM + (delta >> Page.shift) > config.rlimitMemlock >> Page.shift {
      throw Errno.resourceTemporarilyUnavailable
    }
    if !mayExpandVM(flags, delta >> Page.shift) { throw Errno.noMemory }
  }

  /// `mremap_at`: resize without a new address.
  /// - Requires: `mmap_lock` held for write.
  private func mremapAt(_ vma: VMA, _ addr: UInt64, _ oldLen: UInt64, _ newLen: UInt64, _ op: inout RemapOp) throws(Errno) -> UInt64 {
    if newLen == oldLen { return addr }
    if newLen < oldLen {
      // shrink_vma: unmap the tail, whatever it covers.
      try unmapTail(addr, oldLen, newLen, &op)
      return addr
    }
    let delta = newLen - oldLen
    if oldLen == vma.end - addr && vmaExpandable(vma, delta) {
      let vEnd = vma.end
      let grown =
        mergeNewRange(
          start: vEnd, end: vEnd + delta, flags: vma.flags, pgoff: vma.pgoff + vma.pages, shmem: vma.backing,
          anon: vma.anonVMA, cloned: false)  // vma_merge_extend: no copied_from, so case 1 allows it
        ?? {
          adjustVMA(vma, start: vma.start, end: vEnd + delta, pgoff: vma.pgoff)
          return vma
        }()
      vmStatAccount(grown.flags, Int64(delta >> Page.shift))
      return addr
    }
    guard op.mayMove else { throw Errno.noMemory }
    let newAddr = try getUnmappedArea(0, newLen, flags: 0, allocator: unmappedAreaAllocator(for: vma, at: addr))
    return try moveVMA(vma, addr, oldLen, newLen, newAddr, &op)
  }

  /// Unmaps `[addr + newLen, addr + oldLen)` with `do_vmi_munmap`'s checks: a tail reaching
  /// past `TASK_SIZE` (an `old_size` near 2^64) is `EINVAL`.
  /// - Requires: `mmap_lock` held for write.
  private func unmapTail(_ addr: UInt64, _ oldLen: UInt64, _ newLen: UInt64, _ op: inout RemapOp) throws(Errno) {
    let start = addr + newLen
    let len = oldLen - newLen
    if start > config.taskSize || len > config.taskSize - start { throw Errno.invalidArgument }
    try unmapRange(start, start + len, gather: &op.gather)
  }

  /// `vma_expandable`: nothing mapped in `[vma.end, vma.end + delta)` and the end within
  /// `TASK_SIZE`.
  private func vmaExpandable(_ vma: VMA, _ delta: UInt64) -> Bool {
    let end = vma.end &+ delta
    if end < vma.end || end > config.taskSize { return false }
    if let next = tree.findW(vma.end), next.start < end { return false }
    return true
  }

  /// `mremap_to`: a move to `newAddress` (`MREMAP_FIXED`) or anywhere (`MREMAP_DONTUNMAP`
  /// without `FIXED`, with `newAddress` as a hint). The destination and then the shrunk tail are
  /// unmapped first; a later failure leaves them unmapped.
  /// - Requires: `mmap_lock` held for write.
  private func mremapTo(_ addr: UInt64, _ oldLen: UInt64, _ newLen: UInt64, _ newAddress: UInt64, _ op: inout RemapOp) throws(Errno) -> UInt64 {
    var oldLen = oldLen
    if op.fixed {
      try unmapRange(newAddress, newAddress + newLen, gather: &op.gather)
    }
    if newLen < oldLen {
      try unmapTail(addr, oldLen, newLen, &op)
      oldLen = newLen
    }
    // The unmaps may have split the source VMA.
    guard let vma = tree.findW(addr), vma.start <= addr else { throw Errno.badAddress }
    if op.dontUnmap && !mayExpandVM(vma.flags, oldLen >> Page.shift) { throw Errno.noMemory }
    // vrm_set_new_addr: MREMAP_FIXED is MAP_FIXED to get_unmapped_area, so the destination
    // meets mmap's minimum-address check.
    let newAddr = try getUnmappedArea(
      newAddress, newLen, flags: op.fixed ? MapFlags.fixed : [], allocator: unmappedAreaAllocator(for: vma, at: addr))
    return try moveVMA(vma, addr, oldLen, newLen, newAddr, &op)
  }

  /// `remap_move`: `MREMAP_FIXED` with equal sizes moves each VMA of `[addr, addr+len)` in
  /// turn, keeping the gaps between them. Returns where the first one went.
  /// - Requires: `mmap_lock` held for write.
  private func remapMove(_ addr: UInt64, _ len: UInt64, _ newAddress: UInt64, _ op: inout RemapOp) throws(Errno) -> UInt64 {
    let end = addr + len
    var result: UInt64?
    var target = newAddress
    var lastEnd: UInt64 = 0
    var cursor = addr
    // `cursor < end`: with MREMAP_DONTUNMAP the source VMA stays where it was and would be found
    // again.
    while cursor < end, let vma = tree.findW(cursor), vma.start < end {
      if result == nil && addr < vma.start { throw Errno.badAddress }
      let from = max(vma.start, addr)
      let part = min(end, vma.end) - from
      let offset = result == nil ? 0 : vma.start - lastEnd
      lastEnd = vma.end
      // vma_multi_allowed: a file whose own get_unmapped_area might not honour the address —
      // of the kinds Faultline has, only a System V segment — moves only alone.
      if vma.shmem?.isSysVSegment == true && (result != nil || vma.end < end) { throw Errno.badAddress }
      var (oldPart, newPart) = (part, part)
      try checkPrepVMA(vma, from, &oldPart, &newPart, newAddress: target + offset, &op)
      let moved = try mremapTo(from, oldPart, newPart, target + offset, &op)
      if result == nil { result = moved }
      target = moved + part
      cursor = from + part
    }
    guard let result else { throw Errno.badAddress }
    return result
  }

  /// `move_vma`: creates the destination VMA (`copy_vma`), moves the entries, then unmaps the
  /// source (or, with `MREMAP_DONTUNMAP`, leaves it mapped and empty).
  /// - Requires: `mmap_lock` held for write.
  private func moveVMA(
    _ vma: VMA, _ addr: UInt64, _ oldLen: UInt64, _ newLen: UInt64, _ newAddr: UInt64, _ op: inout RemapOp
  ) throws(Errno) -> UInt64 {
    // Room for the splits the unmap may need.
    if mapCount >= config.maxMapCount - 3 { throw Errno.noMemory }
    vmaWriteBegin(vma)
    let flags = vma.flags
    // copy_vma: a private anonymous VMA that never had a page may take the new address as its
    // offset, so that it can merge there.
    var pgoff = vma.pageIndex(addr)
    if vma.isAnonymous && vma.anonVMA == 0 { pgoff = newAddr >> Page.shift }
    let newVMA: VMA
    if let merged = mergeNewRange(
      start: newAddr, end: newAddr + newLen, flags: flags, pgoff: pgoff, shmem: vma.backing, anon: vma.anonVMA,
      cloned: vma.anonChainShared)
    {
      newVMA = merged
    } else {
      newVMA = makeVMA(
        start: newAddr, end: newAddr + newLen, flags: flags, pgoff: pgoff, shmem: vma.shmem, file: vma.file,
        sysvAttach: vma.sysvAttach)
      newVMA.setAnonVMA(vma.anonVMA)
      newVMA.anonChainShared = vma.anonChainShared
      insertVMA(newVMA)
    }
    // File and shmem entries move under the mapping lock, so that a truncate or hole punch
    // finds each at its old place or its new one.
    let moved = vma.withBackingMappingsLocked { movePageTables(from: addr, to: newAddr, len: oldLen, op: &op) }
    if !moved {
      // Out of page-table frames before anything moved: drop the destination instead.
      try? unmapRange(newAddr, newAddr + newLen, gather: &op.gather)
      throw Errno.noMemory
    }
    writerHook?(.afterZap, addr)
    vmStatAccount(flags, Int64(newLen >> Page.shift))
    if op.dontUnmap {
      // The source keeps its VMA, without its pages and without VM_LOCKED (locked_vm stays
      // charged, as 6.18 leaves it).
      if let source = tree.findW(addr), source.start <= addr {
        setVMAFlags(source, source.flags.subtracting([.locked, .lockOnFault]))
        if source !== newVMA && source.start == addr && source.end == addr + oldLen { source.setAnonVMA(0) }
      }
      return newAddr
    }
    if oldLen > 0 {
      try? unmapRange(addr, addr + oldLen, gather: &op.gather)
    }
    return newAddr
  }

  /// `move_page_tables`: moves every entry of `[from, from+len)` to the same offset from `to`.
  /// Where a whole 2 MiB PMD moves between PMD-aligned places and the destination has no PTE
  /// table there, the PTE table itself moves (`move_normal_pmd`): one PMD entry changes, the
  /// table keeps its entries and its PTL, and a speculative fault that walked the old PMD sees
  /// it change (`spf_pmd_changed`). Elsewhere entries move one by one under the source and
  /// destination PTLs (`move_ptes`). Frames keep their references and mapcounts.
  ///
  /// Destination levels are allocated first, so that running out of memory moves nothing
  /// (Linux moves back what it moved).
  /// - Requires: `mmap_lock` held for write, the source VMA write-marked (`vmaWriteBegin`), and its
  ///   backing object's mapping lock held.
  private func movePageTables(from: UInt64, to: UInt64, len: UInt64, op: inout RemapOp) -> Bool {
    if len == 0 { return true }
    let pmdSize = PageTable.pmdSize
    let end = from + len
    /// Whether the chunk `[addr, next)` moves as a whole PTE table.
    func wholeTable(_ addr: UInt64, _ next: UInt64, _ dst: UInt64) -> Bool {
      guard addr & (pmdSize - 1) == 0, dst & (pmdSize - 1) == 0, next - addr == pmdSize,
        let old = pageTable.lookupPMD(addr), old.pointee.load(ordering: .relaxed) & (PTE.present | PTE.protNone) != 0
      else { return false }
      let new = pageTable.lookupPMD(dst)
      return new == nil || new!.pointee.load(ordering: .relaxed) == 0
    }
    // Allocate.
    var addr = from
    while addr < end {
      let next = min((addr | (pmdSize - 1)) &+ 1, end)
      let dst = to + (addr - from)
      if wholeTable(addr, next, dst) {
        if pageTable.walker.allocPMD(dst, cache: nil) == nil { return false }
      } else {
        // Every destination table a present source table's span lands in (at most two): an
        // entry may appear there before its table is locked (a speculative fault that validated
        // before this writer marked the VMA installs under the PTL).
        var failed = false
        pageTable.forEachPTETable(addr, next) { _, first, last, va0 in
          for i in [first, last - 1] where !failed {
            if pageTable.allocPTE(to + (va0 + UInt64(i) << Page.shift - from), cache: nil) == nil { failed = true }
          }
        }
        if failed { return false }
      }
      addr = next
    }
    // Move.
    var movedPresent = false
    /// `move_ptes` for the chunk `[addr, next)`.
    func moveEntries(_ addr: UInt64, _ next: UInt64) {
      pageTable.forEachPTETable(addr, next) { table, first, last, va0 in
        let srcLock = pageTable.ptl(for: table)
        srcLock.lock()
        for i in first..<last {
          let e = table[i].load(ordering: .relaxed)
          if e == 0 { continue }
          let dstVA = to + (va0 + UInt64(i) << Page.shift - from)
          // Allocated above; only a table a speculative fault created since can lack one (the
          // frame allocator is a leaf lock). Out of memory, the entry stays and goes with the
          // source's unmap.
          guard let slot = pageTable.lookupPTE(dstVA) ?? pageTable.allocPTE(dstVA, cache: nil) else { continue }
          let sameTable = slot - PageTable.index(dstVA, level: 1) == table
          if !sameTable { pageTable.ptl(for: slot).lock() }
          table[i].store(0, ordering: .releasing)
          slot.pointee.store(e, ordering: .releasing)
          if !sameTable { pageTable.ptl(for: slot).unlock() }
          if e & (PTE.present | PTE.protNone) != 0 { movedPresent = true }
        }
        srcLock.unlock()
      }
    }
    addr = from
    while addr < end {
      let next = min((addr | (pmdSize - 1)) &+ 1, end)
      let dst = to + (addr - from)
      var tableMoved = false
      if wholeTable(addr, next, dst), let oldPMD = pageTable.lookupPMD(addr), let newPMD = pageTable.lookupPMD(dst) {
        let entry = oldPMD.pointee.load(ordering: .relaxed)
        if entry & PTE.huge != 0 {
          // A huge leaf moves whole; if it cannot, `moveEntries` splits it.
          tableMoved = moveHugePMD(oldPMD, newPMD)
        } else {
          let table = pageTable.entries(PFN(physical: entry & PTE.addressMask))
          let ptl = pageTable.ptl(for: table)
          ptl.lock()
          // A speculative fault may have filled the destination PMD meanwhile: then move entries.
          if newPMD.pointee.compareExchange(expected: 0, desired: entry, ordering: .acquiringAndReleasing).exchanged {
            oldPMD.pointee.store(0, ordering: .releasing)
            tableMoved = true
          }
          ptl.unlock()
        }
      }
      if tableMoved {
        movedPresent = true
      } else {
        moveEntries(addr, next)
      }
      addr = next
    }
    if movedPresent {
      op.moved = true
      op.gather.flushNeeded()
      op.gather.requireWait()
    }
    return true
  }

  /// `move_huge_pmd`: moves the huge PMD in `old` to the empty `new` (a 2 MiB-aligned source
  /// and destination), with its deposited table, under both PMD locks. `false` when `new` is no
  /// longer empty (then the caller moves entries, splitting the huge PMD).
  /// - Requires: as `movePageTables`.
  private func moveHugePMD(_ old: UnsafeMutablePointer<Atomic<UInt64>>, _ new: UnsafeMutablePointer<Atomic<UInt64>>) -> Bool {
    let oldLock = pageTable.pmdLock(for: old)
    let newLock = pageTable.pmdLock(for: new)
    let sameTable = UInt(bitPattern: old) >> Page.shift == UInt(bitPattern: new) >> Page.shift
    oldLock.lock()
    if !sameTable { newLock.lock() }
    defer {
      if !sameTable { newLock.unlock() }
      oldLock.unlock()
    }
    let entry = old.pointee.load(ordering: .relaxed)
    guard entry & PTE.huge != 0, new.pointee.load(ordering: .relaxed) == 0 else { return false }
    let table = pageTable.withdrawTable(old)
    pageTable.depositTable(new, table)
    new.pointee.store(entry, ordering: .releasing)
    old.pointee.store(0, ordering: .releasing)
    return true
  }
}
