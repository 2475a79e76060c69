/// A mount namespace (`struct mnt_namespace`): the mounts of a machine, and path resolution
/// through them to a file system and a path inside it.
///
/// Guards: `lock` guards `mounts`. Mounts stack: a later mount at the same point hides an
/// earlier one until it is unmounted.
public final class Namespace: @unchecked Sendable {
  private let lock = PThreadMutex()
  private var mounts: [Mount] = []

  /// An empty mount table.
  public init() {}

  /// Mounts `fs` at `path` (`do_new_mount`) and returns the mount.
  @discardableResult
  public func mount(_ fs: any FileSystem, at path: String) -> Mount {
    let m = Mount(fs: fs, path: path)
    lock.withLock { mounts.append(m) }
    return m
  }

  /// The mounts still attached, oldest first (`/proc/mounts`).
  public var activeMounts: [Mount] {
    lock.withLock {
      mounts.removeAll { !$0.isMounted }
      return mounts
    }
  }

  /// Unmounts the topmost mount at `path` (`umount2(path, 0)`).
  /// - Throws: `EINVAL` when nothing is mounted there; `EBUSY` while it has users.
  public func umount(_ path: String) throws(Errno) {
    let p = Self.normalize(path)
    guard let m = activeMounts.last(where: { $0.path == p }) else { throw .invalidArgument }
    try m.umount()
  }

  /// The mount whose mount point is the longest prefix of `path` (by whole components), and the
  /// rest of the path inside it (`"/"` for the mount root). Unmounted mounts are skipped, so the
  /// directory underneath shows again, as in Linux.
  /// - Throws: `ENOENT` when no attached mount covers `path`.
  public func resolve(_ path: String) throws(Errno) -> (Mount, String) {
    let p = Self.normalize(path)
    var best: Mount?
    for m in activeMounts where Self.isPrefix(m.path, of: p) {
      if best == nil || m.path.utf8.count >= best!.path.utf8.count { best = m }
    }
    guard let best else { throw .noSuchFileOrDirectory }
    if best.path == "/" { return (best, p) }
    let rest = String(p.dropFirst(best.path.count))
    return (best, rest.isEmpty ? "/" : rest)
  }

  private static func isPrefix(_ mountPoint: String, of p: String) -> Bool {
    if mountPoint == "/" { return true }
    guard p.hasPrefix(mountPoint) else { return false }
    return p.count == mountPoint.count || p[p.index(p.startIndex, offsetBy: mountPoint.count)] == "/"
  }

  /// `path` made absolute and canonical: empty and `.` components dropped, `..` applied (never
  /// above the root), no trailing slash. The Files layer keys everything by this form.
  public static func normalize(_ path: String) -> String {
    var parts: [Substring] = []
    for c in path.split(separator: "/", omittingEmptySubsequences: true) {
      if c == "." { continue }
      if c == ".." {
        _ = parts.popLast()
        continue
      }
      parts.append(c)
    }
    return "/" + parts.joined(separator: "/")
  }
}
