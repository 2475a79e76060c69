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
///    file system is taken: with synchronous fput the fault re-checks the sequence and takes
///    its own file reference (`get_file_rcu`), and gives up if the file is already released.
/// 4. Re-check the sequence (the fields read are consistent, and the tables still allocated),
///    then walk the page tables inside the RCU read section; a missing level aborts
///    (`spf_pte_alloc`) unless `speculativeAllocatesTables`. Save the PMD.
/// 5. Prepare the page outside any lock, and install it through `pteMapLock` (RCU, sequence,
///    PMD, PTL trylock, sequence again).
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
    // get_vma, then the sequence and the copy; the reference keeps the VMA (and, with deferred
    // fput, its file) after the RCU section.
    let (seq, snap) = found.withPinned { vma -> (UInt64, VMASnapshot) in
      vma.get()
      return (vma.vmSequence.raw(), vma.snapshot())
    }
    let result = speculativeAttempt(found, snap, addr, write: write, seq: seq)
    putVMA(found)
    return speculativeOutcome(result, addr, write: write)
  }

  /// The attempt on the referenced VMA `found`, copied as `snap` at sequence `seq`, inside the
  /// caller's RCU section (which it leaves).
  @inline(__always)
  func speculativeAttempt(_ found: Unmanaged<VMA>, _ snap: VMASnapshot, _ addr: UInt64, write: Bool, seq: UInt64) -> VMFaultResult {
    if let reason = speculativeAbortReason(found, snap, addr, write: write, seq: seq) {
      rcuSide.unlockOutermost()
      return .abort(reason)
    }
    // With synchronous fput the file goes when the VMA leaves the tree, so the fault takes its
    // own reference first; with deferred fput the VMA reference keeps it.
    let ownFile = snap.file != nil && fputMode == .synchronous
    if ownFile && !takeFaultFileReference(found, seq: seq) {
      rcuSide.unlockOutermost()
      return .abort(.vmaChanged)
    }
    defer { if ownFile { dropFaultFileReference(found) } }
    if hooksEnabled.pointee.load(ordering: .relaxed) {
      rcuSide.unlockOutermost()
      runHook(.afterLookup, addr)
      rcuSide.lockOutermost()
    }
    let flags: FaultFlags = write ? [.write, .user, .speculative] : [.user, .speculative]
    return speculativeWalkAndFault(snap, addr, flags, SpeculativeFault(seq: seq, vma: found))
  }

  /// Why `vma` (read as `snap` at sequence `seq`) cannot be faulted on speculatively, or `nil`.
  @inline(__always)
  func speculativeAbortReason(_ vma: Unmanaged<VMA>, _ snap: VMASnapshot, _ addr: UInt64, write: Bool, seq: UInt64) -> SPFAbort? {
    if seq & 1 != 0 { return .vmaChanged }
    // Shared anonymous memory has a ->fault of its own; file systems opt in with
    // `speculativeSafe` (their faults never need mmap_lock), as the 2019 thread proposed.
    if snap.flags.contains(.growsDown) { return .vmaNotSup }
    if !snap.isAnonymous && !fileIsSpeculativeSafe(vma) { return .vmaNotSup }
    if addr < snap.start || addr >= snap.end { return .vmaChanged }
    if accessError(snap.flags, write: write) { return .vmaAccess }
    if snap.isAnonymous && snap.anonVMA == 0 { return .vmaNoAnon }
    // The re-check of `seq` that makes these reads consistent is the walk's first `stillValid`
    // (`vma_has_changed` before the walk in v12), or, for a file fault, the one before it takes
    // its file reference.
    return nil
  }

  /// The end of a speculative attempt: count and trace an abort and fall back to `mmap_lock`
  /// (as on a retry), or count the success and give the access its outcome.
  @inline(__always)
  func speculativeOutcome(_ result: VMFaultResult, _ addr: UInt64, write: Bool) -> FaultOutcome {
    if case .done = result {
      count(counters, .speculativePgfault)
      return .ok
    }
    return speculativeFinish(result, addr, write: write)
  }

  /// `speculativeOutcome` off the common path.
  @inline(never)
  func speculativeFinish(_ result: VMFaultResult, _ addr: UInt64, write: Bool) -> FaultOutcome {
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
  /// speculative designs. The first walk is straight-line code; a missing level goes to
  /// `speculativeFaultAfterAlloc`, out of line.
  @inline(__always)
  func speculativeWalkAndFault<M: FaultMode>(
    _ snap: VMASnapshot, _ addr: UInt64, _ flags: FaultFlags, _ mode: M
  ) -> VMFaultResult {
    let address = Page.roundDown(addr)
    if let result = speculativeWalk(snap, address, flags, mode) { return result }
    return speculativeFaultAfterAlloc(snap, address, flags, mode)
  }

  /// One walk inside the caller's RCU read section, which it leaves: the fault's result, an
  /// abort when `mode` no longer holds, or `nil` when a level is missing.
  @inline(__always)
  func speculativeWalk<M: FaultMode>(
    _ snap: VMASnapshot, _ address: UInt64, _ flags: FaultFlags, _ mode: M
  ) -> VMFaultResult? {
    if !mode.stillValid(self) {
      rcuSide.unlockOutermost()
      return .abort(.vmaChanged)
    }
    if let pmd = walker.lookupPMD(address) {
      let pmdValue = pmd.pointee.load(ordering: .acquiring)
      if PTE.pmdNamesTable(pmdValue) {
        let slot = walker.entries(PFN(physical: pmdValue & PTE.addressMask)) + PageTableWalker.index(address, level: 1)
        let orig = PTE(raw: slot.pointee.load(ordering: .acquiring))
        rcuSide.unlockOutermost()
        let vmf = FaultContext(
          address: address, flags: flags, mode: mode, pte: slot, origPTE: orig, pmd: pmd, origPMD: pmdValue)
        return handlePTEFault(snap, vmf)
      }
      // SPF v12 never handled huge pages speculatively: a huge PMD is a leaf, not a table.
      if pmdValue & PTE.huge != 0 { return speculativeHugeAbort() }
    }
    rcuSide.unlockOutermost()
    return nil
  }

  /// The speculative walk met a huge PMD (`pmd_trans_huge`): leave the RCU read section and
  /// abort (`spf_pmd_huge`), for the locked path to fault it.
  @inline(never)
  func speculativeHugeAbort() -> VMFaultResult {
    rcuSide.unlockOutermost()
    return .abort(.pmdHuge)
  }

  /// A missing level: SPF v12 aborts (`spf_pte_alloc`, or `spf_thp_eligible` where the VMA may
  /// hold a huge page there, which the locked path decides); the option allocates it (the CAS makes
  /// a race with another allocator safe, and a table left in a range being unmapped is freed
  /// later) and walks once more.
  @inline(never)
  func speculativeFaultAfterAlloc<M: FaultMode>(
    _ snap: VMASnapshot, _ address: UInt64, _ flags: FaultFlags, _ mode: M
  ) -> VMFaultResult {
    // pmd_none where the locked path would map a huge page: never allocate a table here.
    if thpFaultAllowed(snap, address) { return .abort(.thpEligible) }
    if !speculativeAllocatesTables { return .abort(.pteAlloc) }
    guard walker.allocPTE(address, cache: cache) != nil else { return .abort(.pteAlloc) }
    rcuSide.lockOutermost()
    return speculativeWalk(snap, address, flags, mode) ?? .abort(.pteAlloc)
  }

  /// Whether `vma` maps a file whose file system declared `speculativeSafe`.
  @inline(__always)
  func fileIsSpeculativeSafe(_ vma: Unmanaged<VMA>) -> Bool {
    vma.withPinned { $0.fileSpeculativeSafe }
  }

  /// `get_file_rcu` for a speculative file fault: fails if the VMA changed since `seq` (so no
  /// reference is taken for a VMA already replaced) or once the file was released.
  @inline(never)
  func takeFaultFileReference(_ found: Unmanaged<VMA>, seq: UInt64) -> Bool {
    found.withPinned { vma in
      if vma.vmSequence.readRetry(seq) { return false }
      guard let file = vma.fileRef else { return false }
      return file.withPinned { f in
        guard f.tryGet() else { return false }
        f.mount.noteTransient(1)
        return true
      }
    }
  }

  @inline(never)
  func dropFaultFileReference(_ found: Unmanaged<VMA>) {
    found.withPinned { vma in
      guard let file = vma.fileRef else { return }
      file.withPinned { f in
        f.mount.noteTransient(-1)
        f.fput()
      }
    }
  }

  /// `put_vma`: the last reference (after the VMA left the tree) releases it (`VMA.free`, cold).
  @inline(__always)
  func putVMA(_ vma: Unmanaged<VMA>) {
    vma.withPinned { $0.put() }
  }
}
