import Synchronization

/// Writeback of a file's dirty pages with every mapping of them write-protected first
/// (`filemap_write_and_wait_range` with `folio_mkclean`), used by `msync`, `munmap` of shared
/// mappings, `close`, `fsync` and `sync`.
///
/// Order, per batch: the page cache clears the dirty state; every PTE that maps one of the
/// pages, in every address space (the inode's `i_mmap`), loses its write and dirty bits; one RCU
/// grace period (per machine whose entries changed) lets stores through old writable entries
/// finish; then the bytes are written. A store after the write-protect faults and dirties the page
/// again, so no store is lost.
extension Inode {
  /// Writes back the dirty pages in `[from, to)` (page indices); syncs the file when `sync`.
  func writeback(from: UInt64, to: UInt64, sync: Bool) throws(Errno) {
    var cleaned: [ObjectIdentifier: Machine] = [:]
    _ = try pageCache.writeback(
      from: from, to: to,
      mkclean: { index, page in
        self.forEachMapping { token in
          if let vma = token as? VMA, vma.mkclean(index: index, page: page) {
            cleaned[ObjectIdentifier(vma.mm.machine)] = vma.mm.machine
          }
        }
      },
      flush: {
        for machine in cleaned.values {
          machine.rcu.synchronize()
          machine.vmstat.add(.tlbFlush)
        }
      })
    if sync { try fs.sync(self) }
  }
}

extension VMA {
  /// `page_mkclean_one` for this VMA: write-protects and cleans the PTE that maps `page` at file
  /// index `index`, if any. Called under the inode's mapping lock; takes only the PTL.
  /// - Requires: the inode's mapping lock held (`Inode.forEachMapping`).
  func mkclean(index: UInt64, page: PFN) -> Bool {
    let (start, end, pgoff) = (self.start, self.end, self.pgoff)
    guard index >= pgoff, index < pgoff + ((end - start) >> Page.shift) else { return false }
    let addr = start + ((index - pgoff) << Page.shift)
    guard let slot = mm.pageTable.lookupPTE(addr) else { return false }
    let lock = mm.pageTable.ptl(for: slot)
    lock.lock()
    defer { lock.unlock() }
    let e = PTE(raw: slot.pointee.load(ordering: .relaxed))
    guard e.isPresent, e.pfn == page, e.raw & (PTE.write | PTE.dirty) != 0 else { return false }
    slot.pointee.store(e.raw & ~(PTE.write | PTE.dirty), ordering: .releasing)
    return true
  }
}
