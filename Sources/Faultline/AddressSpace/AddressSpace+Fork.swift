import Synchronization

/// `fork(2)`'s memory half (`dup_mm` → `dup_mmap` → `copy_page_range`).
///
/// The child gets a copy of every VMA but those marked `MADV_DONTFORK` (`VM_DONTCOPY`), without
/// `VM_LOCKED`/`VM_LOCKONFAULT` (locks are not inherited), and a copy of the file table. Page
/// tables are copied only where Linux copies them (`vma_needs_copy`): VMAs with an anon_vma (they
/// may hold private pages) that are not `MADV_WIPEONFORK`, and private hugetlb VMAs, whose child
/// gets a copy of the hugetlb object holding the same huge pages; shared and file-backed VMAs
/// without private pages fault again in the child. Copied private pages are write-protected in both
/// address spaces (copy-on-write on the next write, reuse once a page is no longer shared).
///
/// Concurrency: the parent's `mmap_lock` is held for write and every parent VMA is write-marked
/// before its page tables are read (`vma_start_write` in `dup_mmap`, the fix for the per-VMA-lock
/// memory corruption of Linux 6.4; under SPF the `vmSequence` goes odd, under Lespinasse the
/// mm sequence is odd already), so no fault of any design can install or reuse a page in a range
/// being copied. Before the parent's lock is released, one grace period lets every access that
/// translated through a now write-protected entry finish (`flush_tlb_mm`).
extension AddressSpace {
  /// Duplicates this address space for a child process (`dup_mmap`). Throws `ENOMEM` when out of
  /// frames for the child's page tables; the child is torn down then.
  package func fork() throws(Errno) -> AddressSpace {
    let child = try AddressSpace(machine: machine, config: config, files: files.copy())
    mmapWriteLock()
    child.mmapWriteLock()
    // arch_dup_pkeys: the child has the parent's keys, execute-only key included.
    child.pkeyAllocationMap = pkeyAllocationMap
    child.executeOnlyPkeyValue = executeOnlyPkeyValue
    var failure: Errno?
    var wroteProtect = false
    var vmas: [VMA] = []
    tree.forEach { vmas.append($0) }
    // A private hugetlb object's copy, once for all the VMAs split from its mapping.
    var hugetlbCopies: [ObjectIdentifier: ShmemFile] = [:]
    for v in vmas {
      vmaWriteBegin(v)
      if v.flags.contains(.dontCopy) { continue }
      let flags = v.flags.subtracting([.locked, .lockOnFault])
      let privateHugetlb = flags.contains(.hugeTLB) && !flags.contains(.shared)
      var shmem = v.shmem
      if privateHugetlb, let object = shmem {
        shmem = hugetlbCopies[ObjectIdentifier(object)] ?? object.forkPrivateHugetlb()
        hugetlbCopies[ObjectIdentifier(object)] = shmem
      }
      let c = child.makeVMA(
        start: v.start, end: v.end, flags: flags, pgoff: v.pgoff, shmem: shmem, file: v.file, sysvAttach: v.sysvAttach)
      let wipe = v.flags.contains(.wipeOnFork)
      // anon_vma_fork: each child VMA links to the parent VMA's anon_vmas (anon_vma_clone) and
      // gets one of its own, a child of the parent's. Even the VMAs of one split parent VMA get
      // different ones, so they no longer merge with each other in the child. (anon_vma_clone's
      // reuse of an anon_vma left with no VMA changes nothing here: no other VMA holds it.)
      if v.anonVMA != 0 && !wipe {
        c.setAnonVMA(anonVMASource.wrappingAdd(1, ordering: .relaxed).newValue)
        c.anonChainShared = true
      }
      child.insertVMA(c)
      child.vmStatAccount(flags, Int64(c.pages))
      // copy_hugetlb_page_range: a private hugetlb mapping's pages are shared copy-on-write.
      let needsCopy = !wipe && (v.anonVMA != 0 || privateHugetlb || !v.flags.intersection([.pfnMap, .mixedMap]).isEmpty)
      if needsCopy {
        let cow = v.flags.intersection([.shared, .mayWrite]) == .mayWrite
        if let error = copyPageRange(into: child, v.start, v.end, cow: cow, shared: v.flags.contains(.shared), wroteProtect: &wroteProtect) {
          failure = error
          break
        }
      }
      writerHook?(.afterCopyVMA, v.start)
    }
    child.startBrk = startBrk
    child.brkValue = brkValue
    child.anonVMASource.store(anonVMASource.load(ordering: .relaxed), ordering: .relaxed)
    child.mmapWriteUnlock()
    // flush_tlb_mm: accesses still writing through entries that lost their write bit finish
    // before a fault can see the page shared, and before fork returns.
    if wroteProtect { rcu.synchronize() }
    mmapWriteUnlock()
    if let failure {
      child.destroy()
      throw failure
    }
    return child
  }

  /// `copy_page_range` for `[start, end)`: copies every PTE into `child`'s page tables, taking a
  /// frame reference and mapcount for each mapped frame (`copy_present_pte`). In a COW mapping a
  /// writable entry loses its write bit in both; in a shared mapping the child's copy is clean.
  /// Each parent table is copied under its PTL. Returns `ENOMEM` when a child table cannot be
  /// allocated.
  /// - Requires: `mmap_lock` of both address spaces held for write, and the source VMA
  ///   write-marked.
  private func copyPageRange(
    into child: AddressSpace, _ start: UInt64, _ end: UInt64, cow: Bool, shared: Bool, wroteProtect: inout Bool
  ) -> Errno? {
    var failure: Errno?
    var protected = false
    let frames = memory
    pageTable.forEachPTETable(start, end, huge: { pmd, va in
      if failure != nil { return true }
      if !copyHugePMD(into: child, pmd, va, cow: cow, protected: &protected) { failure = .noMemory }
      return true
    }) { table, from, to, va0 in
      if failure != nil { return }
      guard let first = child.pageTable.allocPTE(va0 + UInt64(from) << Page.shift, cache: nil) else {
        failure = .noMemory
        return
      }
      let dst = first - from
      let lock = pageTable.ptl(for: table)
      lock.lock()
      for i in from..<to {
        var e = table[i].load(ordering: .relaxed)
        if e == 0 { continue }
        let pte = PTE(raw: e)
        if cow && e & PTE.write != 0 {
          e &= ~PTE.write
          table[i].store(e, ordering: .releasing)
          protected = true
        }
        if shared { e &= ~PTE.dirty }
        e &= ~PTE.accessed  // pte_mkold
        if pte.mapsFrame && !pte.isSpecial {
          // A subpage of a split huge page: the reference is its head's.
          frames.frames.getFolio(pte.pfn)
          frames.meta(pte.pfn).addMap()
        }
        dst[i].store(e, ordering: .relaxed)
      }
      lock.unlock()
    }
    if protected { wroteProtect = true }
    return failure
  }

  /// `copy_huge_pmd`: the child maps the same huge page (or the huge zero page) with its own
  /// deposited table, write-protected in both when the mapping is COW, as the PTE copy does.
  /// Returns `false` when the child's PMD level or table cannot be allocated.
  /// - Requires: as `copyPageRange`; the PMD covers `[va, va + 2 MiB)`, inside the VMA.
  private func copyHugePMD(
    into child: AddressSpace, _ pmd: UnsafeMutablePointer<Atomic<UInt64>>, _ va: UInt64, cow: Bool,
    protected: inout Bool
  ) -> Bool {
    guard let dst = child.pageTable.walker.allocPMD(va, cache: nil) else { return false }
    guard let table = memory.allocateZeroed(flags: .pageTable) else { return false }
    let lock = pageTable.pmdLock(for: pmd)
    lock.lock()
    var e = pmd.pointee.load(ordering: .relaxed)
    if cow && e & PTE.write != 0 {
      e &= ~PTE.write
      pmd.pointee.store(e, ordering: .releasing)
      protected = true
    }
    e &= ~PTE.accessed  // pmd_mkold
    let head = PFN(physical: e & PTE.addressMask)
    if e & PTE.special != 0 {
      // The huge zero page exists while this PMD maps it: this only takes a reference.
      _ = memory.getHugeZeroPage()
    } else {
      memory.meta(head).get()
      memory.frames.addEntireMap(head, 1)
    }
    let childLock = child.pageTable.pmdLock(for: dst)
    childLock.lock()
    child.pageTable.depositTable(dst, table)
    dst.pointee.store(e, ordering: .releasing)
    childLock.unlock()
    lock.unlock()
    return true
  }
}
