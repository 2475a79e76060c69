/// `mprotect(2)` (`do_mprotect_pkey` → `mprotect_fixup` → `change_protection`).
///
/// As in Linux, VMAs before a hole are changed before the hole is found, so a range with a hole
/// fails with `ENOMEM` after a partial change.
extension AddressSpace {
  /// `mprotect(addr, length, prot)`, or `pkey_mprotect` with `pkey` other than -1 (the key must
  /// be allocated: `EINVAL` otherwise, checked after the arguments). Each VMA's key follows
  /// `arch_override_mprotect_pkey`; `cpu` is the calling thread, whose PKRU an execute-only key
  /// may update.
  package func mprotect(_ addr: UInt64, _ length: UInt64, prot: Prot, pkey: Int = -1, cpu: CPU) throws(Errno) {
    let grows = prot.intersection([.growsDown, .growsUp])
    let prot = prot.subtracting([.growsDown, .growsUp])
    if grows == [.growsDown, .growsUp] { throw Errno.invalidArgument }
    if !Page.isAligned(addr) { throw Errno.invalidArgument }
    if length == 0 { return }
    let len = Page.roundUp(length)
    var start = addr
    var end = start &+ len
    if end <= start { throw Errno.noMemory }
    // arch_validate_prot: READ, WRITE, EXEC and PROT_SEM (0x8).
    if !prot.subtracting([.read, .write, .exec, 0x8]).isEmpty { throw Errno.invalidArgument }

    mmapWriteLock()
    var gather = MMUGather()
    var failure: Errno?
    defer {
      let populate = pendingPopulate
      pendingPopulate.removeAll()
      mmapWriteUnlock()
      gather.finish(machine: machine, synchronous: true)
      for (from, to) in populate { _ = mmPopulate(from, to - from, ignoreErrors: true, cpu: cpu) }
    }
    // do_mprotect_pkey: userspace may only use keys it allocated.
    if pkey != -1 && !pkeyIsAllocated(pkey) { throw Errno.invalidArgument }
    guard let first = tree.findW(start), first.start < end else { throw Errno.noMemory }
    if grows.contains(.growsDown) {
      start = first.start
      if !first.flags.contains(.growsDown) { throw Errno.invalidArgument }
    } else {
      if first.start > start { throw Errno.noMemory }
      if grows.contains(.growsUp) {
        // x86-64 has no VM_GROWSUP.
        end = first.end
        throw Errno.invalidArgument
      }
    }
    var tmp = first.start
    var v: VMA? = first
    var nstart = start
    while let vma = v, vma.start < end {
      if vma.start != tmp {
        failure = .noMemory
        break
      }
      let newPkey = overrideMprotectPkey(vma, prot: prot, pkey: pkey, cpu: cpu)
      let newFlags = VMFlags.fromProt(prot, pkey: newPkey).union(vma.flags.subtracting(VMFlags.access.union(.pkeyBits)))
      // The new access must be within VM_MAY*: VM_MAYREAD is VM_READ << 4, and so on.
      if (newFlags.rawValue & ~(newFlags.rawValue >> 4)) & VMFlags.access.rawValue != 0 {
        failure = .permissionDenied
        break
      }
      do throws(Errno) {
        // The VMA now covering the range may reach past it after a merge with the next one;
        // iteration resumes after it, as `vma_iter_end` makes Linux do.
        let covering = try mprotectFixup(
          vma, start: nstart, end: min(vma.end, end), newFlags: newFlags, gather: &gather, cpu: cpu)
        tmp = covering.end
      } catch {
        failure = error
        break
      }
      nstart = tmp
      v = tree.findW(tmp)
    }
    if failure == nil && tmp < end { failure = .noMemory }
    if let failure { throw failure }
  }

  /// `mprotect_fixup` for `[start, end)` inside `vma`, for the thread `cpu`.
  /// Returns the VMA covering `[start, end)` afterwards.
  /// - Requires: `mmap_lock` held for write.
  @discardableResult
  func mprotectFixup(
    _ vma: VMA, start: UInt64, end: UInt64, newFlags: VMFlags, gather: inout MMUGather, cpu: CPU
  ) throws(Errno) -> VMA {
    // mseal: refused even when nothing would change.
    if vma.flags.contains(.sealed) { throw Errno.notPermitted }
    let oldFlags = vma.flags
    if newFlags == oldFlags { return vma }
    var newFlags = newFlags
    let pages = (end - start) >> Page.shift
    if newFlags.contains(.write) {
      // Turning memory into data counts against RLIMIT_DATA.
      if !mayExpandVM(newFlags, pages) && mayExpandVM(oldFlags, pages) { throw Errno.noMemory }
      if oldFlags.intersection([.account, .write, .hugeTLB, .shared, .noReserve]).isEmpty {
        newFlags.insert(.account)
      }
    } else if oldFlags.contains(.account) && vma.isAnonymous && vma.anonVMA == 0 {
      // Since Linux 6.6, memory that was never written stops being charged when it stops being
      // writable, so it can merge with read-only neighbours again.
      newFlags.remove(.account)
    }
    let target = try modifyVMAFlags(vma, start: start, end: end, newFlags: newFlags)
    setVMAFlags(target, newFlags)
    pageTable.changeProtection(start, end, vmFlags: newFlags, gather: &gather)
    vmStatAccount(oldFlags, -Int64(pages))
    vmStatAccount(newFlags, Int64(pages))
    // A private locked VMA becoming writable is populated (COW broken now rather than at the
    // first write). Linux does it under mmap_lock; Faultline's faults need the lock, so it
    // happens right after the unlock. The populate's first write fault prepares the anon_vma,
    // though, and on Linux that happens before the next VMA of the range is changed, which then
    // no longer merges with this one if its anon_vma is another: so the anon_vma is prepared
    // here. Linux's populate makes no fault in a VM_LOCKONFAULT VMA (`populate_vma_page_range`
    // returns at once), where the caller's protection key denies the write, or when the first
    // page is a guard marker (it stops at the first error).
    if oldFlags.intersection([.write, .shared, .locked]) == .locked && newFlags.contains(.write) {
      if !newFlags.contains(.lockOnFault) && cpu.pkeyAllows(newFlags, write: true) && !pageTable.pte(at: start).isGuardMarker {
        _ = anonVMAPrepare(target)
      }
      pendingPopulate.append((start, end))
    }
    writerHook?(.afterProtect, start)
    return target
  }
}
