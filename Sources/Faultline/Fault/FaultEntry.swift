/// The entry every user fault takes (`do_user_addr_fault`): the design's own attempt, which
/// takes the `mmap_lock` path itself when it gives up (so the common case returns its outcome
/// without a test for "gave up"). The switch is exhaustive, so a new design must
/// say here how its faults start; what its writers must do is `FaultDesign`'s capability
/// properties.
extension CPU {
  /// Handles a user fault at `addr` for a read or a write with the address space's design;
  /// `.ok` when the access can be retried.
  package func faultIn(_ addr: UInt64, write: Bool) -> FaultOutcome {
    count(counters, .pgfault)
    switch design {
    case .mmapLock: return faultLocked(addr, write: write)
    case .speculative: return faultSpeculative(addr, write: write)
    case .sequenced: return faultSequenced(addr, write: write)
    case .perVMALock: return faultVMALocked(addr, write: write)
    }
  }
}
