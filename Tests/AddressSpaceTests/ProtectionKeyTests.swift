import Faultline
import FaultlineTestSupport
import Testing

// The system-call side of x86 protection keys: pkey_alloc(2), pkey_free(2) and pkey_mprotect(2)
// errno rows, execute-only memory, populate of memory a key denies, and smaps. How the key (a
// vm_flags field) behaves in merges, splits, mremap and fork: ProtectionKeyVMATests.swift.
//
// Ground truth: arch/x86/mm/pkeys.c (mm_pkey_alloc, execute_only_pkey,
// __arch_override_mprotect_pkey), arch/x86/include/asm/pkeys.h (mm_pkey_is_allocated),
// mm/mprotect.c (do_mprotect_pkey, pkey_alloc, pkey_free), mm/gup.c (check_vma_flags),
// man 7 pkeys, and tools/testing/selftests/mm/protection_keys.c. Each test runs under
// `.x86PKU`, and under `.reference` (x86 without PKU) where the answer differs there.

/// PKEY_DISABLE_ACCESS and PKEY_DISABLE_WRITE.
let disableAccess = PkeyAccessRights.disableAccess
let disableWrite = PkeyAccessRights.disableWrite

extension Rig {
  /// The protection key of the VMA at `addr` (nil: no VMA there).
  func key(_ addr: UInt64) -> Int? { mm.tree.findW(addr)?.flags.pkey }

  /// The VMA covering `addr`, as `[start, end]`.
  func bounds(_ addr: UInt64) -> [UInt64]? { mm.tree.findW(addr).map { [$0.start, $0.end] } }
}

/// The smaps line Linux prints for key `k` (`"ProtectionKey:  %8u"`).
fileprivate func protectionKeyLine(_ k: Int) -> String {
  let v = String(k)
  return "ProtectionKey:  " + String(repeating: " ", count: 8 - v.count) + v
}

@Suite struct ProtectionKeyTests {
  // MARK: pkey_alloc

  /// pkey_alloc: "No flags supported yet", before anything else.
  @Test func pkeyAllocWithAnyFlagIsEINVAL() throws {
    for profile in [MachineProfile.x86PKU, .reference] {
      try withRig(profile: profile) { r throws in
        expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.pkeyAlloc(flags: 1, accessRights: 0) }
        expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.pkeyAlloc(flags: 1 << 63, accessRights: 0) }
        #expect(r.mm.allocatedPkeys == (profile == .x86PKU ? [0] : []))
      }
    }
  }

  /// pkey_alloc: `init_val & ~PKEY_ACCESS_MASK` is EINVAL, and takes no key.
  @Test func pkeyAllocWithUnknownAccessRightsIsEINVAL() throws {
    try withRig(profile: .x86PKU) { r throws in
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.pkeyAlloc(accessRights: 4) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.pkeyAlloc(accessRights: disableAccess | 0x100) }
      #expect(r.mm.allocatedPkeys == [0])
      #expect(r.cpu.pkru == CPU.initPKRU)
      // Both rights together are valid.
      #expect(try r.cpu.pkeyAlloc(accessRights: disableAccess | disableWrite) == 1)
    }
  }

  /// Without OSPKE, arch_set_user_pkey_access fails and mm_pkey_free cannot give key 0 back
  /// (it is the zeroed mm's execute_only_pkey): EINVAL once, then ENOSPC (this host answers so).
  @Test func pkeyAllocWithoutProtectionKeysIsEINVALThenENOSPC() throws {
    try withRig(profile: .reference) { r throws in
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.pkeyAlloc(accessRights: 0) }
      for rights in [0, disableAccess, disableWrite] {
        expectErrno(.noSpace) { () throws(Errno) in try r.cpu.pkeyAlloc(accessRights: rights) }
      }
      #expect(r.mm.allocatedPkeys == [0])
      #expect(r.cpu.pkru == 0)
      expectErrno(.notSupported) { () throws(Errno) in try r.cpu.wrpkru(0) }
    }
  }

  /// mm_pkey_alloc gives the lowest free key (key 0 is allocated at mm creation), and the
  /// calling thread's PKRU takes the requested rights for it.
  @Test func pkeyAllocReturnsTheLowestFreeKeyWithTheRightsInTheCallersPKRU() throws {
    try withRig(profile: .x86PKU) { r throws in
      #expect(r.cpu.pkru == 0x5555_5554)
      #expect(r.mm.allocatedPkeys == [0])
      #expect(try r.cpu.pkeyAlloc(accessRights: 0) == 1)
      #expect(r.cpu.pkru == 0x5555_5550)
      #expect(try r.cpu.pkeyAlloc(accessRights: disableWrite) == 2)
      #expect(r.cpu.pkru == 0x5555_5560)
      #expect(try r.cpu.pkeyAlloc(accessRights: disableAccess) == 3)
      #expect(r.cpu.pkru == 0x5555_5560)
      #expect(try r.cpu.pkeyAlloc(accessRights: disableAccess | disableWrite) == 4)
      #expect(r.cpu.pkru == 0x5555_5760)
      // A freed key is the lowest free one again.
      try r.cpu.pkeyFree(2)
      #expect(try r.cpu.pkeyAlloc(accessRights: disableAccess) == 2)
      #expect(r.cpu.pkru == 0x5555_5750)
      #expect(r.mm.allocatedPkeys == [0, 1, 2, 3, 4])
    }
  }

  /// PKRU is per thread: pkey_alloc sets the caller's rights and no other thread's.
  @Test func pkeyAllocChangesOnlyTheCallingThreadsPKRU() throws {
    try withRig(profile: .x86PKU) { r throws in
      let other = try CPU(mm: r.mm)
      #expect(try r.cpu.pkeyAlloc(accessRights: 0) == 1)
      #expect(r.cpu.pkru == 0x5555_5550)
      #expect(other.pkru == CPU.initPKRU)
      #expect(try other.pkeyAlloc(accessRights: disableWrite) == 2)
      #expect(other.pkru == 0x5555_5564)
      #expect(r.cpu.pkru == 0x5555_5550)
    }
  }

  /// 16 keys, key 0 taken: the 16th call is ENOSPC and changes no PKRU.
  @Test func pkeyAllocPastTheFifteenthKeyIsENOSPC() throws {
    try withRig(profile: .x86PKU) { r throws in
      for k in 1...15 { #expect(try r.cpu.pkeyAlloc(accessRights: 0) == k) }
      #expect(r.cpu.pkru == 0)
      expectErrno(.noSpace) { () throws(Errno) in try r.cpu.pkeyAlloc(accessRights: disableAccess) }
      #expect(r.cpu.pkru == 0)
      #expect(r.mm.allocatedPkeys == Array(0...15))
      try r.cpu.pkeyFree(9)
      #expect(try r.cpu.pkeyAlloc(accessRights: disableAccess) == 9)
    }
  }

  // MARK: pkey_free

  /// mm_pkey_is_allocated: out of range, never allocated, already freed and the execute-only
  /// key are all EINVAL.
  @Test func pkeyFreeOfAKeyNotAllocatedIsEINVAL() throws {
    try withRig(profile: .x86PKU) { r throws in
      let x = try r.cpu.mmap(0, page, prot: Prot.exec, flags: anonPrivate)
      #expect(r.mm.executeOnlyPkey == 1)
      #expect(r.key(x) == 1)
      let k = try r.cpu.pkeyAlloc(accessRights: 0)
      #expect(k == 2)
      for bad in [-1, -2, 16, 17, Int(Int32.max), 5, 1] {
        expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.pkeyFree(bad) }
      }
      try r.cpu.pkeyFree(k)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.pkeyFree(k) }
      #expect(r.mm.allocatedPkeys == [0, 1])
    }
    try withRig(profile: .reference) { r throws in
      for bad in [-1, 0, 1, 15, 16] {
        expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.pkeyFree(bad) }
      }
    }
  }

  /// pkey_free does not look at VMAs: a key still in use is freed, the VMAs keep it (and the
  /// thread's PKRU keeps denying it), it can no longer be given by pkey_mprotect, and the next
  /// pkey_alloc hands it out again.
  @Test func pkeyFreeOfAKeyInUseSucceedsAndTheVMAKeepsTheKey() throws {
    try withRig(profile: .x86PKU) { r throws in
      let k = try r.cpu.pkeyAlloc(accessRights: disableAccess)
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      try r.cpu.pkeyMprotect(a, page, prot: rw, pkey: k)
      try r.cpu.pkeyFree(k)
      #expect(r.key(a) == k)
      #expect(r.mm.smaps().contains(protectionKeyLine(k)))
      #expect(throws: Signal.sigsegv(.pkuErr(pkey: k), address: a)) { try r.cpu.loadByte(a) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.pkeyMprotect(a + page, page, prot: rw, pkey: k) }
      #expect(r.key(a + page) == 0)
      #expect(try r.cpu.pkeyAlloc(accessRights: 0) == k)
      #expect(try r.cpu.loadByte(a) == 0)
    }
  }

  /// Key 0 is an ordinary allocated key to pkey_free: it can be freed, is then refused by
  /// pkey_mprotect, and is the next key pkey_alloc returns. Without keys it was never allocated.
  @Test func pkeyFreeOfKeyZeroSucceeds() throws {
    try withRig(profile: .x86PKU) { r throws in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      try r.cpu.pkeyFree(0)
      #expect(r.mm.allocatedPkeys == [])
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.pkeyMprotect(a, page, prot: Prot.read, pkey: 0) }
      #expect(r.mm.mapsLines() == [anonLine(a, a + page, "rw-p")])
      #expect(try r.cpu.pkeyAlloc(accessRights: 0) == 0)
      try r.cpu.pkeyMprotect(a, page, prot: Prot.read, pkey: 0)
      #expect(r.mm.mapsLines() == [anonLine(a, a + page, "r--p")])
    }
    try withRig(profile: .reference) { r throws in
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.pkeyFree(0) }
    }
  }

  // MARK: pkey_mprotect

  /// do_mprotect_pkey: a key the mm did not allocate is EINVAL, and nothing changes.
  @Test func pkeyMprotectWithAnUnallocatedKeyIsEINVAL() throws {
    try withRig(profile: .x86PKU) { r throws in
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      let k = try r.cpu.pkeyAlloc(accessRights: 0)
      try r.cpu.pkeyFree(k)
      for bad in [k, 5, 15, 16, -2, Int(Int32.min)] {
        expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.pkeyMprotect(a, page, prot: Prot.read, pkey: bad) }
      }
      #expect(r.mm.mapsLines() == [anonLine(a, a + 2 * page, "rw-p")])
      #expect(r.key(a) == 0)
    }
  }

  /// The execute-only key belongs to the kernel: pkey_mprotect with it is EINVAL.
  @Test func pkeyMprotectWithTheExecuteOnlyKeyIsEINVAL() throws {
    try withRig(profile: .x86PKU) { r throws in
      _ = try r.cpu.mmap(0, page, prot: Prot.exec, flags: anonPrivate)
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      let x = try #require(r.mm.executeOnlyPkey)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.pkeyMprotect(a, page, prot: Prot.exec, pkey: x) }
      #expect(r.key(a) == 0)
    }
  }

  /// The argument checks come before the key check: an unaligned address is EINVAL, len 0
  /// returns 0, a wrapping end is ENOMEM whatever the key; the key check comes before the VMA
  /// walk, so a hole with a bad key is EINVAL and with a good key ENOMEM.
  @Test func pkeyMprotectChecksTheKeyAfterTheArgumentsAndBeforeTheVMAs() throws {
    for profile in [MachineProfile.x86PKU, .reference] {
      try withRig(profile: profile) { r throws in
        let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
        try r.cpu.pkeyMprotect(a, 0, prot: Prot.read, pkey: 7)
        try r.cpu.pkeyMprotect(a, 0, prot: 0x100, pkey: 99)
        expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.pkeyMprotect(a + 1, page, prot: Prot.read, pkey: -1) }
        expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.pkeyMprotect(a + 1, 0, prot: Prot.read, pkey: 7) }
        expectErrno(.noMemory) { () throws(Errno) in
          try r.cpu.pkeyMprotect(a, UInt64(bitPattern: -4096), prot: Prot.read, pkey: 7)
        }
        let hole: UInt64 = 0x1000_0000
        expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.pkeyMprotect(hole, page, prot: Prot.read, pkey: 7) }
        expectErrno(.noMemory) { () throws(Errno) in try r.cpu.pkeyMprotect(hole, page, prot: Prot.read, pkey: -1) }
        #expect(r.mm.mapsLines() == [anonLine(a, a + page, "rw-p")])
      }
    }
    try withRig(profile: .x86PKU) { r throws in
      let k = try r.cpu.pkeyAlloc(accessRights: 0)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.pkeyMprotect(0x1000_0000, page, prot: Prot.read, pkey: k) }
    }
  }

  /// Without protection keys nothing is allocated, not even key 0: pkey_mprotect takes only -1.
  @Test func pkeyMprotectWithoutProtectionKeysAcceptsOnlyMinusOne() throws {
    try withRig(profile: .reference) { r throws in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.pkeyMprotect(a, page, prot: Prot.read, pkey: 0) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.pkeyMprotect(a, page, prot: Prot.read, pkey: 1) }
      try r.cpu.pkeyMprotect(a, page, prot: Prot.read, pkey: -1)
      #expect(r.mm.mapsLines() == [anonLine(a, a + page, "r--p")])
    }
  }

  /// pkey -1 is plain mprotect: the VMA keeps the key it has.
  @Test func pkeyMprotectWithMinusOneKeepsTheVMAsKey() throws {
    try withRig(profile: .x86PKU) { r throws in
      let k = try r.cpu.pkeyAlloc(accessRights: 0)
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      try r.cpu.pkeyMprotect(a, page, prot: rw, pkey: k)
      try r.cpu.pkeyMprotect(a, page, prot: Prot.read, pkey: -1)
      #expect(r.key(a) == k)
      try r.cpu.mprotect(a, page, prot: Prot.none)
      #expect(r.key(a) == k)
      #expect(r.mm.mapsLines() == [anonLine(a, a + page, "---p")])
    }
  }

  /// The key of a present page's PTE follows pkey_mprotect (bits 59-62), both ways.
  @Test func pkeyMprotectRewritesTheKeyOfPresentPTEs() throws {
    try withRig(profile: .x86PKU) { r throws in
      let k = try r.cpu.pkeyAlloc(accessRights: 0)
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      try r.cpu.fill(a, value: 7, count: Int(2 * page))
      try r.cpu.pkeyMprotect(a, 2 * page, prot: rw, pkey: k)
      #expect(r.mm.pageTable.pte(at: a).pkey == k)
      #expect(r.mm.pageTable.pte(at: a + page).pkey == k)
      // A page faulted in afterwards gets the key too.
      try r.cpu.munmap(a + page, page)
      _ = try r.cpu.mmap(a + page, page, prot: rw, flags: anonPrivate | MapFlags.fixed)
      try r.cpu.pkeyMprotect(a + page, page, prot: rw, pkey: k)
      try r.cpu.storeByte(a + page, 1)
      #expect(r.mm.pageTable.pte(at: a + page).pkey == k)
      try r.cpu.pkeyMprotect(a, 2 * page, prot: rw, pkey: 0)
      #expect(r.mm.pageTable.pte(at: a).pkey == 0)
      #expect(r.mm.pageTable.pte(at: a + page).pkey == 0)
      #expect(try r.cpu.loadByte(a) == 7)
    }
  }

  // MARK: Execute-only memory

  /// do_mmap: PROT_EXEC alone takes the execute-only key (the first free key, allocated on
  /// first use, access-disabled in the caller's PKRU); later PROT_EXEC mappings reuse it.
  /// Without keys the mapping has key 0.
  @Test func mmapWithProtExecAloneTakesTheExecuteOnlyKey() throws {
    try withRig(profile: .x86PKU) { r throws in
      try r.cpu.wrpkru(0)
      #expect(r.mm.executeOnlyPkey == nil)
      let x = try r.cpu.mmap(0, page, prot: Prot.exec, flags: anonPrivate)
      #expect(r.key(x) == 1)
      #expect(r.mm.executeOnlyPkey == 1)
      #expect(r.mm.allocatedPkeys == [0, 1])
      #expect(r.cpu.pkru == 0x4)
      let y = try r.cpu.mmap(0, page, prot: Prot.exec, flags: anonPrivate)
      #expect(r.key(y) == 1)
      #expect(r.mm.allocatedPkeys == [0, 1])
      // Other protections do not use it.
      let z = try r.cpu.mmap(0, page, prot: Prot.read | Prot.exec, flags: anonPrivate)
      #expect(r.key(z) == 0)
    }
    try withRig(profile: .reference) { r throws in
      let x = try r.cpu.mmap(0, page, prot: Prot.exec, flags: anonPrivate)
      #expect(r.key(x) == 0)
      #expect(r.mm.executeOnlyPkey == nil)
      #expect(r.mm.allocatedPkeys == [])
    }
  }

  /// execute_only_pkey re-sets PKEY_DISABLE_ACCESS in the caller's PKRU when it allows reads
  /// through the key (a WD-only key is set to AD alone), and leaves a PKRU that denies them.
  @Test func executeOnlyKeyIsAccessDisabledAgainInTheCallersPKRUOnReuse() throws {
    try withRig(profile: .x86PKU) { r throws in
      _ = try r.cpu.mmap(0, page, prot: Prot.exec, flags: anonPrivate)
      try r.cpu.wrpkru(0)
      _ = try r.cpu.mmap(0, page, prot: Prot.exec, flags: anonPrivate)
      #expect(r.cpu.pkru == 0x4)
      try r.cpu.wrpkru(0x8)
      _ = try r.cpu.mmap(0, page, prot: Prot.exec, flags: anonPrivate)
      #expect(r.cpu.pkru == 0x4)
      try r.cpu.wrpkru(0xC)
      _ = try r.cpu.mmap(0, page, prot: Prot.exec, flags: anonPrivate)
      #expect(r.cpu.pkru == 0xC)
      #expect(r.mm.executeOnlyPkey == 1)
    }
  }

  /// arch_override_mprotect_pkey: mprotect to PROT_EXEC alone moves the VMA to the
  /// execute-only key; without keys it stays on key 0.
  @Test func mprotectToProtExecAloneTakesTheExecuteOnlyKey() throws {
    try withRig(profile: .x86PKU) { r throws in
      let k = try r.cpu.pkeyAlloc(accessRights: 0)
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      try r.cpu.pkeyMprotect(a + page, page, prot: rw, pkey: k)
      try r.cpu.mprotect(a, 2 * page, prot: Prot.exec)
      // The first free key after the user's key 1.
      #expect(r.mm.executeOnlyPkey == 2)
      #expect(r.key(a) == 2)
      #expect(r.key(a + page) == 2)
      #expect(r.mm.mapsLines() == [anonLine(a, a + 2 * page, "--xp")])
    }
    try withRig(profile: .reference) { r throws in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      try r.cpu.mprotect(a, page, prot: Prot.exec)
      #expect(r.key(a) == 0)
      #expect(r.mm.executeOnlyPkey == nil)
    }
  }

  /// An explicit key wins over the execute-only key, and does not allocate one.
  @Test func pkeyMprotectToProtExecAloneKeepsTheExplicitKey() throws {
    try withRig(profile: .x86PKU) { r throws in
      let k = try r.cpu.pkeyAlloc(accessRights: 0)
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      try r.cpu.pkeyMprotect(a, page, prot: Prot.exec, pkey: k)
      #expect(r.key(a) == k)
      #expect(r.mm.executeOnlyPkey == nil)
      // Leaving PROT_EXEC alone keeps a key that is not the execute-only one.
      try r.cpu.mprotect(a, page, prot: Prot.read)
      #expect(r.key(a) == k)
      #expect(try r.cpu.loadByte(a) == 0)
    }
  }

  /// vma_is_pkey_exec_only: a VMA with exactly VM_EXEC and the execute-only key goes back to
  /// key 0 when mprotect gives it anything but PROT_EXEC alone, and reads again.
  @Test func mprotectOfExecuteOnlyMemoryToAnythingElseReturnsToKeyZero() throws {
    try withRig(profile: .x86PKU) { r throws in
      let a = try r.cpu.mmap(0, page, prot: Prot.exec, flags: anonPrivate)
      let b = try r.cpu.mmap(0, page, prot: Prot.exec, flags: anonPrivate)
      let c = try r.cpu.mmap(0, page, prot: Prot.exec, flags: anonPrivate)
      #expect(throws: Signal.sigsegv(.pkuErr(pkey: 1), address: a)) { try r.cpu.loadByte(a) }
      try r.cpu.mprotect(a, page, prot: Prot.read)
      try r.cpu.mprotect(b, page, prot: Prot.read | Prot.exec)
      try r.cpu.mprotect(c, page, prot: Prot.none)
      #expect(r.key(a) == 0)
      #expect(r.key(b) == 0)
      #expect(r.key(c) == 0)
      #expect(try r.cpu.loadByte(a) == 0)
      #expect(try r.cpu.loadByte(b) == 0)
      // The key stays the mm's execute-only key.
      #expect(r.mm.executeOnlyPkey == 1)
      #expect(r.mm.allocatedPkeys == [0, 1])
    }
  }

  /// With every key taken by pkey_alloc, execute_only_pkey fails: PROT_EXEC alone gets key 0
  /// and stays readable, as without keys.
  @Test func protExecAloneWithEveryKeyTakenGetsKeyZeroAndStaysReadable() throws {
    try withRig(profile: .x86PKU) { r throws in
      for _ in 1...15 { _ = try r.cpu.pkeyAlloc(accessRights: disableAccess) }
      let x = try r.cpu.mmap(0, page, prot: Prot.exec, flags: anonPrivate)
      #expect(r.key(x) == 0)
      #expect(r.mm.executeOnlyPkey == nil)
      #expect(try r.cpu.loadByte(x) == 0)
      #expect(throws: Signal.sigsegv(.accErr, address: x)) { try r.cpu.storeByte(x, 1) }
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      try r.cpu.mprotect(a, page, prot: Prot.exec)
      #expect(r.key(a) == 0)
    }
  }

  /// The execute-only key counts as allocated for mm_pkey_alloc: pkey_alloc skips it, and one
  /// key fewer is left.
  @Test func pkeyAllocSkipsTheExecuteOnlyKey() throws {
    try withRig(profile: .x86PKU) { r throws in
      _ = try r.cpu.mmap(0, page, prot: Prot.exec, flags: anonPrivate)
      #expect(try r.cpu.pkeyAlloc(accessRights: 0) == 2)
      for k in 3...15 { #expect(try r.cpu.pkeyAlloc(accessRights: 0) == k) }
      expectErrno(.noSpace) { () throws(Errno) in try r.cpu.pkeyAlloc(accessRights: 0) }
    }
  }

  // MARK: Populate (check_vma_flags → arch_vma_access_permitted)

  /// mlock of execute-only memory: the VMA is locked, populate's GUP fails (EFAULT, which
  /// __mlock_posix_error_return makes ENOMEM) and nothing is mapped. Without keys it works.
  @Test func mlockOfExecuteOnlyMemoryIsENOMEMAndStillLocksTheVMA() throws {
    try withRig(profile: .x86PKU) { r throws in
      let x = try r.cpu.mmap(0, 2 * page, prot: Prot.exec, flags: anonPrivate)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mlock(x, 2 * page) }
      #expect(r.mm.tree.findW(x)?.flags.contains(.locked) == true)
      #expect(try r.cpu.mincore(x, 2 * page) == [0, 0])
    }
    try withRig(profile: .reference) { r throws in
      let x = try r.cpu.mmap(0, 2 * page, prot: Prot.exec, flags: anonPrivate)
      try r.cpu.mlock(x, 2 * page)
      #expect(try r.cpu.mincore(x, 2 * page) == [1, 1])
    }
  }

  /// MAP_POPULATE ignores populate errors: execute-only memory is mapped but nothing is
  /// faulted in. Without keys every page is.
  @Test func mapPopulateOfExecuteOnlyMemorySucceedsAndMapsNothing() throws {
    try withRig(profile: .x86PKU) { r throws in
      let x = try r.cpu.mmap(0, 3 * page, prot: Prot.exec, flags: anonPrivate | MapFlags.populate)
      #expect(r.key(x) == 1)
      #expect(try r.cpu.mincore(x, 3 * page) == [0, 0, 0])
    }
    try withRig(profile: .reference) { r throws in
      let x = try r.cpu.mmap(0, 3 * page, prot: Prot.exec, flags: anonPrivate | MapFlags.populate)
      #expect(try r.cpu.mincore(x, 3 * page) == [1, 1, 1])
    }
  }

  /// MADV_POPULATE_READ/WRITE: a key the caller's PKRU denies for the access fails
  /// check_vma_flags, EINVAL; a WD key still allows POPULATE_READ. The caller's PKRU decides:
  /// another thread with the key open populates.
  @Test func madvisePopulateThroughADeniedKeyIsEINVAL() throws {
    try withRig(profile: .x86PKU) { r throws in
      let ad = try r.cpu.pkeyAlloc(accessRights: disableAccess)
      let wd = try r.cpu.pkeyAlloc(accessRights: disableWrite)
      let a = try r.cpu.mmap(0, 2 * page, prot: Prot.read, flags: anonPrivate)
      let b = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      try r.cpu.pkeyMprotect(a, 2 * page, prot: Prot.read, pkey: ad)
      try r.cpu.pkeyMprotect(b, 2 * page, prot: rw, pkey: wd)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(a, 2 * page, advice: Advice.populateRead) }
      #expect(try r.cpu.mincore(a, 2 * page) == [0, 0])
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(b, 2 * page, advice: Advice.populateWrite) }
      try r.cpu.madvise(b, 2 * page, advice: Advice.populateRead)
      #expect(try r.cpu.mincore(b, 2 * page) == [1, 1])

      let other = try CPU(mm: r.mm)
      try other.wrpkru(0)
      try other.madvise(a, 2 * page, advice: Advice.populateRead)
      #expect(try r.cpu.mincore(a, 2 * page) == [1, 1])
    }
    try withRig(profile: .reference) { r throws in
      let a = try r.cpu.mmap(0, 2 * page, prot: Prot.read, flags: anonPrivate)
      try r.cpu.madvise(a, 2 * page, advice: Advice.populateRead)
      #expect(try r.cpu.mincore(a, 2 * page) == [1, 1])
    }
  }

  // MARK: smaps

  /// show_smap prints `ProtectionKey:` (before VmFlags) only when arch_pkeys_enabled().
  @Test func smapsShowsEachVMAsProtectionKeyOnlyWithProtectionKeys() throws {
    try withRig(profile: .x86PKU) { r throws in
      let k = try r.cpu.pkeyAlloc(accessRights: 0)
      let a = try r.cpu.mmap(0, 3 * page, prot: rw, flags: anonPrivate)
      try r.cpu.pkeyMprotect(a + page, page, prot: rw, pkey: k)
      let lines = r.mm.smaps().split(separator: "\n").map(String.init)
      let keys = lines.filter { $0.hasPrefix("ProtectionKey:") }
      #expect(keys == [protectionKeyLine(0), protectionKeyLine(k), protectionKeyLine(0)])
      #expect(protectionKeyLine(k) == "ProtectionKey:         1")
      for (i, line) in lines.enumerated() where line.hasPrefix("ProtectionKey:") {
        #expect(lines[i + 1].hasPrefix("VmFlags:"))
      }
    }
    try withRig(profile: .reference) { r throws in
      _ = try r.cpu.mmap(0, 3 * page, prot: rw, flags: anonPrivate)
      let s = r.mm.smaps()
      #expect(s.contains("VmFlags:"))
      #expect(!s.contains("ProtectionKey"))
    }
  }
}
