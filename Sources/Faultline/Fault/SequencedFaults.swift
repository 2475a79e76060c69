/// Speculative page faults as in Michel Lespinasse's 2022 series: one mm-wide `mmapSeq`, odd
/// while any writer holds `mmap_lock` and bumped by every write-lock and unlock, and a copy of
/// the VMA's fields validated against it. The fault writes nothing to the VMA: no reference, no
/// per-VMA counter (the series measured one per-VMA atomic at −62% of 48-thread throughput).
///
/// The price: any `mmap_lock` writer anywhere in the address space aborts every speculative
/// fault in flight, where SPF v12 only aborts those on the VMAs it changed.
extension CPU {
  /// Falls back to `faultLocked` itself when the attempt gives up.
  func faultSequenced(_ addr: UInt64, write: Bool) -> FaultOutcome {
    let seq = mmapSeq.pointee.load(ordering: .acquiring)
    var result: VMFaultResult
    if seq & 1 != 0 {
      result = .abort(.vmaChanged)
    } else {
      // One RCU read section from the lookup to the end of the page-table walk (left for the
      // `afterLookup` hook), so the copy, its checks and the walk pay for one.
      rcuSide.lockOutermost()
      if let found = vmas.find(addr) {
        let snap = found.withPinned { $0.snapshot() }
        if let reason = sequencedAbortReason(found, snap, addr, write: write, seq: seq) {
          rcuSide.unlockOutermost()
          result = .abort(reason)
        } else {
          if hooksEnabled.pointee.load(ordering: .relaxed) {
            rcuSide.unlockOutermost()
            runHook(.afterLookup, addr)
            rcuSide.lockOutermost()
          }
          let flags: FaultFlags = write ? [.write, .user, .speculative] : [.user, .speculative]
          result = speculativeWalkAndFault(snap, addr, flags, SequencedFault(seq: seq))
        }
      } else {
        rcuSide.unlockOutermost()
        result = .abort(.vmaMiss)
      }
    }
    return speculativeOutcome(result, addr, write: write)
  }

  /// Why the copied VMA cannot be faulted on speculatively, or `nil`: `mmapSeq` moved since
  /// `seq`; the VMA is neither private anonymous memory with an anon_vma nor a file whose file
  /// system is `speculativeSafe`; or the access is not allowed. `vma` is read inside the
  /// caller's RCU section.
  ///
  /// Files as in the 2021 series (the 2022 one kept to anonymous memory): only cached pages, a
  /// miss falls back (`SequencedFault`); a shared write to a file system with `->page_mkwrite`
  /// falls back too, as the call may sleep and nothing pins the file across it. Shared anonymous
  /// memory (shmem) falls back.
  @inline(__always)
  func sequencedAbortReason(_ vma: Unmanaged<VMA>, _ snap: VMASnapshot, _ addr: UInt64, write: Bool, seq: UInt64) -> SPFAbort? {
    if mmapSeq.pointee.load(ordering: .acquiring) != seq { return .vmaChanged }
    if snap.flags.contains(.growsDown) { return .vmaNotSup }
    if !snap.isAnonymous {
      if !fileIsSpeculativeSafe(vma) { return .vmaNotSup }
      if write && snap.hasPageMkwrite && snap.flags.contains(.shared) { return .vmaNotSup }
    }
    if addr < snap.start { return .vmaMiss }
    if accessError(snap.flags, write: write) { return .vmaAccess }
    if snap.anonVMA == 0 && snap.isAnonymous { return .vmaNoAnon }
    return nil
  }
}
