/// `shmat(2)` and `shmdt(2)` (`do_shmat`, `ksys_shmdt`): mapping the machine's System V
/// segments (`ShmNamespace`) into this address space.
///
/// An attach is a `MAP_SHARED` mapping of the segment's shmem object at offset 0, placed as a
/// shared anonymous mapping is (`shmem_get_unmapped_area` of the internal mount, so no THP
/// alignment while shmem THP is off), and shown in maps as `/SYSV<key> (deleted)` with the id
/// as inode. Splits, `mremap` and `fork` keep the VMAs attached (each counts in `shm_nattch`).
extension AddressSpace {
  /// `shmat(id, addr, flags)`: the attach address. `EINVAL` for a bad id, an unaligned `addr`
  /// without `SHM_RND`, `SHM_REMAP` without an address, or an address whose range is in use
  /// without `SHM_REMAP`; `EACCES` when the mode denies the access; then `mmap`'s errors.
  package func shmat(_ id: Int32, _ addr: UInt64, flags: ShmatFlags, cpu: CPU) throws(Errno) -> UInt64 {
    var addr = addr
    var mapFlags = MapFlags.shared
    if addr != 0 {
      // SHMLBA is a page on x86-64.
      if !Page.isAligned(addr) {
        if !flags.contains(.round) { throw Errno.invalidArgument }
        addr = Page.roundDown(addr)
        if addr == 0 && flags.contains(.remap) { throw Errno.invalidArgument }
      }
      mapFlags.insert(.fixed)
    } else if flags.contains(.remap) {
      throw Errno.invalidArgument
    }
    if id < 0 { throw Errno.invalidArgument }
    let readOnly = flags.contains(.readOnly)
    var prot: Prot = readOnly ? .read : [.read, .write]
    var want: UInt32 = readOnly ? 0o4 : 0o6
    if flags.contains(.exec) {
      prot.insert(.exec)
      want |= 0o1
    }
    let segment = try machine.shm.beginAttach(id, want: want)
    defer { machine.shm.endAttach(segment) }
    let (object, size) = (segment.object, segment.size)
    let (mapped, lockedByDefault) = try withMmapWriteLock { () throws(Errno) in
      // Without SHM_REMAP the range (of the segment's unrounded size) must be free.
      if addr != 0 && !flags.contains(.remap) {
        if addr &+ size < addr { throw Errno.invalidArgument }
        if let v = tree.findW(addr), v.start < addr + size { throw Errno.invalidArgument }
      }
      return try doMmap(
        addr, Page.roundUp(size), prot: prot, flags: mapFlags, file: nil, pgoff: 0, cpu: cpu,
        segment: (object, !readOnly))
    }
    if lockedByDefault { populate(mapped, Page.roundUp(size), cpu: cpu) }
    return mapped
  }

  /// `shmdt(addr)`: finds the first attachment at or above `addr` that maps the segment's
  /// offset `vm_start - addr` (so one partly unmapped at its start is still found), learns the
  /// segment's size from it, and unmaps every VMA of that attach (`vm_file`) within that size
  /// of `addr` that does the same: a piece of another attach of the segment, moved there by
  /// mremap, stays. `EINVAL` when `addr` is unaligned or nothing matches. As Linux, errors
  /// of the unmaps themselves are ignored.
  package func shmdt(_ addr: UInt64) throws(Errno) {
    if !Page.isAligned(addr) { throw Errno.invalidArgument }
    mmapWriteLock()
    var gather = MMUGather()
    func attached(_ v: VMA) -> Bool {
      guard let object = v.shmem, object.isSysVSegment, v.start >= addr else { return false }
      return (v.start - addr) >> Page.shift == v.pgoff
    }
    var cursor = tree.findW(addr)
    while let v = cursor, !attached(v) { cursor = tree.findW(v.end) }
    guard let first = cursor, let object = first.shmem else {
      mmapWriteUnlock()
      throw Errno.invalidArgument
    }
    let size = Page.roundUp(object.size)
    var doomed: [(UInt64, UInt64)] = [(first.start, first.end)]
    cursor = tree.findW(first.end)
    while let v = cursor, v.end - addr <= size {
      if v.shmem === object && v.sysvAttach === first.sysvAttach && attached(v) { doomed.append((v.start, v.end)) }
      cursor = tree.findW(v.end)
    }
    for (start, end) in doomed { try? unmapRange(start, end, gather: &gather) }
    let writeback = takePendingWriteback()
    mmapWriteUnlock()
    gather.finish(machine: machine, synchronous: false)
    writeBack(writeback)
  }
}

/// One `shmat` of a segment: Linux's `shm_file_data` and the `struct file` `do_shmat` makes
/// for each attach. Its VMAs (and their splits, moves and fork copies) carry it as the
/// `vm_file` that merge rules compare, so the VMAs of two attaches never merge, even side by
/// side at consecutive offsets of the segment.
final class SysVAttach: Sendable {}
