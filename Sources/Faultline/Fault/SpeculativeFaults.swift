/// Speculative page faults as in Laurent Dufour's SPF v12 (`__handle_speculative_fault`).
///
/// 1. Under RCU, find the VMA and take a reference on it (`find_vma_rcu` + `get_vma`); the
///    tree's own reference is dropped only after a grace period, so the count cannot be zero.
/// 2. Snapshot `vmSequence`; odd means a writer is at work: abort.
/// 3. Abort on what the path does not handle: grows-down VMAs, shared anonymous memory (its
///    `->fault` is shmem's), a file whose file system is not `speculativeSafe`, an address
///    outside the VMA, private anonymous memory with no anon_vma yet; on an access error, abort
///    too and let the locked path deliver the signal (v12 returned SIGSEGV directly; falling
///    back keeps one place that decides signals, with the same result). A file VMA of a safe
///    file system is taken: with synchronous fput the fault takes its own file reference
///    (`get_file_rcu`), and gives up if the file is already released.
/// 4. Walk the page tables inside an RCU read section; a missing level aborts
///    (`spf_pte_alloc`) unless `speculativeAllocatesTables`. Save the PMD.
/// 5. Re-check the sequence (the fields read are consistent), prepare the page outside any lock,
///    and install it through `pteMapLock` (RCU, sequence, PMD, PTL trylock, sequence again).
/// 6. Drop the reference. Any abort falls back to `mmap_lock`.
///
/// Faultline takes this path for every user fault, not only in multithreaded tasks as v12 did.
extension CPU {
  /// Falls back to `faultLocked` itself when the attempt gives up.
  func faultSpeculative(_ addr: UInt64, write: Bool) -> FaultOutcome {
    // One RCU read section from the lookup to the end of the page-table walk (left for the
    // `afterLookup` hook); the reference keeps the VMA for the fault body after it.
    rcuSide.lockOutermost()
    guard let found = vmas.find(addr) else {
      rcuSide.unlockOutermost()
      speculativeAbort(.vmaMiss, addr)
      return faultLocked(addr, write: write)
    }
    let result = found.withPinned { vma -> VMFaultResult in
      vma.get()
      let seq = vma.vmSequence.raw()
      let snap = vma.snapshot()
      if let reason = speculativeAbortReason(vma, snap, addr, write: write, seq: seq) {
        rcuSide.unlockOutermost()
        return .abort(reason)
      }
      // With synchronous fput the file goes when the VMA leaves the tree, so the fault takes its
      // own reference first; with deferred fput the VMA reference keeps it.
      let ownFile = snap.file != nil && fputMode == .synchronous
      if ownFile && !takeFaultFileReference(vma) {
        rcuSide.unlockOutermost()
        return .abort(.vmaChanged)
      }
      defer { if ownFile { dropFaultFileReference(vma) } }
      if hooksEnabled.pointee.load(ordering: .relaxed) {
        rcuSide.unlockOutermost()
        runHook(.afterLookup, addr)
        rcuSide.lockOutermost()
      }
      let flags: FaultFlags = write ? [.write, .user, .speculative] : [.user, .speculative]
      return speculativeWalkAndFault(snap, addr, flags, .speculative(seq: seq, vma: found))
    }
    putVMA(found)
    return speculativeOutcome(result, addr, write: write)
  }

  /// Why `vma` (read as `snap` at sequence `seq`) cannot be faulted on speculatively, or `nil`.
  @inline(__always)
  func speculativeAbortReason(_ vma: VMA, _ snap: VMASnapshot, _ addr: UInt64, write: Bool, seq: UInt64) -> SPFAbort? {
    if seq & 1 != 0 { return .vmaChanged }
    // Shared anonymous memory has a ->fault of its own; file systems opt in with
    // `speculativeSafe` (their faults never need mmap_lock), as the 2019 thread proposed.
    if snap.flags.contains(.growsDown) { return .vmaNotSup }
    if !snap.isAnonymous && !fileIsSpeculativeSafe(vma) { return .vmaNotSup }
    if addr < snap.start || addr >= snap.end { return .vmaChanged }
    if accessError(snap.flags, write: write) { return .vmaAccess }
    if snap.isAnonymous && snap.anonVMA == 0 { return .vmaNoAnon }
    if vma.vmSequence.readRetry(seq) { return .vmaChanged }
    return nil
  }

  /// The end of a speculative attempt: count and trace an abort and fall back to `mmap_lock`
  /// (as on a retry), or count the success and give the access its outcome.
  @inline(__always)
  func speculativeOutcome(_ result: VMFaultResult, _ addr: UInt64, write: Bool) -> FaultOutcome {
    switch result {
    case .abort(let reason):
      speculativeAbort(reason, addr)
      return faultLocked(addr, write: write)
    case .retry:
      return faultLocked(addr, write: write)
    default:
      count(counters, .speculativePgfault)
      return outcome(result, addr)
    }
  }

  /// Walks to the PTE inside the caller's RCU read section (entered with `lockOutermost()`),
  /// first checking that `mode`'s sequence still holds (`stillValid`, so the tables it walks
  /// stay allocated), leaves the section, then runs the fault body in `mode`. Shared by the two
  /// speculative designs.
  @inline(__always)
  func speculativeWalkAndFault(
    _ snap: VMASnapshot, _ addr: UInt64, _ flags: FaultFlags, _ mode: FaultMode
  ) -> VMFaultResult {
    let address = Page.roundDown(addr)
    var attempt = 0
    while true {
      if !stillValid(mode) {
        rcuSide.unlockOutermost()
        return .abort(.vmaChanged)
      }
      if let pmd = walker.lookupPMD(address) {
        let pmdValue = pmd.pointee.load(ordering: .acquiring)
        if pmdValue & PTE.present != 0 {
          let slot = walker.entries(PFN(physical: pmdValue & PTE.addressMask)) + PageTableWalker.index(address, level: 1)
          let orig = PTE(raw: slot.pointee.load(ordering: .acquiring))
          rcuSide.unlockOutermost()
          let vmf = FaultContext(
            address: address, flags: flags, mode: mode, pte: slot, origPTE: orig, pmd: pmd, origPMD: pmdValue)
          return handlePTEFault(snap, vmf)
        }
      }
      rcuSide.unlockOutermost()
      // A missing level: SPF v12 aborts; the option allocates it (the CAS makes a race with
      // another allocator safe, and a table left in a range being unmapped is freed later).
      if !speculativeAllocatesTables || attempt > 0 { return .abort(.pteAlloc) }
      guard walker.allocPTE(address, cache: cache) != nil else { return .abort(.pteAlloc) }
      attempt += 1
      rcuSide.lockOutermost()
    }
  }

  /// Whether `vma` maps a file whose file system declared `speculativeSafe`.
  @inline(never)
  func fileIsSpeculativeSafe(_ vma: VMA) -> Bool { vma.file?.inode.fs.speculativeSafe ?? false }

  /// `get_file_rcu` for a speculative file fault: fails once the file was released.
  @inline(never)
  func takeFaultFileReference(_ vma: VMA) -> Bool {
    guard let file = vma.file, file.tryGet() else { return false }
    file.mount.noteTransient(1)
    return true
  }

  @inline(never)
  func dropFaultFileReference(_ vma: VMA) {
    guard let file = vma.file else { return }
    file.mount.noteTransient(-1)
    file.fput()
  }

  /// `put_vma`: the last reference (after the VMA left the tree) releases it.
  @inline(never)
  func putVMA(_ vma: Unmanaged<VMA>) {
    vma.withPinned { $0.put() }
  }
}
