/// A file system type with one superblock (`struct super_block` with its `super_operations`,
/// `inode_operations` and `address_space_operations` folded into one protocol): it resolves paths
/// to inodes and moves whole pages between the page cache and its backing store.
///
/// Paths are relative to the mount root, absolute in form (`"/a/b"`); `Namespace.resolve` makes
/// them. Page I/O is always one 4 KiB page at a page-aligned offset.
public protocol FileSystem: AnyObject, Sendable {
  /// The file system type as `/proc/mounts` shows it (`"tmpfs"`, `"hostfs"`).
  var name: String { get }
  /// `true` when its page-fault operations (`readPage` through the page cache) never need
  /// `mmap_lock`, so that speculative (SPF) faults may run them; SPF checks it before a file
  /// fault. Per-VMA-locked faults do not ask: file VMAs fault under the VMA lock as in Linux
  /// 6.7+. Both file systems here are safe.
  var speculativeSafe: Bool { get }
  /// `->page_mkwrite`: called before a page of a shared mapping becomes writable (a write fault
  /// on it), outside the PTL, so the file system can reserve space or refuse (an error is
  /// SIGBUS). Default: allow.
  func pageMkwrite(_ inode: Inode, index: UInt64) throws(Errno)
  /// Whether `pageMkwrite` does anything (`vm_ops->page_mkwrite` set), read when a file is
  /// mapped: a mapping made while it is `false` never calls it. Default: `true`, so a file system
  /// that implements `pageMkwrite` is always asked.
  var hasPageMkwrite: Bool { get }
  /// `true` when the page cache is the storage itself (tmpfs): clean pages must never be dropped.
  var backedByCache: Bool { get }
  /// The device number (`s_dev`) `/proc/self/maps` shows as `major:minor`.
  var device: (major: UInt32, minor: UInt32) { get }

  /// The inode at `path` (`lookup` / `path_lookupat`).
  /// - Throws: `ENOENT` when nothing is there, `ENOTDIR` when a component is not a directory.
  func lookup(_ path: String) throws(Errno) -> Inode
  /// Creates an empty regular file at `path` (`->create`).
  /// - Throws: `EEXIST` when something is already there, `ENOENT`/`ENOTDIR` for a bad parent.
  func create(_ path: String) throws(Errno) -> Inode
  /// Creates a directory at `path` (`->mkdir`).
  func mkdir(_ path: String) throws(Errno) -> Inode
  /// Fills `buffer` (4096 bytes) with page `index` of `inode`; bytes at or past EOF read as zeros
  /// (`->read_folio`).
  func readPage(_ inode: Inode, index: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(Errno)
  /// Writes the first `count` bytes of `buffer` as page `index` of `inode` (`->writepage`).
  func writePage(_ inode: Inode, index: UInt64, from buffer: UnsafeRawBufferPointer, count: Int) throws(Errno)
  /// Resizes the backing store (`->setattr` with `ATTR_SIZE`: the host's `ftruncate`).
  func setSize(_ inode: Inode, _ size: UInt64) throws(Errno)
  /// Makes the backing store durable (`->fsync`). Writeback is the caller's job.
  func sync(_ inode: Inode) throws(Errno)
  /// Checks that `inode` may be opened for writing when `write` is set (`inode_permission` with
  /// `MAY_WRITE`). Throws `EACCES` when not.
  func permission(_ inode: Inode, write: Bool) throws(Errno)
  /// Deallocates whole pages `[first, last)` of the backing store, keeping the size
  /// (`->fallocate` with `FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`). The page cache is the
  /// caller's job. Default: `EOPNOTSUPP`.
  func punchHole(_ inode: Inode, fromPage first: UInt64, toPage last: UInt64) throws(Errno)
  /// Writes back every dirty page of every inode and syncs (`sync_filesystem`), as `umount` does.
  func syncFileSystem() throws(Errno)
}

extension FileSystem {
  /// Default `->page_mkwrite`: allow.
  public func pageMkwrite(_ inode: Inode, index: UInt64) throws(Errno) {}
  /// Default: `true` (`pageMkwrite` is called).
  public var hasPageMkwrite: Bool { true }
  /// Default punch-hole: `EOPNOTSUPP`.
  public func punchHole(_ inode: Inode, fromPage first: UInt64, toPage last: UInt64) throws(Errno) {
    throw .notSupported
  }
}
