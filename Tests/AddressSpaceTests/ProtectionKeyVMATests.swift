import Faultline
import FaultlineTestSupport
import Testing

// The protection key is a vm_flags field (VM_PKEY_BIT0-3): it takes part in the merge rules and
// travels with splits, mremap and fork (arch_dup_pkeys copies the allocation map). Ground truth
// and helpers (`Rig.key`, `Rig.bounds`): ProtectionKeyTests.swift.

@Suite struct ProtectionKeyVMATests {
  /// The key is a vm_flags field: pkey_mprotect of the middle of a VMA splits it in three.
  @Test func pkeyMprotectOfTheMiddleOfAVMASplitsItInThree() throws {
    try withRig(profile: .x86PKU) { r throws in
      let k = try r.cpu.pkeyAlloc(accessRights: 0)
      let a = try r.cpu.mmap(0, 3 * page, prot: rw, flags: anonPrivate)
      try r.cpu.fill(a, value: 3, count: Int(3 * page))
      try r.cpu.pkeyMprotect(a + page, page, prot: rw, pkey: k)
      #expect(
        r.mm.mapsLines() == [
          anonLine(a, a + page, "rw-p"), anonLine(a + page, a + 2 * page, "rw-p"), anonLine(a + 2 * page, a + 3 * page, "rw-p"),
        ])
      #expect([r.key(a), r.key(a + page), r.key(a + 2 * page)] == [0, k, 0])
      #expect(r.mm.tree.verify() == 3)
    }
  }

  /// Giving the middle back its neighbours' key merges the three into one; plain mprotect
  /// keeps the keys and so keeps them apart.
  @Test func givingTheMiddleBackTheNeighboursKeyMergesThem() throws {
    try withRig(profile: .x86PKU) { r throws in
      let k = try r.cpu.pkeyAlloc(accessRights: 0)
      let a = try r.cpu.mmap(0, 3 * page, prot: rw, flags: anonPrivate)
      try r.cpu.fill(a, value: 3, count: Int(3 * page))
      try r.cpu.pkeyMprotect(a + page, page, prot: rw, pkey: k)
      try r.cpu.mprotect(a, 3 * page, prot: rw)
      #expect(r.mm.mapCount == 3)
      try r.cpu.pkeyMprotect(a + page, page, prot: rw, pkey: 0)
      #expect(r.mm.mapsLines() == [anonLine(a, a + 3 * page, "rw-p")])
      #expect(r.key(a + page) == 0)
      #expect(try r.cpu.loadBytes(a + page - 1, count: 2) == [3, 3])
    }
  }

  /// A new mapping next to a VMA with another key stays a VMA of its own until it gets the same
  /// key; one pkey_mprotect across two VMAs with different keys merges them.
  @Test func adjacentVMAsWithDifferentKeysDoNotMerge() throws {
    try withRig(profile: .x86PKU) { r throws in
      let k = try r.cpu.pkeyAlloc(accessRights: 0)
      let j = try r.cpu.pkeyAlloc(accessRights: 0)
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      try r.cpu.munmap(a + 2 * page, 2 * page)
      try r.cpu.pkeyMprotect(a, 2 * page, prot: rw, pkey: k)
      _ = try r.cpu.mmap(a + 2 * page, 2 * page, prot: rw, flags: anonPrivate | MapFlags.fixed)
      #expect(r.mm.mapsLines() == [anonLine(a, a + 2 * page, "rw-p"), anonLine(a + 2 * page, a + 4 * page, "rw-p")])
      try r.cpu.pkeyMprotect(a + 2 * page, 2 * page, prot: rw, pkey: j)
      #expect(r.mm.mapCount == 2)
      try r.cpu.pkeyMprotect(a, 4 * page, prot: rw, pkey: k)
      #expect(r.mm.mapsLines() == [anonLine(a, a + 4 * page, "rw-p")])
      #expect(r.key(a + 3 * page) == k)
    }
  }

  /// mremap moves the VMA with its flags: the key survives a move, a grow in place and a grow
  /// that has to move, and the moved PTEs carry it.
  @Test func theKeySurvivesMremap() throws {
    try withRig(profile: .x86PKU) { r throws in
      let k = try r.cpu.pkeyAlloc(accessRights: 0)
      let a = try r.cpu.mmap(0, 8 * page, prot: rw, flags: anonPrivate)
      try r.cpu.munmap(a + 2 * page, 6 * page)
      try r.cpu.pkeyMprotect(a, 2 * page, prot: rw, pkey: k)
      try r.cpu.fill(a, value: 9, count: Int(2 * page))

      // Grow in place into the hole.
      #expect(try r.cpu.mremap(a, 2 * page, 4 * page, flags: 0) == a)
      #expect(r.bounds(a) == [a, a + 4 * page])
      #expect(r.key(a + 3 * page) == k)
      try r.cpu.storeByte(a + 3 * page, 1)
      #expect(r.mm.pageTable.pte(at: a + 3 * page).pkey == k)

      // Move to a fixed address.
      let target = try r.cpu.mmap(0, 4 * page, prot: Prot.read, flags: anonPrivate)
      let b = try r.cpu.mremap(a, 4 * page, 4 * page, flags: MremapFlags.mayMove | MremapFlags.fixed, newAddress: target)
      #expect(b == target)
      #expect(r.key(b) == k)
      #expect(r.mm.pageTable.pte(at: b).pkey == k)
      #expect(try r.cpu.loadByte(b + page) == 9)

      // Grow where it cannot stay: it moves, key and all.
      _ = try r.cpu.mmap(b + 4 * page, page, prot: Prot.read, flags: anonPrivate | MapFlags.fixed)
      let c = try r.cpu.mremap(b, 4 * page, 6 * page, flags: MremapFlags.mayMove)
      #expect(c != b)
      #expect(r.bounds(c) == [c, c + 6 * page])
      #expect(r.key(c) == k)
      #expect(r.key(c + 5 * page) == k)
      #expect(r.mm.pageTable.pte(at: c).pkey == k)
      #expect(try r.cpu.loadByte(c) == 9)
    }
  }

  /// arch_dup_pkeys and dup_mmap: the child's VMAs and PTEs keep their keys, and its
  /// allocation map is the parent's (execute-only key included), so pkey_alloc in the child
  /// returns the parent's next key. The two maps are independent afterwards.
  @Test func forkKeepsKeysAndTheAllocationMap() throws {
    try withRig(profile: .x86PKU) { r throws in
      let x = try r.cpu.mmap(0, page, prot: Prot.exec, flags: anonPrivate)
      let k = try r.cpu.pkeyAlloc(accessRights: 0)
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      try r.cpu.pkeyMprotect(a + page, page, prot: rw, pkey: k)
      try r.cpu.fill(a, value: 5, count: Int(2 * page))
      let child = try r.cpu.fork()
      defer {
        child.destroy()
        r.machine.drainDeferredFrees()
      }
      #expect(child.allocatedPkeys == [0, 1, 2])
      #expect(child.executeOnlyPkey == 1)
      #expect(child.tree.findW(x)?.flags.pkey == 1)
      #expect(child.tree.findW(a)?.flags.pkey == 0)
      #expect(child.tree.findW(a + page)?.flags.pkey == k)
      #expect(child.mapCount == r.mm.mapCount)
      #expect(child.pageTable.pte(at: a + page).pkey == k)
      do {
        // A new thread of the child starts from init_pkru_value: every key but 0 denied.
        let cc = try CPU(mm: child)
        #expect(try cc.loadByte(a) == 5)
        #expect(throws: Signal.sigsegv(.pkuErr(pkey: k), address: a + page)) { try cc.loadByte(a + page) }
        #expect(throws: Signal.sigsegv(.pkuErr(pkey: 1), address: x)) { try cc.loadByte(x) }
        #expect(try cc.pkeyAlloc(accessRights: 0) == 3)
        try cc.wrpkru(0)
        #expect(try cc.loadByte(a + page) == 5)
      }
      #expect(r.mm.allocatedPkeys == [0, 1, 2])
      #expect(try r.cpu.pkeyAlloc(accessRights: 0) == 3)
      #expect(try r.cpu.pkeyAlloc(accessRights: 0) == 4)
      #expect(child.allocatedPkeys == [0, 1, 2, 3])
    }
  }
}
