/// `MAP_HUGETLB` mappings: the parts of `ksys_mmap_pgoff`, `do_mmap` and
/// `fs/hugetlbfs/inode.c` that make one, and the rules a hugetlb VMA follows afterwards.
///
/// What this machine's 6.18 kernel answers, and Faultline with it:
/// - The size comes from the flags' bits above `MAP_HUGE_SHIFT` (`MAP_HUGE_2MB`,
///   `MAP_HUGE_1GB`), the default size when they are 0; a size the machine has no pool for is
///   `EINVAL`, as is `MAP_HUGETLB` on any file (Faultline mounts no hugetlbfs).
/// - The length rounds up to the huge page; the address is aligned to it (a misaligned
///   `MAP_FIXED` address is `EINVAL`, a hint rounds up); the file offset must be aligned too.
/// - Without `MAP_NORESERVE` every huge page is reserved at mmap time: `ENOMEM` when the pool
///   (`nr_hugepages`, `nr_overcommit_hugepages`) cannot promise them — every call on a machine
///   with no huge pages. With `MAP_NORESERVE` the mapping is made and a fault the pool cannot
///   serve is `SIGBUS`.
/// - A hugetlb VMA splits only at huge page boundaries (`hugetlb_vm_op_split`): munmap,
///   mprotect, madvise and mmap over part of it at any other address are `EINVAL`. It never
///   merges, never grows (`VM_DONTEXPAND`), is never `VM_LOCKED`, and is not charged as
///   `VM_ACCOUNT` memory.
/// - In `/proc/self/maps` it is `/anon_hugepage (deleted)` on the size's hugetlbfs device.
/// - A private mapping is copy-on-write across `fork`, a whole huge page at a time, each copy
///   taken from the pool (`ShmemFile+HugeTLB.swift`).
extension AddressSpace {
  /// The huge page size `flags` ask for (`hstate_sizelog`), for a mapping of `file`.
  func hugetlbSize(_ flags: MapFlags, file: OpenFile?) throws(Errno) -> HugePageSize {
    // No file Faultline has is on hugetlbfs.
    if file != nil { throw Errno.invalidArgument }
    let log2 = flags.hugePageLog2
    guard let size = log2 == 0 ? machine.hugetlb.defaultSize : HugePageSize(log2: log2),
      machine.hugetlb.supports(size)
    else { throw Errno.invalidArgument }
    return size
  }

  /// `do_mmap`'s checks of a mapping of the anonymous hugetlbfs file, in Linux's order, and the
  /// flags they and `hugetlbfs_file_mmap` leave.
  func hugetlbMmapFlags(prot: Prot, flags: MapFlags, vmFlags: VMFlags) throws(Errno) -> VMFlags {
    var vmFlags = vmFlags
    let type = flags.intersection(.type)
    switch type {
    case .shared, .sharedValidate:
      // MAP_SHARED drops flags it does not know; MAP_SHARED_VALIDATE refuses them, but not the
      // size bits (host: MAP_SHARED_VALIDATE|MAP_HUGETLB|MAP_HUGE_2MB maps).
      let unknown = flags.subtracting(.legacyMask).subtracting(.hugeSizeBits)
      if type == .sharedValidate && !unknown.isEmpty { throw Errno.notSupported }
      vmFlags.formUnion([.shared, .mayShare])
    case .private:
      break
    default:
      throw Errno.invalidArgument
    }
    if vmFlags.contains(.growsDown) { throw Errno.invalidArgument }
    // Hugetlb always honours MAP_NORESERVE, whatever vm.overcommit_memory says.
    if flags.contains(.noReserve) { vmFlags.insert(.noReserve) }
    // __mmap_region clears the lock bits of a hugetlb VMA (and does not charge locked_vm).
    vmFlags.subtract([.locked, .lockOnFault])
    return vmFlags.union([.hugeTLB, .dontExpand])
  }

  /// `hugetlbfs_file_mmap`: the offset checks, then `hugetlb_reserve_pages` for every huge page
  /// of the mapping unless it is `VM_NORESERVE`. The file the mapping will hold.
  /// - Requires: `mmap_lock` held for write.
  func hugetlbReserve(_ len: UInt64, flags: VMFlags, pgoff: UInt64, size: HugePageSize) throws(Errno) -> HugeTLBFile {
    if pgoff % size.basePages != 0 { throw Errno.invalidArgument }
    // The file offset must fit a loff_t (PGOFF_LOFFT_MAX) and the mapping's end with it.
    if pgoff >> (64 - (Page.shift + 1)) != 0 || (pgoff << Page.shift) &+ len < len { throw Errno.invalidArgument }
    let first = pgoff / size.basePages
    let count = len / size.bytes
    if flags.contains(.noReserve) { return HugeTLBFile(pool: machine.hugetlb, size: size, reserved: first..<first) }
    if !machine.hugetlb.reserve(Int(count), size) { throw Errno.noMemory }
    return HugeTLBFile(pool: machine.hugetlb, size: size, reserved: first..<first + count)
  }

  /// `mremap`'s `align_hugetlb`: both lengths round up to the huge page, both addresses must be
  /// aligned to it, and the mapping may not grow (its reservation cannot be split).
  func hugetlbAlignRemap(
    _ huge: HugeTLBFile, addr: UInt64, newAddress: UInt64, oldLen: inout UInt64, newLen: inout UInt64
  ) throws(Errno) {
    let mask = huge.size.offsetMask
    oldLen = huge.size.roundUp(oldLen)
    newLen = huge.size.roundUp(newLen)
    if addr & mask != 0 || newAddress & mask != 0 || newLen > oldLen { throw Errno.invalidArgument }
  }

  /// `MADV_DONTNEED` on a hugetlb VMA (`madvise_dontneed_free_valid_vma`): the start must be
  /// aligned and the end rounds down to whole huge pages; a private mapping's pages go back to
  /// the pool. Other discards (`MADV_FREE`) are `EINVAL`.
  /// - Requires: `mmap_lock` held.
  func hugetlbDontNeed(
    _ vma: VMA, _ huge: HugeTLBFile, _ start: UInt64, _ end: UInt64, advice: Advice, gather: inout MMUGather
  ) throws(Errno) {
    if advice == Advice.free || start & huge.size.offsetMask != 0 { throw Errno.invalidArgument }
    let end = end & ~huge.size.offsetMask
    if end <= start { return }
    huge.faultMutex.withLock {
      pageTable.zapRange(start, end, gather: &gather)
      let (first, last) = (vma.pageIndex(start), vma.pageIndex(end))
      if let shmem = vma.shmem, !vma.flags.contains(.shared),
        !shmem.isMapped(outside: vma, fromPage: first, toPage: last)
      {
        shmem.punchHole(first, last)
      }
    }
  }

  /// After a hugetlb VMA is unmapped, zapped and unlinked: a private mapping's huge pages and
  /// reservations in its range go back to the pool (`hugetlb_vm_op_close`), unless another VMA
  /// maps them (the destination of an mremap move); a shared mapping's stay with its file until
  /// the last mapping goes (the file's release, `hugetlbfs_evict_inode`, which Linux runs before
  /// munmap returns to user space). A huge page a fork's other side still holds stays with it.
  func hugetlbUnmapped(_ vma: VMA) {
    guard let shmem = vma.shmem, let huge = shmem.hugetlb else { return }
    let (first, last) = (vma.pgoff, vma.pgoff + vma.pages)
    huge.faultMutex.withLock {
      if vma.flags.contains(.shared) {
        if !shmem.isMapped { shmem.punchHole(0, .max) }
      } else if !shmem.isMapped(outside: vma, fromPage: first, toPage: last) {
        shmem.punchHole(first, last)
      }
    }
  }
}

extension MapFlags {
  /// `MAP_HUGE_SHIFT`: the huge page size's log2 sits in the bits from here.
  public static let hugeShift: Int32 = 26
  /// `MAP_HUGE_MASK`, below `hugeShift`.
  public static let hugeMask: Int32 = 0x3f
  /// `MAP_HUGE_MASK << MAP_HUGE_SHIFT`: the bits that encode the size.
  public static let hugeSizeBits = MapFlags(rawValue: hugeMask << hugeShift)
  /// `MAP_HUGE_2MB`.
  public static let huge2MB = MapFlags(rawValue: 21 << hugeShift)
  /// `MAP_HUGE_1GB`.
  public static let huge1GB = MapFlags(rawValue: 30 << hugeShift)

  /// The log2 of the huge page size the flags name (0: the default size).
  public var hugePageLog2: Int { Int((UInt32(bitPattern: rawValue) >> UInt32(Self.hugeShift)) & UInt32(Self.hugeMask)) }
}
