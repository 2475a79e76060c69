import Synchronization

/// A mount (`struct vfsmount` / `struct mount`): a file system attached at a path, with a count
/// of its users — open files and the mappings that hold them — so that `umount` can refuse with
/// `EBUSY` while any remain (`do_umount` → `propagate_mount_busy`).
///
/// Guards: `state` is one atomic word: the user count in the low bits and an "unmounted" bit, so
/// that `tryGet` and `umount` decide against each other without a lock. `busyRefusals` is atomic.
public final class Mount: @unchecked Sendable {
  /// The mounted file system.
  public let fs: any FileSystem
  /// The mount point, normalised (`"/mnt/data"`).
  public let path: String

  private static let unmountedBit: UInt64 = 1 << 63
  private let state = Atomic<UInt64>(0)
  private let refusals = Atomic<Int>(0)

  /// Attaches `fs` at `path`. `Namespace.mount` is the usual way in.
  package init(fs: any FileSystem, path: String) {
    self.fs = fs
    self.path = Namespace.normalize(path)
  }

  /// Takes a user reference (`mntget`). The caller must already hold one (an open file does), so
  /// the mount cannot be unmounted underneath; to start from none, use `tryGet`.
  package func get() {
    let old = state.wrappingAdd(1, ordering: .relaxed).oldValue
    assert(old & Self.unmountedBit == 0 || old & ~Self.unmountedBit > 0, "mntget on an unmounted mount")
  }

  /// Takes a user reference unless the mount is gone (`legitimize_mnt`).
  /// - Returns: `false` once `umount` has succeeded.
  package func tryGet() -> Bool {
    var old = state.load(ordering: .relaxed)
    while true {
      if old & Self.unmountedBit != 0 { return false }
      let (exchanged, now) = state.compareExchange(expected: old, desired: old + 1, ordering: .acquiring)
      if exchanged { return true }
      old = now
    }
  }

  /// Drops a user reference (`mntput`).
  package func put() {
    let old = state.wrappingSubtract(1, ordering: .releasing).oldValue
    precondition(old & ~Self.unmountedBit > 0, "mount user count underflow")
  }

  /// Open files and mappings using the mount.
  public var users: Int { Int(state.load(ordering: .acquiring) & ~Self.unmountedBit) }

  /// Whether `umount` has not yet succeeded.
  public var isMounted: Bool { state.load(ordering: .acquiring) & Self.unmountedBit == 0 }

  /// How many times `umount` answered `EBUSY`: each is a user still holding the mount, such as a
  /// fault that took a file reference and raced `munmap`.
  public var busyRefusals: Int { refusals.load(ordering: .relaxed) }

  /// Users that are only in flight: a speculative fault's own file reference, or a VMA that
  /// left the tree but keeps its file until its last reference (`FputMode.deferred`).
  private let transient = Atomic<Int>(0)
  /// Refusals while every user was in flight (see `transientUsers`).
  private let inflightRefusalCount = Atomic<Int>(0)

  /// Moves the count of in-flight users.
  func noteTransient(_ delta: Int) { transient.wrappingAdd(delta, ordering: .relaxed) }
  /// Users that are only in flight right now (see `noteTransient(_:)`).
  var transientUsers: Int { transient.load(ordering: .relaxed) }
  /// `umount` answers that were EBUSY only because of in-flight users.
  var inflightRefusals: Int { inflightRefusalCount.load(ordering: .relaxed) }

  /// Detaches the mount (`umount2(path, 0)`): first writes back and syncs the file system
  /// (`sync_filesystem`), then marks the mount gone, so that later lookups through it fail with
  /// `ENOENT` and `tryGet` fails.
  /// - Throws: `EBUSY` while `users > 0` (counted in `busyRefusals`); `EINVAL` when already
  ///   unmounted; the sync's error.
  package func umount() throws(Errno) {
    let now = state.load(ordering: .acquiring)
    if now & Self.unmountedBit != 0 { throw .invalidArgument }
    if now != 0 {
      refusals.wrappingAdd(1, ordering: .relaxed)
      if Int(now) <= transient.load(ordering: .relaxed) { inflightRefusalCount.wrappingAdd(1, ordering: .relaxed) }
      throw .resourceBusy
    }
    try fs.syncFileSystem()
    let (exchanged, seen) = state.compareExchange(
      expected: 0, desired: Self.unmountedBit, ordering: .acquiringAndReleasing)
    if exchanged { return }
    if seen & Self.unmountedBit != 0 { throw .invalidArgument }
    refusals.wrappingAdd(1, ordering: .relaxed)
    throw .resourceBusy
  }
}
