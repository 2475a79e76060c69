/// `mlock(2)`, `mlock2(2)`, `munlock(2)`, `mlockall(2)`, `munlockall(2)` (`mm/mlock.c`) and `mincore(2)` (`mm/mincore.c`).
///
/// Locking is modelled as the VMA flags `VM_LOCKED`/`VM_LOCKONFAULT` with Linux's splits and
/// merges, `locked_vm` accounting against `RLIMIT_MEMLOCK`, and populating the range. Faultline
/// has no reclaim, so a locked page behaves like any other resident page; what the flags change
/// is what Linux's checks see: `MADV_DONTNEED` and `MS_INVALIDATE` refuse locked memory, `fork`
/// does not copy the lock, and `mremap` charges growth against the limit.
extension AddressSpace {
  /// `mlock2(addr, len, flags)`; `mlock` is no flags. `addr` need not be aligned: the range
  /// is widened to whole pages. Errors, as Linux: `EINVAL` for unknown flags or a range that
  /// wraps, `EPERM` when `RLIMIT_MEMLOCK` is 0 without `CAP_IPC_LOCK`, `ENOMEM` over the limit or
  /// for a hole (after locking the VMAs before it), `ENOMEM` also when populating fails (e.g. a
  /// PROT_NONE VMA: the flag stays set, as on Linux), `EAGAIN` when out of memory.
  package func mlock(_ addr: UInt64, _ length: UInt64, flags: MlockFlags = [], cpu: CPU) throws(Errno) {
    if !flags.subtracting(.onFault).isEmpty { throw Errno.invalidArgument }
    var lockFlags: VMFlags = .locked
    if flags.contains(.onFault) { lockFlags.insert(.lockOnFault) }
    // can_do_mlock.
    if config.rlimitMemlock == 0 && !config.capIPCLock { throw Errno.notPermitted }
    let (start, len) = widenToPages(addr, length)
    let limit = config.rlimitMemlock >> Page.shift
    mmapWriteLock()
    var locked = (len >> Page.shift) &+ lockedVM
    if locked > limit && !config.capIPCLock {
      locked -= lockedPages(start, start &+ len)
    }
    let failure: Errno?
    if locked <= limit || config.capIPCLock {
      failure = applyVMALockFlags(start, len, lockFlags)
    } else {
      failure = .noMemory
    }
    mmapWriteUnlock()
    if let failure { throw failure }
    if let error = mmPopulate(start, len, ignoreErrors: false, cpu: cpu) {
      // __mlock_posix_error_return: EFAULT becomes ENOMEM, ENOMEM becomes EAGAIN.
      throw error == .badAddress ? Errno.noMemory : error == .noMemory ? .resourceTemporarilyUnavailable : error
    }
  }

  /// `munlock(addr, len)`: clears `VM_LOCKED`/`VM_LOCKONFAULT`, merging with neighbours; a hole
  /// is `ENOMEM` after the VMAs before it were unlocked.
  package func munlock(_ addr: UInt64, _ length: UInt64) throws(Errno) {
    let (start, len) = widenToPages(addr, length)
    mmapWriteLock()
    let failure = applyVMALockFlags(start, len, [])
    mmapWriteUnlock()
    if let failure { throw failure }
  }

  /// `mlockall(flags)`: `EINVAL` for no flags, unknown bits or `MCL_ONFAULT` alone; `EPERM`
  /// when `RLIMIT_MEMLOCK` is 0 without `CAP_IPC_LOCK`; with `MCL_CURRENT`, `ENOMEM` when the
  /// whole address space (`total_vm`, not what is locked) exceeds the limit — no per-VMA limit
  /// check follows — and afterwards the whole address space is populated, errors ignored.
  package func mlockall(_ flags: MlockallFlags, cpu: CPU) throws(Errno) {
    if flags.isEmpty || !flags.subtracting([.current, .future, .onFault]).isEmpty || flags == .onFault {
      throw Errno.invalidArgument
    }
    if config.rlimitMemlock == 0 && !config.capIPCLock { throw Errno.notPermitted }
    mmapWriteLock()
    let allowed = !flags.contains(.current) || totalVM <= config.rlimitMemlock >> Page.shift || config.capIPCLock
    if allowed { applyMlockallFlags(flags) }
    mmapWriteUnlock()
    if !allowed { throw Errno.noMemory }
    if flags.contains(.current) { _ = mmPopulate(0, config.taskSize, ignoreErrors: true, cpu: cpu) }
  }

  /// `munlockall()`: clears the lock bits of every VMA and of `def_flags`.
  package func munlockall() {
    mmapWriteLock()
    applyMlockallFlags([])
    mmapWriteUnlock()
  }

  /// `apply_mlockall_flags`: `def_flags` gets the lock bits of `MCL_FUTURE` (and loses any
  /// earlier ones); every VMA gets those of `MCL_CURRENT`, or loses its own when `MCL_CURRENT`
  /// is absent and `MCL_FUTURE` too (`munlockall`). A VMA `mlock_fixup` cannot change is skipped.
  /// - Requires: `mmap_lock` held for write.
  private func applyMlockallFlags(_ flags: MlockallFlags) {
    defFlags.subtract([.locked, .lockOnFault])
    if flags.contains(.future) {
      defFlags.insert(.locked)
      if flags.contains(.onFault) { defFlags.insert(.lockOnFault) }
      if !flags.contains(.current) { return }
    }
    var toAdd: VMFlags = []
    if flags.contains(.current) {
      toAdd.insert(.locked)
      if flags.contains(.onFault) { toAdd.insert(.lockOnFault) }
    }
    var v = tree.findW(0)
    while let vma = v {
      let end = vma.end
      let newFlags = vma.flags.subtracting([.locked, .lockOnFault]).union(toAdd)
      let covering = (try? mlockFixup(vma, vma.start, end, newFlags)) ?? vma
      v = tree.findW(max(end, covering.end))
    }
  }

  /// `mlock_future_ok`: a new `flags` mapping of `len` bytes fits `RLIMIT_MEMLOCK` (always
  /// when it is not locked, or with `CAP_IPC_LOCK`).
  func mlockFutureOK(_ flags: VMFlags, _ len: UInt64) -> Bool {
    !flags.contains(.locked) || config.capIPCLock || lockedVM + (len >> Page.shift) <= config.rlimitMemlock >> Page.shift
  }

  /// `mincore(addr, len, vec)`: one byte per page, 1 when the page is resident — mapped by a PTE
  /// (the zero page and PROT_NONE entries included) or, for shared and file mappings, in the
  /// backing object's page cache. `EINVAL` for an unaligned `addr`; `ENOMEM` for a range beyond
  /// `TASK_SIZE` or with a hole, after filling `vec` for the pages before the hole.
  package func mincore(_ addr: UInt64, _ length: UInt64, vec: inout [UInt8]) throws(Errno) {
    if !Page.isAligned(addr) { throw Errno.invalidArgument }
    let taskSize = config.taskSize
    if addr > taskSize || length > taskSize - addr { throw Errno.noMemory }
    let pages = Int(Page.covering(length))
    vec = []
    // Reserve for what a VMA can cover, not for whatever length was asked.
    vec.reserveCapacity(min(pages, 1 << 16))
    if pages == 0 { return }
    mmapLock.readLock()
    defer { mmapLock.readUnlock() }
    let end = addr + UInt64(pages) << Page.shift
    var cursor = addr
    while cursor < end {
      guard let vma = tree.find(cursor)?.takeUnretainedValue(), vma.start <= cursor else { throw Errno.noMemory }
      let stop = min(vma.end, end)
      if let huge = vma.shmem?.hugetlb {
        // mincore_hugetlb: this mapping's entry for the huge page (any of its base entries
        // here), not whether the file holds the page.
        let hugeStart = cursor & ~huge.size.offsetMask
        let hugeEnd = min(hugeStart &+ huge.size.bytes, stop)
        var resident = false
        var va = max(hugeStart, vma.start)
        while !resident && va < min(hugeStart &+ huge.size.bytes, vma.end) {
          resident = pageTable.pte(at: va).mapsFrame
          va += Page.size
        }
        while cursor < hugeEnd {
          vec.append(resident ? 1 : 0)
          cursor += Page.size
        }
        continue
      }
      while cursor < stop {
        vec.append(pageResident(vma, cursor) ? 1 : 0)
        cursor += Page.size
      }
    }
  }

  /// `mincore` returning the vector.
  package func mincore(_ addr: UInt64, _ length: UInt64) throws(Errno) -> [UInt8] {
    var vec: [UInt8] = []
    try mincore(addr, length, vec: &vec)
    return vec
  }

  /// `mincore_page`/`mincore_pte_range` for one page of `vma`.
  private func pageResident(_ vma: VMA, _ addr: UInt64) -> Bool {
    let pte = pageTable.pte(at: addr)
    if pte.mapsFrame { return true }
    if let shmem = vma.shmem { return shmem.hasPage(vma.pageIndex(addr)) }
    if let file = vma.file { return file.inode.pageCache.contains(vma.pageIndex(addr)) }
    return false
  }

  /// `mlock`'s `len = PAGE_ALIGN(len + offset_in_page(start)); start &= PAGE_MASK`.
  func widenToPages(_ addr: UInt64, _ length: UInt64) -> (UInt64, UInt64) {
    (Page.roundDown(addr), Page.roundUp(length &+ Page.offset(addr)))
  }

  /// `count_mm_mlocked_page_nr`: pages of `[start, end)` in VMAs already locked.
  private func lockedPages(_ start: UInt64, _ end: UInt64) -> UInt64 {
    var n: UInt64 = 0
    var v = tree.findW(start)
    while let vma = v, vma.start < end {
      if vma.flags.contains(.locked) { n += (min(vma.end, end) - max(vma.start, start)) >> Page.shift }
      v = tree.findW(vma.end)
    }
    return n
  }

  /// `apply_vma_lock_flags`: gives every VMA of `[start, start+len)` the lock bits `lockFlags`
  /// (`[]` unlocks), in address order; a hole ends it with `ENOMEM`, the VMAs before it changed.
  /// - Requires: `mmap_lock` held for write.
  private func applyVMALockFlags(_ start: UInt64, _ len: UInt64, _ lockFlags: VMFlags) -> Errno? {
    let end = start &+ len
    if end < start { return .invalidArgument }
    if end == start { return nil }
    guard let first = tree.findW(start), first.start <= start else { return .noMemory }
    var tmp = first.start
    var nstart = start
    var v: VMA? = first
    while let vma = v, vma.start < end {
      if vma.start != tmp { return .noMemory }
      let newFlags = vma.flags.subtracting([.locked, .lockOnFault]).union(lockFlags)
      do throws(Errno) {
        tmp = try mlockFixup(vma, nstart, min(vma.end, end), newFlags).end
      } catch {
        return error
      }
      nstart = tmp
      v = tree.findW(tmp)
    }
    return tmp < end ? .noMemory : nil
  }

  /// `mlock_fixup`: special, HugeTLB and droppable VMAs are left alone and not counted (a
  /// droppable one is still populated by the caller, as Linux populates it).
  private func mlockFixup(_ vma: VMA, _ start: UInt64, _ end: UInt64, _ newFlags: VMFlags) throws(Errno) -> VMA {
    let oldFlags = vma.flags
    if newFlags == oldFlags || !oldFlags.intersection(.special).isEmpty
      || !oldFlags.intersection([.hugeTLB, .droppable]).isEmpty
    {
      return vma
    }
    let target = try modifyVMAFlags(vma, start: start, end: end, newFlags: newFlags)
    setVMAFlags(target, newFlags)
    let pages = (end - start) >> Page.shift
    if !newFlags.contains(.locked) {
      lockedVM -= pages
    } else if !oldFlags.contains(.locked) {
      lockedVM += pages
    }
    return target
  }

  /// `__mm_populate`: faults in `[start, start+len)` VMA by VMA (write faults where a private
  /// mapping is writable). `VM_LOCKONFAULT`, `VM_IO` and `VM_PFNMAP` VMAs are skipped. With
  /// `ignoreErrors` false the first failure is returned: `EFAULT` for a VMA that allows no
  /// access or an access that got a signal, `ENOMEM` when out of memory.
  /// The faults run on `cpu`, the calling thread (`__get_user_pages` runs in the caller's context).
  func mmPopulate(_ start: UInt64, _ len: UInt64, ignoreErrors: Bool, cpu c: CPU) -> Errno? {
    var addr = start
    let end = start &+ len
    while addr < end {
      mmapLock.readLock()
      guard let v = tree.find(addr)?.takeUnretainedValue(), v.start < end else {
        mmapLock.readUnlock()
        break
      }
      let flags = v.flags
      let vEnd = min(v.end, end)
      addr = max(addr, v.start)
      mmapLock.readUnlock()
      if !flags.intersection([.io, .pfnMap, .lockOnFault]).isEmpty {
        addr = vEnd
        continue
      }
      var error: Errno?
      if !flags.isAccessible {
        error = .badAddress
      } else {
        let write = flags.intersection([.write, .shared]) == .write
        while addr < vEnd {
          switch c.faultIn(addr, write: write) {
          case .ok: addr += Page.size
          case .signal(.outOfMemory): error = .noMemory
          case .signal: error = .badAddress
          }
          if error != nil { break }
        }
      }
      if let error, !ignoreErrors { return error }
      addr = vEnd
    }
    return nil
  }
}
