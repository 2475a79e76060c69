/// Borrowing an object the caller has pinned, with no reference counting: the fault paths reach
/// their VMA and file through `Unmanaged` so that a fault makes no retain or release.
extension Unmanaged {
  /// Runs `body` on the object without retaining it (the stdlib's `_withUnsafeGuaranteedRef`,
  /// kept behind this one name).
  ///
  /// Sound only while the caller keeps the object alive for the whole call, by one of:
  /// - a lock that keeps it from being freed: `mmap_lock`, or the VMA's read lock (writers free
  ///   a VMA only after they have write-locked and removed it);
  /// - a reference the caller holds: SPF's VMA reference (`VMA.get`), the VMA's file reference
  ///   or the fault's own;
  /// - an RCU read section: a VMA that leaves the tree is freed only after a grace period
  ///   (`callRCU`).
  /// `body` must not let the object escape.
  ///
  /// Transparent, as the stdlib function is: inlined before optimization, so that each fault path
  /// compiles exactly as with the direct call (an `@inline(__always)` wrapper let the optimizer
  /// inline the closures and outline other parts of the fault instead).
  @_transparent
  func withPinned<Result>(_ body: (Instance) throws -> Result) rethrows -> Result {
    try _withUnsafeGuaranteedRef(body)
  }
}
