/// The entry every user fault takes (`do_user_addr_fault`): the design's own attempt first,
/// then the `mmap_lock` path when it gave up. The switch is exhaustive, so a new design must
/// say here how its faults start; what its writers must do is `FaultDesign`'s capability
/// properties.
extension CPU {
  /// Handles a user fault at `addr` for a read or a write with the address space's design;
  /// `.ok` when the access can be retried.
  package func faultIn(_ addr: UInt64, write: Bool) -> FaultOutcome {
    count(counters, .pgfault)
    switch design {
    case .mmapLock: break
    case .speculative: if let r = faultSpeculative(addr, write: write) { return r }
    case .sequenced: if let r = faultSequenced(addr, write: write) { return r }
    case .perVMALock: if let r = faultVMALocked(addr, write: write) { return r }
    }
    return faultLocked(addr, write: write)
  }
}
