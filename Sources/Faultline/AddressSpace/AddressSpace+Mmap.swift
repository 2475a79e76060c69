/// `mmap(2)` (`ksys_mmap_pgoff` → `do_mmap` → `mmap_region`) and `get_unmapped_area`: x86-64's
/// top-down search, the legacy bottom-up layout, and `MAP_32BIT`'s low window.
///
/// Checks run in Linux's order, so that a call with several faults fails with Linux's errno:
/// offset alignment, file descriptor, length, offset overflow, `max_map_count`, placement,
/// `MAP_FIXED_NOREPLACE`, `MAP_LOCKED` limits, mapping type, then the rlimits.
///
/// A file mapping holds a reference on its `OpenFile` (from the address space's `files`).
extension AddressSpace {
  /// `mmap(2)` as issued by `cpu`'s thread, which takes the `MAP_POPULATE`/`MAP_LOCKED` faults;
  /// `CPU.mmap` is the entry point (this form is for the package's runners and tests).
  package func mmap(
    _ addr: UInt64, _ length: UInt64, prot: Prot, flags: MapFlags, fd: Int32 = -1, offset: Int64 = 0,
    cpu: CPU
  ) throws(Errno) -> UInt64 {
    if !Page.isAligned(UInt64(bitPattern: offset)) { throw Errno.invalidArgument }
    var file: OpenFile?
    if !flags.contains(.anonymous) {
      file = try files.fget(fd)
    }
    defer { file?.fput() }
    // ksys_mmap_pgoff: MAP_HUGETLB takes a hugetlbfs file of the size the flags name, and the
    // length rounds up to that size (to 0 when it wraps, which is EINVAL below).
    var length = length
    var huge: HugePageSize?
    if flags.contains(.hugeTLB) {
      let size = try hugetlbSize(flags, file: file)
      length = size.roundUp(length)
      huge = size
    }
    if length == 0 { throw Errno.invalidArgument }
    let len = Page.roundUp(length)
    if len == 0 { throw Errno.noMemory }
    // An anonymous mapping ignores the offset for shared memory and uses the address for
    // private memory, but the overflow check still sees the caller's value.
    let callerPgoff = UInt64(bitPattern: offset) >> Page.shift
    if callerPgoff &+ (len >> Page.shift) < callerPgoff { throw Errno.overflow }

    let (mapped, lockedByDefault) = try withMmapWriteLock { () throws(Errno) in
      try doMmap(addr, len, prot: prot, flags: flags, file: file, huge: huge, pgoff: callerPgoff, cpu: cpu)
    }
    if flags.contains(.locked) || lockedByDefault || flags.intersection([.populate, .nonBlock]) == .populate {
      populate(mapped, len, cpu: cpu)
    }
    return mapped
  }

  /// Runs `body` (a `doMmap`) with `mmap_lock` held for write, then writes back what its unmap
  /// left dirty. Returns its address, and whether `mlockall(MCL_FUTURE)` made the mapping
  /// VM_LOCKED, so that the caller populates it as `MAP_LOCKED` is (a VM_LOCKONFAULT one is
  /// skipped by the populate).
  func withMmapWriteLock(_ body: () throws(Errno) -> UInt64) throws(Errno) -> (UInt64, lockedByDefault: Bool) {
    mmapWriteLock()
    let result: Result<UInt64, Errno>
    do throws(Errno) {
      result = .success(try body())
    } catch {
      result = .failure(error)
    }
    let lockedByDefault = defFlags.contains(.locked)
    let writeback = takePendingWriteback()
    mmapWriteUnlock()
    writeBack(writeback)
    return (try result.get(), lockedByDefault)
  }

  /// `do_mmap` for anonymous, hugetlb (`huge`) and file memory, with `mmap_lock` held for write. `segment` is
  /// the System V segment `shmat` maps (`MAP_SHARED`, with the writability of its attach).
  /// - Requires: `mmap_lock` held for write.
  func doMmap(
    _ hint: UInt64, _ len: UInt64, prot: Prot, flags: MapFlags, file: OpenFile?, huge: HugePageSize? = nil, pgoff filePgoff: UInt64,
    cpu: CPU?, segment: (object: ShmemFile, writable: Bool)? = nil
  ) throws(Errno) -> UInt64 {
    if mapCount > config.maxMapCount { throw Errno.noMemory }
    var flags = flags
    if flags.contains(.fixedNoReplace) { flags.insert(.fixed) }
    // PROT_EXEC alone is execute-only memory where the CPU has protection keys. The key is
    // taken (and the caller's PKRU set) before placement, so even a failing call keeps it.
    let pkey = prot == .exec ? max(0, executeOnlyPkey(cpu: cpu)) : 0
    let hint = flags.contains(.fixed) ? hint : roundHintToMin(hint)
    let allocator = huge.map { UnmappedAreaAllocator.hugetlb($0) }
      ?? unmappedAreaAllocator(file: file, flags: flags, pgoff: filePgoff)
    let addr = try getUnmappedArea(hint, len, flags: flags, allocator: allocator)
    if flags.contains(.fixedNoReplace), let v = tree.findW(addr), v.start < addr + len {
      throw Errno.fileExists
    }
    var vmFlags = VMFlags.fromProt(prot, pkey: pkey).union(defFlags).union([.mayRead, .mayWrite, .mayExec])
    if flags.contains(.growsDown) { vmFlags.insert(.growsDown) }
    // MAP_STACK means no transparent huge pages (Linux 6.7+: VM_NOHUGEPAGE).
    if flags.contains(.stack) { vmFlags.insert(.noHugePage) }
    if flags.contains(.locked) {
      vmFlags.insert(.locked)
      // can_do_mlock.
      if config.rlimitMemlock == 0 && !config.capIPCLock { throw Errno.notPermitted }
    }
    // mlock_future_ok, for MAP_LOCKED or def_flags alike.
    if !mlockFutureOK(vmFlags, len) { throw Errno.resourceTemporarilyUnavailable }
    if let huge {
      vmFlags = try hugetlbMmapFlags(prot: prot, flags: flags, vmFlags: vmFlags)
      return try mmapRegion(addr, len, flags: vmFlags, pgoff: filePgoff, shmem: true, huge: huge)
    }
    if let file {
      // file_mmap_ok: the range must fit a file's largest offset (MAX_LFS_FILESIZE).
      if len > Inode.maxFileSize || filePgoff > (Inode.maxFileSize - len) >> Page.shift { throw Errno.overflow }
      vmFlags = try fileMmapFlags(file, prot: prot, flags: flags, vmFlags: vmFlags)
      if flags.contains(.noReserve) { vmFlags.insert(.noReserve) }
      return try mmapRegion(addr, len, flags: vmFlags, pgoff: filePgoff, shmem: false, file: file)
    }
    let pgoff: UInt64
    var shmem = false
    switch flags.intersection(.type) {
    case .shared:
      if vmFlags.contains(.growsDown) { throw Errno.invalidArgument }
      pgoff = 0
      vmFlags.formUnion([.shared, .mayShare])
      // An SHM_RDONLY attach maps a file opened read-only.
      if segment?.writable == false { vmFlags.subtract([.mayWrite, .shared]) }
      shmem = true
    case .private:
      pgoff = addr >> Page.shift
    case .droppable:
      // A locked or stack area cannot be droppable; anonymous MAP_HUGETLB memory is a hugetlbfs
      // file by now, whose mapping types do not include MAP_DROPPABLE.
      if flags.contains(.locked) || vmFlags.contains(.growsDown) || flags.contains(.hugeTLB) {
        throw Errno.invalidArgument
      }
      vmFlags.formUnion([.droppable, .noReserve, .wipeOnFork, .dontDump])
      // mlockall(MCL_FUTURE)'s VM_LOCKED does not stick (`mmapRegion`; the populate still runs).
      pgoff = addr >> Page.shift
    default:
      throw Errno.invalidArgument
    }
    if flags.contains(.noReserve) { vmFlags.insert(.noReserve) }
    return try mmapRegion(addr, len, flags: vmFlags, pgoff: pgoff, shmem: shmem, segment: segment?.object)
  }

  /// `mmap_region`: rlimits, unmapping what the range covers, merging or inserting.
  private func mmapRegion(
    _ addr: UInt64, _ len: UInt64, flags: VMFlags, pgoff: UInt64, shmem: Bool, file: OpenFile? = nil,
    huge: HugePageSize? = nil, segment: ShmemFile? = nil
  ) throws(Errno) -> UInt64 {
    let end = addr + len
    let pages = len >> Page.shift
    if !mayExpandVM(flags, pages) {
      let covered = pagesMapped(addr, end)
      if !mayExpandVM(flags, pages - covered) { throw Errno.noMemory }
    }
    do throws(Errno) {
      try unmapRange(addr, end)
    } catch {
      // A sealed VMA in the way is EPERM (vms_gather_munmap_vmas), a hugetlb VMA it would split
      // at an unaligned address EINVAL (hugetlb_vm_op_split).
      throw error == .notPermitted || error == .invalidArgument ? error : Errno.noMemory
    }
    // hugetlbfs_file_mmap's checks and reservation run after the range was cleared: a failing
    // MAP_FIXED call leaves a hole where the old mappings were (vms_abort_munmap_vmas cannot
    // restore VMAs whose entries a file's ->mmap made it zap), as the host does.
    let hugetlb = try huge.map { (size) throws(Errno) in
      try hugetlbReserve(len, flags: flags, pgoff: pgoff, size: size)
    }
    var vmFlags = flags
    // accountable_mapping: private writable memory is charged (overcommit is not modelled);
    // hugetlb memory never is (its pool has its own reservations).
    if vmFlags.intersection([.noReserve, .shared, .write, .hugeTLB]) == .write { vmFlags.insert(.account) }
    let vma: VMA
    if !shmem, let merged = mergeNewRange(start: addr, end: end, flags: vmFlags, pgoff: pgoff, shmem: file) {
      vma = merged
    } else {
      let size = huge == nil ? len : (pgoff << Page.shift) + len
      let object = shmem
        ? segment ?? ShmemFile(inode: machine.allocateInode(), size: size, memory: memory, hugetlb: hugetlb) : nil
      vma = makeVMA(
        start: addr, end: end, flags: vmFlags, pgoff: pgoff, shmem: object, file: file,
        sysvAttach: segment == nil ? nil : SysVAttach())
      insertVMA(vma)
    }
    // __mmap_complete: a VMA that cannot be locked (`vma_supports_mlock`: droppable) loses the
    // lock bits mlockall(MCL_FUTURE) gave it only now, after the merge attempt saw them, so it
    // never merges with the unlocked droppable VMA beside it; it is not counted in locked_vm.
    if vmFlags.contains(.droppable) && vmFlags.contains(.locked) {
      vmFlags.subtract([.locked, .lockOnFault])
      setVMAFlags(vma, vmFlags)
    }
    vmStatAccount(vmFlags, Int64(pages))
    return addr
  }

  /// The `do_mmap` checks of a file mapping, in Linux's order, and the flags they leave.
  private func fileMmapFlags(_ file: OpenFile, prot: Prot, flags: MapFlags, vmFlags: VMFlags) throws(Errno) -> VMFlags {
    var vmFlags = vmFlags
    let type = flags.intersection(.type)
    if type == .shared || type == .sharedValidate {
      // MAP_SHARED ignores unknown flags; MAP_SHARED_VALIDATE refuses them (no MAP_SYNC here).
      if type == .sharedValidate && !flags.subtracting(.legacyMask).isEmpty { throw Errno.notSupported }
      if prot.contains(.write) && !file.writable { throw Errno.permissionDenied }
      vmFlags.formUnion([.shared, .mayShare])
      if !file.writable { vmFlags.subtract([.mayWrite, .shared]) }
    } else if type != .private {
      throw Errno.invalidArgument
    }
    if !file.readable { throw Errno.permissionDenied }
    // No ->mmap for directories and FIFOs.
    if file.inode.kind != .regular { throw Errno.operationNotSupportedByDevice }
    if vmFlags.contains(.growsDown) { throw Errno.invalidArgument }
    return vmFlags
  }

  /// Pages of `[start, end)` that some VMA covers (`count_vma_pages_range`).
  func pagesMapped(_ start: UInt64, _ end: UInt64) -> UInt64 {
    var n: UInt64 = 0
    var v = tree.findW(start)
    while let vma = v, vma.start < end {
      n += (min(vma.end, end) - max(vma.start, start)) >> Page.shift
      v = tree.findW(vma.end)
    }
    return n
  }

  // MARK: get_unmapped_area

  /// The `get_unmapped_area` that `__get_unmapped_area` hands a mapping to, chosen by its
  /// file and type.
  enum UnmappedAreaAllocator: Equatable {
    /// `mm_get_unmapped_area`: a file without a `get_unmapped_area` of its own.
    case plain
    /// Private anonymous memory: `thp_get_unmapped_area` for a hint-less length that is a
    /// multiple of 2 MiB (whenever the kernel is built with THP, whatever
    /// `transparent_hugepage/enabled` says), else `mm_get_unmapped_area`.
    case anonymous
    /// `hugetlb_get_unmapped_area`: a `MAP_HUGETLB` mapping, aligned to its page size.
    case hugetlb(HugePageSize)
    /// `shmem_get_unmapped_area`: shared anonymous memory (`internalMount`, the kernel's
    /// `shm_mnt`, whose huge setting follows `shmem_enabled`) or a tmpfs file (its mount's
    /// `huge=`, which Faultline leaves at the default `never`), mapped from page `pgoff`.
    case shmem(pgoff: UInt64, internalMount: Bool)
  }

  /// The allocator for a new mapping of `file` (or anonymous memory) with `flags`.
  func unmappedAreaAllocator(file: OpenFile?, flags: MapFlags, pgoff: UInt64) -> UnmappedAreaAllocator {
    if let file { return file.inode.fs is TmpFS ? .shmem(pgoff: pgoff, internalMount: false) : .plain }
    // shmem_zero_setup will give shared anonymous memory a shmem file.
    return flags.contains(.shared) ? .shmem(pgoff: 0, internalMount: true) : .anonymous
  }

  /// The allocator for moving the part of `vma` at `addr` (`vrm_set_new_addr`).
  func unmappedAreaAllocator(for vma: VMA, at addr: UInt64) -> UnmappedAreaAllocator {
    if let huge = vma.shmem?.hugetlb { return .hugetlb(huge.size) }
    if vma.shmem != nil { return .shmem(pgoff: vma.pageIndex(addr), internalMount: true) }
    if let file = vma.file { return unmappedAreaAllocator(file: file, flags: [], pgoff: vma.pageIndex(addr)) }
    return .anonymous
  }

  /// `__get_unmapped_area` with x86-64's top-down allocator: the range for a new mapping of
  /// `len` bytes at or near `hint`, placed by `allocator`. `do_mmap` has already raised its
  /// hint (`roundHintToMin`); mremap's is used as given. Whatever chose it — `MAP_FIXED`,
  /// `MREMAP_FIXED`, a hint or the search — an address below `vm.mmap_min_addr` is `EPERM`
  /// without `CAP_SYS_RAWIO` (`security_mmap_addr`; the LSM minimum is not enforced).
  func getUnmappedArea(
    _ hint: UInt64, _ len: UInt64, flags: MapFlags, allocator: UnmappedAreaAllocator = .plain
  ) throws(Errno) -> UInt64 {
    let taskSize = config.taskSize
    // hugetlb_get_unmapped_area: a MAP_FIXED address must be aligned to the huge page.
    if case .hugetlb(let size) = allocator, flags.contains(.fixed), hint & size.offsetMask != 0 {
      throw Errno.invalidArgument
    }
    // x86-64's arch_get_unmapped_area_topdown refuses only lengths above TASK_SIZE.
    if len > taskSize { throw Errno.noMemory }
    let addr: UInt64
    if flags.contains(.fixed) {
      if hint > taskSize - len { throw Errno.noMemory }
      if !Page.isAligned(hint) { throw Errno.invalidArgument }
      addr = hint
    } else {
      switch allocator {
      case .plain:
        addr = try mmGetUnmappedArea(hint, len, flags: flags)
      case .anonymous:
        if let aligned = thpGetUnmappedArea(hint, len, flags: flags) {
          addr = aligned
        } else {
          addr = try mmGetUnmappedArea(hint, len, flags: flags)
        }
      case .shmem(let pgoff, let internalMount):
        addr = try shmemGetUnmappedArea(hint, len, flags: flags, pgoff: pgoff, internalMount: internalMount)
      case .hugetlb(let size):
        // The hint rounds up to the huge page (to none when that wraps); the search finds a gap
        // with room to align in (`info.align_mask`).
        let aligned = size.roundUp(hint)
        addr = try mmGetUnmappedArea(hint == 0 ? 0 : aligned, len, flags: flags, align: size.bytes)
      }
    }
    // security_mmap_addr.
    if addr < config.mmapMinAddr && !config.capSysRawIO { throw Errno.notPermitted }
    return addr
  }

  /// `round_hint_to_min`: a hint below the kernel's `mmap_min_addr` (the larger of the sysctl
  /// and the LSM minimum) becomes that minimum.
  private func roundHintToMin(_ hint: UInt64) -> UInt64 {
    let addr = Page.roundDown(hint)
    return addr != 0 && addr < config.hintMinAddr ? Page.roundUp(config.hintMinAddr) : addr
  }

  /// `MAP_32BIT`'s window, `[1 GiB, 2 GiB)` (`find_start_end`; Linux moves its start by up
  /// to 32 MiB only under ASLR).
  static let map32BitStart: UInt64 = 0x4000_0000
  static let map32BitEnd: UInt64 = 0x8000_0000

  /// `mm_get_unmapped_area`: the hint when its range is free (guard gaps included) and ends
  /// below the search's top, else `searchArea`. Top-down (`arch_get_unmapped_area_topdown`)
  /// and bottom-up (`arch_get_unmapped_area`, for the legacy layout and for `MAP_32BIT`, whose
  /// top is 2 GiB) check the hint alike.
  /// `align` (a power of two, or 0) asks for an address that is a multiple of it.
  private func mmGetUnmappedArea(
    _ hint: UInt64, _ len: UInt64, flags: MapFlags, align: UInt64 = 0
  ) throws(Errno) -> UInt64 {
    let end = flags.contains(.map32Bit) ? Self.map32BitEnd : config.taskSize
    if len > end { throw Errno.noMemory }
    let addr = Page.roundDown(hint)
    if addr != 0 && addr <= end - len && rangeIsFree(addr, addr + len) { return addr }
    if let a = searchArea(len, flags: flags, align: align) { return a }
    throw Errno.noMemory
  }

  /// `__thp_get_unmapped_area` for anonymous memory (file offset 0): a hint-less length that is
  /// a multiple of a PMD is searched for with a PMD of padding, then aligned within it. In the
  /// top-down layout (`MMF_TOPDOWN`, a property of the address space, so `MAP_32BIT` too) an
  /// already aligned result moves up by a PMD. `nil`: not this case, or no room for the padding.
  private func thpGetUnmappedArea(_ hint: UInt64, _ len: UInt64, flags: MapFlags) -> UInt64? {
    let pmd = PageTable.pmdSize
    guard hint == 0, len & (pmd - 1) == 0, len <= config.taskSize - pmd,
      let padded = try? mmGetUnmappedArea(0, len + pmd, flags: flags)
    else {
      return nil
    }
    let offSub = (0 &- padded) & (pmd - 1)
    return offSub == 0 && !config.mmapIsLegacy ? padded + pmd : padded + offSub
  }

  /// `shmem_get_unmapped_area`: the plain placement, moved so that the mapping's file offset and
  /// its address agree modulo a PMD when huge pages could back it — only where shmem THP is
  /// forced, or allowed on the mount (`shm_mnt` follows `shmem_enabled`; tmpfs mounts here have
  /// `huge=never`), for a range of at least a PMD whose hint (if any) was not usable.
  private func shmemGetUnmappedArea(
    _ hint: UInt64, _ len: UInt64, flags: MapFlags, pgoff: UInt64, internalMount: Bool
  ) throws(Errno) -> UInt64 {
    let addr = try mmGetUnmappedArea(hint, len, flags: flags)
    let mountAllowsHuge: Bool
    switch machine.profile.shmemTHP {
    case .deny: return addr
    case .force: mountAllowsHuge = true
    case .never: mountAllowsHuge = false
    case .always, .withinSize, .advise: mountAllowsHuge = internalMount
    }
    if addr == hint || !mountAllowsHuge { return addr }
    let hpage = PageTable.pmdSize
    if len < hpage { return addr }
    let offset = (pgoff << Page.shift) & (hpage - 1)
    if offset != 0 && offset + len < 2 * hpage { return addr }
    if addr & (hpage - 1) == offset { return addr }
    let inflatedLen = len + hpage - Page.size
    if inflatedLen > config.taskSize { return addr }
    guard let inflated = try? mmGetUnmappedArea(hint, inflatedLen, flags: flags) else { return addr }
    let inflatedOffset = inflated & (hpage - 1)
    var aligned = inflated &+ offset &- inflatedOffset
    if inflatedOffset > offset { aligned &+= hpage }
    return aligned > config.taskSize - len ? addr : aligned
  }

  /// `mm_get_unmapped_area` without a usable hint. `MAP_32BIT`: bottom-up in `[1 GiB, 2 GiB)`
  /// (`arch_get_unmapped_area_topdown` hands it to `arch_get_unmapped_area` whatever the
  /// layout). The legacy layout: bottom-up from `TASK_UNMAPPED_BASE`. Else top-down below
  /// `mmap_base`, falling back to the legacy search when that finds nothing, as Linux does.
  ///
  /// With an `align` (hugetlb's), the search looks for a gap `align - PAGE_SIZE` longer
  /// (`align_mask`) and takes its highest (top-down) or lowest (bottom-up) aligned address.
  private func searchArea(_ len: UInt64, flags: MapFlags, align: UInt64 = 0) -> UInt64? {
    let mask = align == 0 ? 0 : align - Page.size
    if flags.contains(.map32Bit) {
      return unmappedArea(len, low: Self.map32BitStart, high: Self.map32BitEnd, topDown: false, alignMask: mask)
    }
    if !config.mmapIsLegacy,
      let a = unmappedArea(len, low: max(Page.size, config.hintMinAddr), high: config.mmapBase, topDown: true, alignMask: mask)
    {
      return a
    }
    return unmappedArea(len, low: config.taskUnmappedBase, high: config.taskSize, topDown: false, alignMask: mask)
  }

  /// Free for a new mapping: no VMA overlaps it and the stack guard gap is respected.
  private func rangeIsFree(_ start: UInt64, _ end: UInt64) -> Bool {
    if let next = tree.findW(start), startGap(next) < end { return false }
    if let prev = tree.findPrev(start), endGap(prev) > start { return false }
    return true
  }

  /// `vm_start_gap`: a grows-down VMA keeps `stack_guard_gap` (256 pages) free below it.
  private func startGap(_ v: VMA) -> UInt64 {
    v.flags.contains(.growsDown) ? (v.start > Self.stackGuardGap ? v.start - Self.stackGuardGap : 0) : v.start
  }

  /// `vm_end_gap`: x86-64 has no `VM_GROWSUP`, so a gap starts where the VMA below it ends
  /// (which is why the tree's gap search passes only that end).
  private func endGap(_ v: VMA) -> UInt64 { v.end }

  static let stackGuardGap: UInt64 = 256 << Page.shift

  /// `unmapped_area_topdown` (`topDown`) or `unmapped_area`: the highest (lowest) `len`-byte gap
  /// below `high` and at or above `low`, the mapping placed at its top (bottom) and moved down
  /// (up) to `alignOffset` modulo `alignMask + 1`. As Linux does, the gap must hold
  /// `len + alignMask` bytes, so alignment never pushes a mapping out of its gap. A gap is the
  /// space between two neighbouring VMAs (the lower one's end, the upper one's `vm_start_gap`),
  /// clipped to the limits; the tree's subtree gaps find it in O(log n).
  ///
  /// Top-down, as `unmapped_area_topdown`, a gap found right below a grows-down VMA whose guard
  /// gap reaches into it sends the search again below that guard gap (`high_limit =
  /// vm_start_gap(next)`), so gaps inside the guard region further down (below a small VMA
  /// there) are skipped too (Tests/Probes/guard_gap_topdown.c). Bottom-up, clipping the gap at
  /// `vm_start_gap` and `unmapped_area`'s retry above the grows-down VMA find the same gap.
  /// - Requires: `mmap_lock` held.
  func unmappedArea(
    _ len: UInt64, low: UInt64, high: UInt64, topDown: Bool, alignMask: UInt64 = 0, alignOffset: UInt64 = 0
  ) -> UInt64? {
    let length = len &+ alignMask
    guard length >= len, high >= low && high - low >= length else { return nil }
    if !topDown {
      return tree.gapBottomUp(atLeast: length, low: low, high: high) { prevEnd, next in
        let gapStart = max(prevEnd, low)
        let gapEnd = min(next.map { startGap($0) } ?? high, high)
        guard gapEnd > gapStart && gapEnd - gapStart >= length else { return nil }
        return gapStart + ((alignOffset &- gapStart) & alignMask)
      }
    }
    var high = high
    while high >= low && high - low >= length {
      var retryBelow: UInt64?
      let found = tree.gapTopDown(atLeast: length, low: low, high: high) { prevEnd, next in
        let gapStart = max(prevEnd, low)
        let gapEnd = min(next?.start ?? high, high)
        guard gapEnd > gapStart && gapEnd - gapStart >= length else { return nil }
        if let next, startGap(next) < gapEnd {
          retryBelow = startGap(next)
          return gapEnd
        }
        let addr = gapEnd - len
        return addr - ((addr &- alignOffset) & alignMask)
      }
      guard let below = retryBelow else { return found }
      high = below
    }
    return nil
  }

  /// `vm_unmapped_area` for the package's tests and benchmarks: the search either way, under
  /// `mmap_lock`.
  package func vmUnmappedArea(
    _ len: UInt64, low: UInt64, high: UInt64, topDown: Bool, alignMask: UInt64 = 0, alignOffset: UInt64 = 0
  ) -> UInt64? {
    mmapWriteLock()
    defer { mmapWriteUnlock() }
    return unmappedArea(len, low: low, high: high, topDown: topDown, alignMask: alignMask, alignOffset: alignOffset)
  }

  // MARK: Populate

  /// Faults in `[start, start+len)` for `MAP_POPULATE`/`MAP_LOCKED` (`mm_populate`: errors are
  /// ignored, as Linux ignores them).
  func populate(_ start: UInt64, _ len: UInt64, cpu: CPU) {
    _ = mmPopulate(start, len, ignoreErrors: true, cpu: cpu)
  }
}
