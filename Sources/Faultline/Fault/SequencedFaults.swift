/// Speculative page faults as in Michel Lespinasse's 2022 series: one mm-wide `mmapSeq`, odd
/// while any writer holds `mmap_lock` and bumped by every write-lock and unlock, and a copy of
/// the VMA's fields validated against it. The fault writes nothing to the VMA: no reference, no
/// per-VMA counter (the series measured one per-VMA atomic at −62% of 48-thread throughput).
///
/// The price: any `mmap_lock` writer anywhere in the address space aborts every speculative
/// fault in flight, where SPF v12 only aborts those on the VMAs it changed.
extension CPU {
  /// `nil` when the fault must fall back to `mmap_lock`.
  func faultSequenced(_ addr: UInt64, write: Bool) -> FaultOutcome? {
    let seq = mmapSeq.pointee.load(ordering: .acquiring)
    var result: VMFaultResult
    if seq & 1 != 0 {
      result = .abort(.vmaChanged)
    } else {
      rcuSide.lock()
      let found = vmas.find(addr)
      let snap = found.map { $0.withPinned { $0.snapshot() } }
      rcuSide.unlock()
      let seqWord = mmapSeq
      let unchanged = { seqWord.pointee.load(ordering: .acquiring) == seq }
      if let snap {
        if !unchanged() {
          result = .abort(.vmaChanged)
        } else if !snap.isAnonymous || snap.flags.contains(.growsDown) {
          // Anonymous memory only, as in the 2022 series: the copied VMA pins no file.
          result = .abort(.vmaNotSup)
        } else if addr < snap.start {
          result = .abort(.vmaMiss)
        } else if accessError(snap.flags, write: write) {
          result = .abort(.vmaAccess)
        } else if snap.anonVMA == 0 {
          result = .abort(.vmaNoAnon)
        } else {
          if hooksEnabled.pointee.load(ordering: .relaxed) { runHook(.afterLookup, addr) }
          let flags: FaultFlags = write ? [.write, .user, .speculative] : [.user, .speculative]
          result = speculativeWalkAndFault(snap, addr, flags, .sequenced(seq: seq), valid: unchanged)
        }
      } else {
        result = .abort(.vmaMiss)
      }
    }
    return speculativeOutcome(result, addr)
  }
}
