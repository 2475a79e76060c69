import Faultline
import FaultlineTestSupport
import Testing

/// Protection-key calls on a machine without keys (`.reference`), as x86 Linux built with
/// `CONFIG_X86_INTEL_MEMORY_PROTECTION_KEYS` answers on a CPU without OSPKE. `faultline conform`
/// found the second `pkey_alloc`: the kernel's `mm_pkey_free` cannot give back the key 0 that the
/// failed call took, because the zeroed mm's `execute_only_pkey` is 0.
@Suite struct PkeyWithoutKeysTests {
  @Test func pkeyAllocIsEinvalOnceThenEnospcForTheMmAndItsForks() throws {
    try withRig { rig in
      let cpu = rig.cpu!
      expectErrno(.invalidArgument) { () throws(Errno) in try cpu.pkeyAlloc(accessRights: 0) }
      expectErrno(.noSpace) { () throws(Errno) in try cpu.pkeyAlloc(accessRights: 0) }
      // Argument checks come before the allocation.
      expectErrno(.invalidArgument) { () throws(Errno) in try cpu.pkeyAlloc(flags: 1, accessRights: 0) }
      expectErrno(.invalidArgument) { () throws(Errno) in try cpu.pkeyAlloc(accessRights: 4) }
      // No key is the caller's, key 0 included.
      expectErrno(.invalidArgument) { () throws(Errno) in try cpu.pkeyFree(0) }
      expectErrno(.invalidArgument) { () throws(Errno) in try cpu.pkeyFree(1) }
      let a = try cpu.mmap(0x1000_0000, page, prot: Prot.exec, flags: anonPrivate)
      expectErrno(.invalidArgument) { () throws(Errno) in try cpu.pkeyMprotect(a, page, prot: Prot.read, pkey: 0) }
      try cpu.pkeyMprotect(a, page, prot: Prot.read, pkey: -1)
      #expect(rig.mm.executeOnlyPkey == nil)
      #expect(cpu.pkru == 0)
      let child = try cpu.fork()
      defer { child.destroy() }
      let childCPU = try CPU(mm: child)
      expectErrno(.noSpace) { () throws(Errno) in try childCPU.pkeyAlloc(accessRights: 0) }
    }
  }

  @Test func aFreshMmStartsWithEinval() throws {
    try withRig { rig in
      expectErrno(.invalidArgument) { () throws(Errno) in try rig.cpu.pkeyAlloc(accessRights: 1) }
    }
  }
}
