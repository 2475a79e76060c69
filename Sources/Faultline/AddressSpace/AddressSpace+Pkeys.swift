/// Memory protection keys as x86 Linux has them (`arch/x86/mm/pkeys.c`, `mm/mprotect.c`):
/// `pkey_alloc(2)`, `pkey_free(2)`, the key side of `pkey_mprotect(2)`, and execute-only memory.
///
/// The mm owns the allocation map and the execute-only key; each thread owns its PKRU
/// (`CPU.pkru`). A call made without a `CPU` changes no thread's PKRU (Linux would change the
/// caller's). On a machine without protection keys (`MachineProfile.ProtectionKeys.none`)
/// `pkey_alloc` is EINVAL once and ENOSPC from then on (in this mm and its forks), `pkey_free`
/// is EINVAL, `pkey_mprotect` accepts only -1, and `PROT_EXEC` alone stays readable, as x86
/// Linux built with protection keys answers on a CPU without them.
extension AddressSpace {
  /// Whether the machine has protection keys (`X86_FEATURE_OSPKE`).
  var pkeysEnabled: Bool { machine.profile.protectionKeys == .x86 }

  /// `pkey_alloc(flags, access_rights)`: the lowest free key, with `access_rights` set in the
  /// calling thread's PKRU. `EINVAL` for any flag or an unknown right; `ENOSPC` when all 15
  /// (less the execute-only key) are taken. On a machine without keys the first call is EINVAL
  /// and takes key 0 for good, so every later one is ENOSPC.
  package func pkeyAlloc(flags: UInt64, accessRights: PkeyAccessRights, cpu: CPU?) throws(Errno) -> Int {
    if flags != 0 { throw Errno.invalidArgument }
    if !accessRights.subtracting(.accessMask).isEmpty { throw Errno.invalidArgument }
    mmapWriteLock()
    defer { mmapWriteUnlock() }
    guard let key = mmPkeyAlloc() else { throw Errno.noSpace }
    // arch_set_user_pkey_access fails without OSPKE and the key goes back through
    // mm_pkey_free, which refuses it there (key 0 is the mm's execute_only_pkey): the
    // allocation map keeps it.
    if !pkeysEnabled {
      _ = mmPkeyFree(key)
      throw Errno.invalidArgument
    }
    cpu?.setPkeyAccess(key, accessRights)
    return key
  }

  /// `pkey_free(pkey)`: `EINVAL` unless the key is allocated (key 0 is, and may be freed; the
  /// execute-only key is not the caller's). VMAs that still use the key keep it, as in Linux.
  package func pkeyFree(_ pkey: Int) throws(Errno) {
    mmapWriteLock()
    defer { mmapWriteUnlock() }
    if !mmPkeyFree(pkey) { throw Errno.invalidArgument }
  }

  /// The keys allocated now (`pkey_allocation_map`), execute-only key included.
  package var allocatedPkeys: [Int] {
    mmapLock.readLock()
    defer { mmapLock.readUnlock() }
    return (0..<16).filter { pkeyAllocationMap & (1 << UInt16($0)) != 0 }
  }

  /// The execute-only key, once `PROT_EXEC` alone has needed one (`nil` before, and always on
  /// a machine without keys).
  package var executeOnlyPkey: Int? {
    mmapLock.readLock()
    defer { mmapLock.readUnlock() }
    return executeOnlyPkeyValue < 0 || !pkeysEnabled ? nil : executeOnlyPkeyValue
  }

  /// `mm_pkey_is_allocated`.
  /// - Requires: `mmap_lock` held.
  func pkeyIsAllocated(_ pkey: Int) -> Bool {
    if pkey < 0 || pkey >= machine.profile.maxPkey { return false }
    if pkey == executeOnlyPkeyValue { return false }
    return pkeyAllocationMap & (1 << UInt16(pkey)) != 0
  }

  /// `mm_pkey_free`: clears the key's bit, or returns `false` when it is not allocated.
  /// - Requires: `mmap_lock` held for write.
  func mmPkeyFree(_ pkey: Int) -> Bool {
    if !pkeyIsAllocated(pkey) { return false }
    pkeyAllocationMap &= ~(1 << UInt16(pkey))
    return true
  }

  /// `mm_pkey_alloc`: the lowest clear bit, or `nil` when every key is taken.
  /// - Requires: `mmap_lock` held for write.
  func mmPkeyAlloc() -> Int? {
    let all = UInt16(truncatingIfNeeded: (1 << machine.profile.maxPkey) - 1)
    if pkeyAllocationMap & all == all { return nil }
    let key = (~pkeyAllocationMap).trailingZeroBitCount
    pkeyAllocationMap |= 1 << UInt16(key)
    return key
  }

  /// `execute_only_pkey`: the mm's execute-only key, allocated on first use, with access
  /// disabled in the calling thread's PKRU; -1 without keys or when none is free (the mapping
  /// then gets key 0 and stays readable).
  /// - Requires: `mmap_lock` held for write.
  func executeOnlyPkey(cpu: CPU?) -> Int {
    if !pkeysEnabled { return -1 }
    var key = executeOnlyPkeyValue
    let fresh = key == -1
    if fresh {
      guard let k = mmPkeyAlloc() else { return -1 }
      key = k
    }
    // A thread whose PKRU already denies reads through the key needs no update.
    if !fresh, let cpu, !cpu.pkeyAllows(key: key, write: false) { return key }
    cpu?.setPkeyAccess(key, .disableAccess)
    if fresh { executeOnlyPkeyValue = key }
    return key
  }

  /// `arch_override_mprotect_pkey`: the key `mprotect` gives `vma`. An explicit key wins;
  /// `PROT_EXEC` alone takes the execute-only key; leaving execute-only (a VMA with exactly
  /// VM_EXEC and that key) returns to key 0; anything else keeps the VMA's key.
  /// - Requires: `mmap_lock` held for write.
  func overrideMprotectPkey(_ vma: VMA, prot: Prot, pkey: Int, cpu: CPU?) -> Int {
    if !pkeysEnabled { return 0 }
    if pkey != -1 { return pkey }
    if prot == .exec {
      let key = executeOnlyPkey(cpu: cpu)
      if key > 0 { return key }
    } else if vma.flags.intersection(.access) == .exec && vma.flags.pkey == executeOnlyPkeyValue {
      return 0
    }
    return vma.flags.pkey
  }
}

extension CPU {
  /// This thread's PKRU (`rdpkru`); 0 on a machine without protection keys.
  public var pkru: UInt32 { pkruValue }

  /// `wrpkru`: sets this thread's PKRU; loads and stores check it from the next access on.
  /// On a machine without protection keys the instruction does not exist (#UD, SIGILL on
  /// Linux): this throws `EOPNOTSUPP` instead and changes nothing.
  public func wrpkru(_ value: UInt32) throws(Errno) {
    guard machine.profile.protectionKeys == .x86 else { throw Errno.notSupported }
    pkruValue = value
  }

  /// `pkey_alloc(2)` by this thread.
  public func pkeyAlloc(flags: UInt64 = 0, accessRights: PkeyAccessRights) throws(Errno) -> Int {
    try mm.pkeyAlloc(flags: flags, accessRights: accessRights, cpu: self)
  }

  /// `pkey_free(2)`.
  public func pkeyFree(_ pkey: Int) throws(Errno) { try mm.pkeyFree(pkey) }

  /// `pkey_mprotect(2)` by this thread: `mprotect` that also sets the VMAs' key (`pkey` -1:
  /// plain `mprotect`).
  public func pkeyMprotect(_ addr: UInt64, _ length: UInt64, prot: Prot, pkey: Int) throws(Errno) {
    try mm.mprotect(addr, length, prot: prot, pkey: pkey, cpu: self)
  }

  /// `arch_set_user_pkey_access`: sets key `pkey`'s AD and WD bits from `rights`.
  func setPkeyAccess(_ pkey: Int, _ rights: PkeyAccessRights) {
    let shift = UInt32(pkey) << 1
    let bits = UInt32(truncatingIfNeeded: rights.intersection(.accessMask).rawValue)
    pkruValue = (pkruValue & ~(3 << shift)) | (bits << shift)
  }

  /// `__pkru_allows_pkey` for key `key`.
  @inline(__always)
  func pkeyAllows(key: Int, write: Bool) -> Bool {
    (pkruValue >> (UInt32(truncatingIfNeeded: key) << 1)) & (write ? 3 : 1) == 0
  }
}
