import Faultline
import FaultlineTestSupport
import Testing

// Loads and stores through memory with protection keys: which signal wins, what PKRU's two bits
// deny, that PKRU is per thread and is checked on every access (also through PTEs already
// present), and execute-only memory.
//
// Ground truth: arch/x86/mm/fault.c (do_user_addr_fault, access_error,
// bad_area_access_from_pkeys, bad_area_access_error: SEGV_PKUERR with si_pkey = vma_pkey),
// arch/x86/include/asm/pkeys.h (arch_vma_access_permitted, __pkru_allows_pkey), the SDM's
// PKRU check on every user data access, and man 7 pkeys. Each test runs under `.x86PKU`, and
// under `.reference` (x86 without PKU) where the answer differs there.

fileprivate let disableAccess = PkeyAccessRights.disableAccess
fileprivate let disableWrite = PkeyAccessRights.disableWrite

/// PKRU with key `k`'s two bits set to `rights` and every other key as in `base`.
fileprivate func pkru(_ base: UInt32, key k: Int, _ rights: UInt32) -> UInt32 {
  let shift = UInt32(2 * k)
  return (base & ~(3 << shift)) | (rights << shift)
}

fileprivate func pkuErr(_ k: Int, _ a: UInt64) -> Signal { .sigsegv(.pkuErr(pkey: k), address: a) }

@Suite struct ProtectionKeyAccessTests {
  // MARK: Which signal

  /// A key PKRU access-disables denies loads and stores, SEGV_PKUERR with the VMA's key, and
  /// counts segv_pkuerr; the same VMA on key 0 is open.
  @Test func accessDisabledKeyDeniesLoadsAndStoresWithPKUErr() throws {
    try withRig(profile: .x86PKU) { r throws in
      let k = try r.cpu.pkeyAlloc(accessRights: disableAccess)
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      try r.cpu.pkeyMprotect(a + page, page, prot: rw, pkey: k)
      try r.cpu.storeByte(a, 1)
      #expect(throws: pkuErr(k, a + page + 5)) { try r.cpu.loadByte(a + page + 5) }
      #expect(throws: pkuErr(k, a + page)) { try r.cpu.storeByte(a + page, 1) }
      #expect(r.machine.vmstat[.segvPkuerr] == 2)
      #expect(r.machine.vmstat[.segvAccerr] == 0)
      #expect(try r.cpu.loadByte(a) == 1)
      // Nothing was mapped for the denied page.
      #expect(try r.cpu.mincore(a, 2 * page) == [1, 0])
    }
  }

  /// bad_area_access_from_pkeys runs before the VMA's flags: a store to a read-only VMA, and
  /// any access to a PROT_NONE one, with an access-disabled key is SEGV_PKUERR. Once the key
  /// allows the access, the VMA's flags give SEGV_ACCERR; without keys it is ACCERR from the
  /// start.
  @Test func accessDisabledKeyIsReportedBeforeTheVMAsOwnPermissions() throws {
    try withRig(profile: .x86PKU) { r throws in
      let k = try r.cpu.pkeyAlloc(accessRights: disableAccess)
      let ro = try r.cpu.mmap(0, page, prot: Prot.read, flags: anonPrivate)
      let none = try r.cpu.mmap(0, page, prot: Prot.none, flags: anonPrivate)
      try r.cpu.pkeyMprotect(ro, page, prot: Prot.read, pkey: k)
      try r.cpu.pkeyMprotect(none, page, prot: Prot.none, pkey: k)
      #expect(throws: pkuErr(k, ro)) { try r.cpu.storeByte(ro, 1) }
      #expect(throws: pkuErr(k, none)) { try r.cpu.loadByte(none) }
      #expect(throws: pkuErr(k, none)) { try r.cpu.storeByte(none, 1) }
      try r.cpu.wrpkru(pkru(r.cpu.pkru, key: k, 0))
      #expect(throws: Signal.sigsegv(.accErr, address: ro)) { try r.cpu.storeByte(ro, 1) }
      #expect(throws: Signal.sigsegv(.accErr, address: none)) { try r.cpu.loadByte(none) }
      #expect(try r.cpu.loadByte(ro) == 0)
    }
    try withRig(profile: .reference) { r throws in
      let ro = try r.cpu.mmap(0, page, prot: Prot.read, flags: anonPrivate)
      #expect(throws: Signal.sigsegv(.accErr, address: ro)) { try r.cpu.storeByte(ro, 1) }
      #expect(r.machine.vmstat[.segvPkuerr] == 0)
    }
  }

  /// With no VMA there is no key: SEGV_MAPERR, even when PKRU denies every key (0 included).
  @Test func noVMAIsMapErrWhateverPKRUSays() throws {
    try withRig(profile: .x86PKU) { r throws in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      try r.cpu.munmap(a, page)
      try r.cpu.wrpkru(0xFFFF_FFFF)
      #expect(throws: Signal.sigsegv(.mapErr, address: a)) { try r.cpu.loadByte(a) }
      #expect(throws: Signal.sigsegv(.mapErr, address: a + 8)) { try r.cpu.storeByte(a + 8, 1) }
      #expect(r.machine.vmstat[.segvPkuerr] == 0)
    }
  }

  /// Key 0 is a key like any other to PKRU: access-disabling it denies ordinary memory with
  /// si_pkey 0. Without keys there is no wrpkru (EOPNOTSUPP here, SIGILL on Linux).
  @Test func accessDisablingKeyZeroDeniesOrdinaryMemory() throws {
    try withRig(profile: .x86PKU) { r throws in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      try r.cpu.storeByte(a, 4)
      try r.cpu.wrpkru(pkru(r.cpu.pkru, key: 0, 1))
      #expect(throws: pkuErr(0, a)) { try r.cpu.loadByte(a) }
      try r.cpu.wrpkru(CPU.initPKRU)
      #expect(try r.cpu.loadByte(a) == 4)
    }
    try withRig(profile: .reference) { r throws in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      expectErrno(.notSupported) { () throws(Errno) in try r.cpu.wrpkru(1) }
      #expect(r.cpu.pkru == 0)
      try r.cpu.storeByte(a, 4)
      #expect(try r.cpu.loadByte(a) == 4)
    }
  }

  /// PKEY_DISABLE_WRITE denies stores only: loads work, stores are SEGV_PKUERR, also on a
  /// read-only VMA (the key is checked first) and on a PROT_NONE one (where a load, which
  /// the key allows, is ACCERR).
  @Test func writeDisabledKeyDeniesStoresOnly() throws {
    try withRig(profile: .x86PKU) { r throws in
      let k = try r.cpu.pkeyAlloc(accessRights: disableWrite)
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      let ro = try r.cpu.mmap(0, page, prot: Prot.read, flags: anonPrivate)
      let none = try r.cpu.mmap(0, page, prot: Prot.none, flags: anonPrivate)
      try r.cpu.storeByte(a, 6)
      try r.cpu.pkeyMprotect(a, page, prot: rw, pkey: k)
      try r.cpu.pkeyMprotect(ro, page, prot: Prot.read, pkey: k)
      try r.cpu.pkeyMprotect(none, page, prot: Prot.none, pkey: k)
      #expect(try r.cpu.loadByte(a) == 6)
      #expect(throws: pkuErr(k, a + 1)) { try r.cpu.storeByte(a + 1, 1) }
      #expect(try r.cpu.loadByte(ro) == 0)
      #expect(throws: pkuErr(k, ro)) { try r.cpu.storeByte(ro, 1) }
      #expect(throws: Signal.sigsegv(.accErr, address: none)) { try r.cpu.loadByte(none) }
      #expect(throws: pkuErr(k, none)) { try r.cpu.storeByte(none, 1) }
      #expect(try r.cpu.loadByte(a + 1) == 0)
    }
  }

  /// A store that crosses from an open page into a page with a denied key stops at the
  /// boundary with SEGV_PKUERR at the first denied byte, the bytes before it written.
  @Test func multiPageStoreStopsAtTheFirstPageWithADeniedKey() throws {
    try withRig(profile: .x86PKU) { r throws in
      let k = try r.cpu.pkeyAlloc(accessRights: disableWrite)
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      try r.cpu.pkeyMprotect(a + page, page, prot: rw, pkey: k)
      let bytes = [UInt8](repeating: 0xCD, count: 32)
      #expect(throws: pkuErr(k, a + page)) { try r.cpu.storeBytes(a + page - 16, bytes) }
      #expect(try r.cpu.loadBytes(a + page - 16, count: 32) == [UInt8](repeating: 0xCD, count: 16) + [UInt8](repeating: 0, count: 16))
    }
  }

  // MARK: PKRU is checked on every access

  /// The MMU checks PKRU against the PTE's key on every access: a page already mapped is
  /// denied right after wrpkru, with no system call in between, and open again after wrpkru
  /// back, its contents unchanged.
  @Test func wrpkruDeniesAndReopensPagesAlreadyMapped() throws {
    try withRig(profile: .x86PKU) { r throws in
      let k = try r.cpu.pkeyAlloc(accessRights: 0)
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      try r.cpu.pkeyMprotect(a, page, prot: rw, pkey: k)
      try r.cpu.storeByte(a, 0x11)
      #expect(r.mm.pageTable.pte(at: a).isPresent)
      let open = r.cpu.pkru
      try r.cpu.wrpkru(pkru(open, key: k, 1))
      #expect(throws: pkuErr(k, a)) { try r.cpu.loadByte(a) }
      #expect(throws: pkuErr(k, a)) { try r.cpu.storeByte(a, 0x22) }
      try r.cpu.wrpkru(pkru(open, key: k, 2))
      #expect(try r.cpu.loadByte(a) == 0x11)
      #expect(throws: pkuErr(k, a)) { try r.cpu.storeByte(a, 0x22) }
      try r.cpu.wrpkru(open)
      try r.cpu.storeByte(a, 0x33)
      #expect(try r.cpu.loadByte(a) == 0x33)
      // The page stayed mapped throughout: the denials were PKRU's, not the page table's.
      #expect(r.mm.pageTable.pte(at: a).isPresent)
      #expect(r.machine.vmstat[.segvPkuerr] == 3)
    }
  }

  /// pkey_mprotect rewrites the key of PTEs already present: a mapped page is denied by the key
  /// it moves to, with the thread's PKRU unchanged, and open again when it moves back.
  @Test func pkeyMprotectDeniesPagesAlreadyMapped() throws {
    try withRig(profile: .x86PKU) { r throws in
      let k = try r.cpu.pkeyAlloc(accessRights: disableAccess)
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      try r.cpu.storeByte(a, 0x44)
      let before = r.cpu.pkru
      try r.cpu.pkeyMprotect(a, page, prot: rw, pkey: k)
      #expect(throws: pkuErr(k, a)) { try r.cpu.loadByte(a) }
      #expect(r.cpu.pkru == before)
      try r.cpu.pkeyMprotect(a, page, prot: rw, pkey: 0)
      #expect(try r.cpu.loadByte(a) == 0x44)
    }
  }

  // MARK: PKRU is per thread

  /// Two threads of one mm: pkey_alloc opened the key in the caller's PKRU only, a new thread
  /// starts with every key but 0 access-disabled, and each thread's wrpkru changes its own
  /// access and not the other's, for pages present and not.
  /// An entry whose key PKRU denies, under a VMA whose key PKRU allows (a stale entry, as a
  /// fault sees one mid-`pkey_mprotect`): the MMU's protection-key fault is never fixed by a
  /// fault, so the access is SEGV_PKUERR with the VMA's key (bad_area_access_error), not a
  /// fault retried for ever. Every design: the lockless ones give up to mmap_lock, which decides.
  @Test func aStaleEntryKeyIsPKUErrWithTheVMAsKeyNotARetryLoop() throws {
    try withRig(profile: .x86PKU) { r throws in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      try r.cpu.storeByte(a, 7)
      let slot = try #require(r.mm.pageTable.lookupPTE(a))
      let e = slot.pointee.load(ordering: .acquiring)
      #expect(PTE(raw: e).pkey == 0)
      // Key 1 in the entry only: init PKRU access-disables it.
      slot.pointee.store(e | (1 << PTE.pkeyShift), ordering: .releasing)
      #expect(throws: pkuErr(0, a + 3)) { try r.cpu.loadByte(a + 3) }
      #expect(throws: pkuErr(0, a)) { try r.cpu.storeByte(a, 1) }
      // Opening key 1 lets the entry through again, with the byte the store left.
      try r.cpu.wrpkru(pkru(r.cpu.pkru, key: 1, 0))
      #expect(try r.cpu.loadByte(a) == 7)
      slot.pointee.store(e, ordering: .releasing)
    }
  }

  @Test func pkruIsPerThread() throws {
    try withRig(profile: .x86PKU) { r throws in
      let k = try r.cpu.pkeyAlloc(accessRights: 0)
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      try r.cpu.pkeyMprotect(a, 2 * page, prot: rw, pkey: k)
      try r.cpu.storeByte(a, 0x55)

      let t2 = try CPU(mm: r.mm)
      #expect(t2.pkru == CPU.initPKRU)
      #expect(throws: pkuErr(k, a)) { try t2.loadByte(a) }
      #expect(throws: pkuErr(k, a + page)) { try t2.storeByte(a + page, 1) }
      #expect(try r.cpu.loadByte(a) == 0x55)

      try t2.wrpkru(pkru(t2.pkru, key: k, 0))
      #expect(try t2.loadByte(a) == 0x55)
      try t2.storeByte(a + page, 0x66)

      try r.cpu.wrpkru(pkru(r.cpu.pkru, key: k, 1))
      #expect(throws: pkuErr(k, a)) { try r.cpu.loadByte(a) }
      #expect(throws: pkuErr(k, a + page)) { try r.cpu.loadByte(a + page) }
      #expect(try t2.loadByte(a + page) == 0x66)
      try t2.storeByte(a, 0x77)

      try t2.wrpkru(pkru(t2.pkru, key: k, 2))
      #expect(throws: pkuErr(k, a)) { try t2.storeByte(a, 1) }
      try r.cpu.wrpkru(pkru(r.cpu.pkru, key: k, 0))
      try r.cpu.storeByte(a, 0x88)
      #expect(try t2.loadByte(a) == 0x88)
    }
  }

  // MARK: Execute-only memory

  /// PROT_EXEC alone is execute-only under PKU: loads and stores are SEGV_PKUERR with the
  /// execute-only key, for every thread (a new thread denies it from the start). A thread that
  /// opens the key in its PKRU reads it (stores are then ACCERR). Without keys a PROT_EXEC
  /// mapping is readable and a store is ACCERR.
  @Test func executeOnlyMemoryDeniesDataAccessWithPKUErr() throws {
    try withRig(profile: .x86PKU) { r throws in
      let x = try r.cpu.mmap(0, 2 * page, prot: Prot.exec, flags: anonPrivate)
      let key = try #require(r.mm.executeOnlyPkey)
      #expect(throws: pkuErr(key, x)) { try r.cpu.loadByte(x) }
      #expect(throws: pkuErr(key, x + page)) { try r.cpu.storeByte(x + page, 1) }
      let t2 = try CPU(mm: r.mm)
      #expect(throws: pkuErr(key, x)) { try t2.loadByte(x) }
      try t2.wrpkru(0)
      #expect(try t2.loadByte(x) == 0)
      #expect(throws: Signal.sigsegv(.accErr, address: x)) { try t2.storeByte(x, 1) }
      #expect(throws: pkuErr(key, x)) { try r.cpu.loadByte(x) }
    }
    try withRig(profile: .reference) { r throws in
      let x = try r.cpu.mmap(0, page, prot: Prot.exec, flags: anonPrivate)
      #expect(try r.cpu.loadByte(x) == 0)
      #expect(throws: Signal.sigsegv(.accErr, address: x)) { try r.cpu.storeByte(x, 1) }
    }
  }

  /// Memory that was readable and is made execute-only by mprotect is denied at once, through
  /// its present PTEs, and readable again when mprotect makes it PROT_READ.
  @Test func mprotectToExecuteOnlyDeniesPagesAlreadyMapped() throws {
    try withRig(profile: .x86PKU) { r throws in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      try r.cpu.storeByte(a, 0x99)
      try r.cpu.mprotect(a, page, prot: Prot.exec)
      let key = try #require(r.mm.executeOnlyPkey)
      #expect(r.mm.pageTable.pte(at: a).isPresent)
      #expect(throws: pkuErr(key, a)) { try r.cpu.loadByte(a) }
      try r.cpu.mprotect(a, page, prot: Prot.read)
      #expect(try r.cpu.loadByte(a) == 0x99)
    }
    try withRig(profile: .reference) { r throws in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      try r.cpu.storeByte(a, 0x99)
      try r.cpu.mprotect(a, page, prot: Prot.exec)
      #expect(try r.cpu.loadByte(a) == 0x99)
    }
  }
}
