import Synchronization

/// An open file description (`struct file`): an inode opened through a mount with some flags,
/// shared by every fd, `dup` and mapping that refers to it, and counted (`f_count`).
///
/// `fget`/`fput` move the count; it starts at 1 (the opener's). The last `fput` releases the
/// file synchronously (`__fput_sync`): it drops the mount user reference the open took, which is
/// what lets `umount` succeed again. Whether a VMA's reference is put when it leaves the tree or
/// when its last reference goes is the fault layer's `fputMode`, built on these two calls.
///
/// Guards: `count` is atomic; everything else is immutable.
public final class OpenFile: @unchecked Sendable {
  /// The file's inode (`f_inode`).
  public let inode: Inode
  /// The `open(2)` flags (`OpenFlags`), `O_PATH` reduced to the flags it keeps.
  public let flags: OpenFlags
  /// The mount the file was opened through (`f_path.mnt`).
  public let mount: Mount
  /// The path it was opened by (`f_path`), as `/proc/self/maps` prints it.
  public let path: String
  private let count = Atomic<Int>(1)

  /// Opens `inode` through `mount` with `flags`, taking a mount user reference.
  /// - Throws: `ENOENT` when the mount has been unmounted meanwhile.
  package init(inode: Inode, flags: OpenFlags, mount: Mount, path: String = "") throws(Errno) {
    guard mount.tryGet() else { throw .noSuchFileOrDirectory }
    self.inode = inode
    self.flags = flags
    self.mount = mount
    self.path = path
  }

  /// An `O_PATH` descriptor: names the file, allows no I/O and no mapping (`FMODE_PATH`).
  public var isPath: Bool { flags.contains(.path) }

  /// Opened for reading (`FMODE_READ`: `O_RDONLY` or `O_RDWR`, not `O_PATH`).
  public var readable: Bool {
    if isPath { return false }
    let mode = flags.intersection(.accessMode)
    return mode == .readOnly || mode == .readWrite
  }

  /// Opened for writing (`FMODE_WRITE`: `O_WRONLY` or `O_RDWR`, not `O_PATH`).
  public var writable: Bool {
    if isPath { return false }
    let mode = flags.intersection(.accessMode)
    return mode == .writeOnly || mode == .readWrite
  }

  /// Takes a reference (`get_file`). The caller must hold one already (an fd-table slot, a VMA);
  /// from none, use `tryGet`.
  package func fget() {
    let old = count.wrappingAdd(1, ordering: .relaxed).oldValue
    precondition(old > 0, "fget on a released file")
  }

  /// Takes a reference unless the file is already released (`get_file_rcu`: increment not zero).
  package func tryGet() -> Bool {
    var old = count.load(ordering: .relaxed)
    while old > 0 {
      let (exchanged, now) = count.compareExchange(expected: old, desired: old + 1, ordering: .acquiring)
      if exchanged { return true }
      old = now
    }
    return false
  }

  /// Drops a reference (`fput`); the last one releases the mount user reference, before this
  /// returns.
  package func fput() {
    let old = count.wrappingSubtract(1, ordering: .acquiringAndReleasing).oldValue
    precondition(old > 0, "fput underflow")
    if old == 1 { mount.put() }
  }

  /// Live references (`file_count`).
  package var references: Int { count.load(ordering: .acquiring) }
}
