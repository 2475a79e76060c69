import Synchronization

/// An in-memory file system (`mm/shmem.c` as tmpfs): the page cache is the storage, so pages
/// leave only through truncate or when the inode goes (`PageCache.backedByCache`), reading a page
/// never written gives zeros, and writeback has nowhere to write.
///
/// Directories are implicit: creating `/a/b/c` makes `/a` and `/a/b` exist; `mkdir` makes empty
/// ones. The file system owns its inodes (an unlinked inode lives on while referenced).
///
/// Guards: `lock` guards `entries` and `nextIno`.
public final class TmpFS: FileSystem, @unchecked Sendable {
  /// The file system type (`FileSystem.name`).
  public let name = "tmpfs"
  /// `FileSystem.speculativeSafe`.
  public let speculativeSafe = true
  /// `FileSystem.backedByCache`.
  public let backedByCache = true
  /// `s_dev` (`FileSystem.device`).
  public let device: (major: UInt32, minor: UInt32)
  let memory: PhysicalMemory
  /// A `->page_mkwrite` hook for tests and experiments (set it before the file is mapped):
  /// called on every write fault of a shared mapping; throwing refuses it (SIGBUS). tmpfs itself
  /// has none.
  package nonisolated(unsafe) var pageMkwriteHook: ((Inode, UInt64) throws(Errno) -> Void)?

  /// The cache is the storage: dropping the pages is the whole job.
  public func punchHole(_ inode: Inode, fromPage first: UInt64, toPage last: UInt64) throws(Errno) {}

  /// `->page_mkwrite`: runs the test hook if set, else allows.
  /// `FileSystem.hasPageMkwrite`: only while a test hook is set (tmpfs has no `->page_mkwrite`
  /// of its own); mappings made before the hook is set never call it.
  public var hasPageMkwrite: Bool { pageMkwriteHook != nil }

  public func pageMkwrite(_ inode: Inode, index: UInt64) throws(Errno) {
    try pageMkwriteHook?(inode, index)
  }

  private let lock = PThreadMutex()
  /// Files and directories by normalised path; `"/"` is the root.
  private var entries: [String: Inode] = [:]
  private var nextIno: UInt64 = 2

  /// Anonymous block devices have major 0 (`get_anon_bdev`); minors count up per instance.
  private static let nextMinor = Atomic<UInt32>(0x20)

  /// An empty tmpfs whose pages come from `memory`.
  public init(memory: PhysicalMemory) {
    self.memory = memory
    device = (0, Self.nextMinor.wrappingAdd(1, ordering: .relaxed).oldValue)
    entries["/"] = Inode(ino: 1, kind: .directory, fs: self, memory: memory)
  }

  /// `FileSystem.lookup` (`path_lookupat`).
  public func lookup(_ path: String) throws(Errno) -> Inode {
    let p = Namespace.normalize(path)
    lock.lock()
    defer { lock.unlock() }
    if let inode = entries[p] { return inode }
    try checkAncestorsLocked(p, creating: false)
    let prefix = p + "/"
    guard entries.keys.contains(where: { $0.hasPrefix(prefix) }) else { throw .noSuchFileOrDirectory }
    return insertLocked(p, kind: .directory)
  }

  /// `FileSystem.create` (`->create`).
  public func create(_ path: String) throws(Errno) -> Inode {
    try make(path, kind: .regular)
  }

  /// `FileSystem.mkdir` (`->mkdir`).
  public func mkdir(_ path: String) throws(Errno) -> Inode {
    try make(path, kind: .directory)
  }

  /// Removes the file at `path` from the namespace (`shmem_unlink`); its inode and pages live on
  /// while open or mapped.
  /// - Throws: `ENOENT`, or `EISDIR` for a directory.
  public func unlink(_ path: String) throws(Errno) {
    let p = Namespace.normalize(path)
    lock.lock()
    defer { lock.unlock() }
    guard let inode = entries[p] else {
      let prefix = p + "/"
      if p == "/" || entries.keys.contains(where: { $0.hasPrefix(prefix) }) { throw .isDirectory }
      throw .noSuchFileOrDirectory
    }
    guard inode.kind != .directory else { throw .isDirectory }
    entries[p] = nil
  }

  private func make(_ path: String, kind: Inode.Kind) throws(Errno) -> Inode {
    let p = Namespace.normalize(path)
    lock.lock()
    defer { lock.unlock() }
    let prefix = p + "/"
    if entries[p] != nil || entries.keys.contains(where: { $0.hasPrefix(prefix) }) { throw .fileExists }
    try checkAncestorsLocked(p, creating: true)
    return insertLocked(p, kind: kind)
  }

  /// Throws `ENOTDIR` when an ancestor of `p` is not a directory; with `creating`, makes the
  /// missing ancestors as directories.
  private func checkAncestorsLocked(_ p: String, creating: Bool) throws(Errno) {
    var ancestor = Substring(p)
    var missing: [String] = []
    while let slash = ancestor.lastIndex(of: "/"), slash != ancestor.startIndex {
      ancestor = ancestor[..<slash]
      let a = String(ancestor)
      if let inode = entries[a] {
        guard inode.kind == .directory else { throw .notDirectory }
      } else {
        missing.append(a)
      }
    }
    if creating {
      for a in missing { _ = insertLocked(a, kind: .directory) }
    }
  }

  private func insertLocked(_ p: String, kind: Inode.Kind) -> Inode {
    let inode = Inode(ino: nextIno, kind: kind, fs: self, memory: memory)
    nextIno += 1
    entries[p] = inode
    return inode
  }

  /// Pages never written read as zeros: the cache holds every page that has data.
  public func readPage(_ inode: Inode, index: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) {
    buffer.initializeMemory(as: UInt8.self, repeating: 0)
  }

  /// Nothing to do: the page cache is the storage.
  public func writePage(_ inode: Inode, index: UInt64, from buffer: UnsafeRawBufferPointer, count: Int) throws(Errno) {}

  /// Nothing to do beyond what `Inode.truncate` does to the cache.
  public func setSize(_ inode: Inode, _ size: UInt64) throws(Errno) {}

  /// `FileSystem.sync` (`->fsync`).
  public func sync(_ inode: Inode) throws(Errno) {}

  /// `FileSystem.permission` (`inode_permission`).
  public func permission(_ inode: Inode, write: Bool) throws(Errno) {}

  /// `FileSystem.syncFileSystem` (`sync_filesystem`).
  public func syncFileSystem() throws(Errno) {}
}
