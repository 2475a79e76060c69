import Faultline
import FaultlineTestSupport
import Glibc
import Synchronization
import Testing

/// A file fault that checked the size, then lost the race to a truncate before reading the page
/// (found by `faultline explore fault-truncate`, schedule `F,T,T,T,F,F,F`): Linux's
/// `invalidate_lock` keeps the fault from reading the page back into the cache beyond the new
/// EOF; the fault gets SIGBUS and the cache holds nothing past EOF.
@Suite struct TruncateFaultRaceTests {
  static let truncateRounds = 1500

  @Test(arguments: FaultDesign.allCases)
  func faultAfterTruncateReadsNothingBeyondEOF(design: FaultDesign) throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.faultAroundPages = 0
    try withRig(config: config, design: design) { r in
      r.machine.mount(TmpFS(memory: r.machine.memory), at: "/t")
      let fd = try r.cpu.open("/t/f", flags: OpenFlags.readWrite | OpenFlags.create)
      try r.cpu.ftruncate(fd, 2 * page)
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: MapFlags.shared, fd: fd)
      let inode = try r.mm.files.getRaw(fd).inode
      let truncated = Atomic<Bool>(false)
      r.mm.faultHook = { point, addr in
        // Inside ->fault, after the size check: truncate the page away.
        if point == .insideFileFault, addr == a + page, !truncated.exchange(true, ordering: .relaxed) {
          try? inode.truncate(to: page)
        }
      }
      #expect(throws: Signal.sigbus(address: a + page)) { try r.cpu.loadByte(a + page) }
      r.mm.faultHook = nil
      let didTruncate = truncated.load(ordering: .relaxed)
      #expect(didTruncate)
      #expect(inode.pageCache.residentPages == 0)
      #expect(r.mm.pageTable.pte(at: a + page).isNone)
      try r.cpu.munmap(a, 2 * page)
      try r.cpu.close(fd)
      try r.machine.umount("/t")
    }
  }

  /// Truncate zaps each registered mapping under the inode's mapping lock while mprotect splits
  /// and merges the mapping. A merge that took the shrinking VMA out of the registry before its
  /// neighbour grew over its range left that range's entries in no registered VMA for a moment,
  /// and a truncate then missed them (a present PTE after truncate to 0, here within a few
  /// hundred rounds). Linux holds `i_mmap_rwsem` for write from `vma_prepare` to `vma_complete`;
  /// Faultline's `withVMAsPrepared` holds the mapping lock over the whole split or merge.
  /// The same with shared anonymous memory, where a hole punch (`MADV_REMOVE`) zaps through the
  /// shmem object's registry.
  @Test(arguments: ["file shared", "file private", "shmem"])
  func truncateRacingSplitsAndMergesLeavesNothingBeyondEOF(kind: String) throws {
    try withRig(config: AddressSpaceConfig(profile: .reference)) { r in
      r.machine.mount(TmpFS(memory: r.machine.memory), at: "/t")
      let pages: UInt64 = 16
      let shmem = kind == "shmem"
      let fd = try r.cpu.open("/t/f", flags: OpenFlags.readWrite | OpenFlags.create)
      let a =
        shmem
        ? try r.cpu.mmap(0, pages * page, prot: rw, flags: anonShared)
        : try r.cpu.mmap(0, pages * page, prot: rw, flags: kind == "file shared" ? MapFlags.shared : MapFlags.private, fd: fd)
      let done = Atomic<Bool>(false)
      let splits = Atomic<Int>(0)
      // The faulting thread's steps: the mutator stays within two split/merge pairs per step, so
      // that it cannot starve the faults of mmap_lock (under ThreadSanitizer it did: minutes).
      let steps = Atomic<Int>(0)
      let mm = r.mm!
      let leftovers = Locked<[String]>([])
      runThreads(2) { t in
        let cpu = try! CPU(mm: mm)
        if t == 0 {
          // Split at every page boundary and merge back: bounds and pgoff change on both sides.
          var i: UInt64 = 1
          while !done.load(ordering: .relaxed) {
            if splits.load(ordering: .relaxed) >= 2 * steps.load(ordering: .relaxed) + 2 {
              sched_yield()
              continue
            }
            try? cpu.mprotect(a + i * page, page, prot: Prot.read)
            try? cpu.mprotect(a + i * page, page, prot: rw)
            splits.wrappingAdd(1, ordering: .relaxed)
            i = i % (pages - 2) + 1
          }
          return
        }
        defer { done.store(true, ordering: .relaxed) }
        for round in 0..<Self.truncateRounds {
          if !shmem { try! cpu.ftruncate(fd, pages * page) }
          // Page-cache entries (reads) and, in a private mapping, COW copies (writes); a write
          // that meets the read-only window is SIGSEGV, which is fine.
          for p in 0..<pages {
            steps.wrappingAdd(1, ordering: .relaxed)
            if p % 2 == 0 { _ = try? cpu.storeByte(a + p * page, 1) } else { _ = try? cpu.loadByte(a + p * page) }
          }
          steps.wrappingAdd(1, ordering: .relaxed)
          if shmem {
            // Every VMA of the range stays shared and VM_MAYWRITE, so no EACCES.
            try! cpu.madvise(a, pages * page, advice: Advice.remove)
          } else {
            try! cpu.ftruncate(fd, 0)
          }
          for p in 0..<pages where !mm.pageTable.pte(at: a + p * page).isNone {
            let entry = mm.pageTable.pte(at: a + p * page)
            leftovers.withLock { $0.append("round \(round): page \(p) still mapped after the zap: \(entry)") }
          }
          if leftovers.withLock({ $0.count }) > 4 { return }
        }
      }
      let found = leftovers.withLock { $0 }
      #expect(found.isEmpty, "\(found)")
      #expect(splits.load(ordering: .relaxed) > 0)
      try r.cpu.munmap(a, pages * page)
      try r.cpu.close(fd)
      try r.machine.umount("/t")
    }
  }

  /// A truncate that runs while munmap is between detaching its VMAs and zapping them (here,
  /// from munmap's `.afterDetach` hook) must still zap their entries: munmap keeps the VMAs in
  /// the inode's registry until it has zapped them (`unmap_vmas` before `unlink_file_vma`), so
  /// when truncate returns no entry maps a page beyond the new EOF, not even for a moment.
  @Test(arguments: [MapFlags.shared, MapFlags.private])
  func truncateDuringMunmapStillZapsTheDetachedVMA(type: MapFlags) throws {
    try withRig(config: AddressSpaceConfig(profile: .reference)) { r in
      r.machine.mount(TmpFS(memory: r.machine.memory), at: "/t")
      let fd = try r.cpu.open("/t/f", flags: OpenFlags.readWrite | OpenFlags.create)
      try r.cpu.ftruncate(fd, 2 * page)
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: type, fd: fd)
      _ = try r.cpu.loadByte(a)
      try r.cpu.storeByte(a + page, 7)
      let inode = try r.mm.files.getRaw(fd).inode
      let mm = r.mm!
      let seen = Locked<[PTE]>([])
      r.mm.writerHook = { point, addr in
        guard point == .afterDetach, addr == a else { return }
        try? inode.truncate(to: 0)
        seen.withLock { $0 = [mm.pageTable.pte(at: a), mm.pageTable.pte(at: a + page)] }
      }
      try r.cpu.munmap(a, 2 * page)
      r.mm.writerHook = nil
      let entries = seen.withLock { $0 }
      #expect(entries.count == 2)
      let mapped = entries.filter { !$0.isNone }
      #expect(mapped.isEmpty, "entries after truncate, before munmap's zap: \(mapped)")
      #expect(inode.pageCache.residentPages == 0)
      try r.cpu.close(fd)
      try r.machine.umount("/t")
    }
  }
}
