import CFaultlineShims
import Glibc

/// A file system over a host directory (in the spirit of UML's `hostfs`): every file is a real
/// host file under `root`, read with `pread`, written with `pwrite` and made durable with
/// `fsync`, all through swift-system's `FileDescriptor`.
///
/// Inodes are keyed by the host's `(st_dev, st_ino)`, so two paths to one file (hard links) share
/// one inode and one page cache. Each regular inode keeps one host descriptor (`HostFile`),
/// read-write when the host allows it, else read-only, closed when the inode goes. The file system
/// owns its inodes until it dies; on its way out it writes back what is still dirty.
///
/// Guards: `lock` guards `inodes`. Page I/O takes no lock here: it uses absolute offsets.
public final class HostFS: FileSystem, @unchecked Sendable {
  /// The file system type (`FileSystem.name`).
  public let name = "hostfs"
  /// `FileSystem.speculativeSafe`.
  public let speculativeSafe = true
  /// `FileSystem.backedByCache`.
  public let backedByCache = false
  /// `FileSystem.hasPageMkwrite`: host files need no space reserved before a write.
  public let hasPageMkwrite = false
  /// `s_dev` (`FileSystem.device`).
  public let device: (major: UInt32, minor: UInt32)
  /// The host directory that is this file system's root.
  public let root: String
  let memory: PhysicalMemory

  private struct Key: Hashable {
    let device: UInt64
    let ino: UInt64
  }
  private let lock = PThreadMutex()
  private var inodes: [Key: Inode] = [:]

  /// Serves the host directory `root`.
  /// - Throws: `ENOENT` when `root` is missing, `ENOTDIR` when it is not a directory.
  public init(root: String, memory: PhysicalMemory) throws(Errno) {
    var r = root
    while r.count > 1 && r.hasSuffix("/") { r.removeLast() }
    let st = try FilePath(r).stat()
    guard st.type == .directory else { throw .notDirectory }
    self.root = r == "/" ? "" : r
    self.memory = memory
    let dev = UInt64(st.deviceID.rawValue)
    // glibc's gnu_dev_major/gnu_dev_minor (macros Swift cannot see).
    device = (
      UInt32(truncatingIfNeeded: ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfff)),
      UInt32(truncatingIfNeeded: (dev & 0xff) | ((dev >> 12) & ~0xff))
    )
  }

  /// Serves `root` with pages from `machine`'s memory.
  public convenience init(root: String, machine: Machine) throws(Errno) {
    try self.init(root: root, memory: machine.memory)
  }

  deinit {
    // `umount` syncs; this is for file systems dropped without one. The inodes' unowned `fs` is
    // unusable from here on, so write through their descriptors directly.
    for (_, inode) in inodes {
      guard let file = inode.hostFile, file.writable else { continue }
      _ = try? inode.pageCache.writeback(
        from: 0, to: .max, mkclean: nil,
        writer: { index, bytes, count throws(Errno) in try Self.write(file, index: index, from: bytes, count: count) })
    }
  }

  private func hostPath(_ path: String) -> FilePath {
    FilePath(root + Namespace.normalize(path))
  }

  // MARK: Namespace

  /// `FileSystem.lookup` (`path_lookupat`).
  public func lookup(_ path: String) throws(Errno) -> Inode {
    let host = hostPath(path)
    let st = try host.stat()
    if let inode = cached(st) { return inode }
    switch st.type {
    case .regular:
      let (fd, writable) = try openHost(host, create: false)
      return try adopt(fd, writable: writable)
    case .directory:
      return insert(Inode(ino: UInt64(st.inode.rawValue), kind: .directory, fs: self, memory: memory), key: key(st))
    case .fifo:
      // Never opened on the host: opening a FIFO blocks until a peer shows up.
      return insert(Inode(ino: UInt64(st.inode.rawValue), kind: .fifo, fs: self, memory: memory), key: key(st))
    default:
      throw .noSuchAddressOrDevice  // sockets and device nodes: ENXIO, as open(2) says
    }
  }

  /// `FileSystem.create` (`->create`).
  public func create(_ path: String) throws(Errno) -> Inode {
    let (fd, writable) = try openHost(hostPath(path), create: true)
    return try adopt(fd, writable: writable)
  }

  /// `FileSystem.mkdir` (`->mkdir`).
  public func mkdir(_ path: String) throws(Errno) -> Inode {
    let host = hostPath(path)
    let rc = host.withPlatformString { Glibc.mkdir($0, 0o755) }
    if rc != 0 { throw Errno(rawValue: errno) }
    return try lookup(path)
  }

  private func key(_ st: Stat) -> Key {
    Key(device: UInt64(st.deviceID.rawValue), ino: UInt64(st.inode.rawValue))
  }

  private func cached(_ st: Stat) -> Inode? {
    lock.withLock { inodes[key(st)] }
  }

  /// Inserts `inode` unless another thread got there first; returns the one that stays.
  private func insert(_ inode: Inode, key: Key) -> Inode {
    lock.withLock {
      if let existing = inodes[key] { return existing }
      inodes[key] = inode
      return inode
    }
  }

  /// Opens a host file read-write, else read-only when the host refuses writing.
  private func openHost(_ host: FilePath, create: Bool) throws(Errno) -> (FileDescriptor, Bool) {
    let options: FileDescriptor.OpenOptions = create ? [.create, .exclusiveCreate, .closeOnExec] : [.closeOnExec]
    do {
      let fd = try FileDescriptor.open(
        host, .readWrite, options: options, permissions: [.ownerReadWrite, .groupRead, .otherRead])
      return (fd, true)
    } catch let e as Errno where !create && (e == .permissionDenied || e == .readOnlyFileSystem) {
      return (try Self.io { try FileDescriptor.open(host, .readOnly, options: options) }, false)
    } catch let e as Errno {
      throw e
    } catch {
      throw .ioError
    }
  }

  /// Makes (or finds) the inode for an open host descriptor, keyed by its `fstat`.
  private func adopt(_ fd: FileDescriptor, writable: Bool) throws(Errno) -> Inode {
    let file = HostFile(fd: fd, writable: writable)
    let st = try fd.stat()
    guard st.type == .regular else { throw .noSuchAddressOrDevice }
    if let inode = cached(st) { return inode }
    let inode = Inode(
      ino: UInt64(st.inode.rawValue), kind: .regular, fs: self, memory: memory, size: UInt64(max(st.size, 0)),
      atime: Self.nanoseconds(st.st_atim), mtime: Self.nanoseconds(st.st_mtim), hostFile: file)
    return insert(inode, key: key(st))
  }

  private static func nanoseconds(_ t: timespec) -> UInt64 {
    UInt64(max(t.tv_sec, 0)) &* 1_000_000_000 &+ UInt64(max(t.tv_nsec, 0))
  }

  /// Runs a swift-system call, rethrowing its `Errno` typed (other errors become `EIO`).
  private static func io<T>(_ body: () throws -> T) throws(Errno) -> T {
    do {
      return try body()
    } catch let e as Errno {
      throw e
    } catch {
      throw .ioError
    }
  }

  private func hostFile(_ inode: Inode) throws(Errno) -> HostFile {
    guard let file = inode.hostFile else { throw inode.kind == .directory ? .isDirectory : .invalidArgument }
    return file
  }

  // MARK: Page I/O

  /// `FileSystem.readPage` (`->read_folio`): a `pread` of the host file.
  public func readPage(_ inode: Inode, index: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) {
    let file = try hostFile(inode)
    let offset = index << Page.shift
    let size = inode.size
    let want = offset < size ? Int(min(UInt64(buffer.count), size - offset)) : 0
    var done = 0
    while done < want {
      let n = try Self.io {
        try file.fd.read(
          fromAbsoluteOffset: Int64(offset) + Int64(done),
          into: UnsafeMutableRawBufferPointer(rebasing: buffer[done..<want]))
      }
      if n == 0 { break }  // the host file is shorter than i_size: the rest is a hole
      done += n
    }
    if done < buffer.count {
      UnsafeMutableRawBufferPointer(rebasing: buffer[done...]).initializeMemory(as: UInt8.self, repeating: 0)
    }
  }

  /// `FileSystem.writePage` (`->writepage`): a `pwrite` of the host file.
  public func writePage(_ inode: Inode, index: UInt64, from buffer: UnsafeRawBufferPointer, count: Int) throws(Errno) {
    try Self.write(hostFile(inode), index: index, from: buffer, count: count)
  }

  private static func write(_ file: HostFile, index: UInt64, from buffer: UnsafeRawBufferPointer, count: Int)
    throws(Errno)
  {
    guard file.writable else { throw .badFileDescriptor }
    let offset = Int64(index << Page.shift)
    var done = 0
    while done < count {
      let n = try io {
        try file.fd.write(
          toAbsoluteOffset: offset + Int64(done), UnsafeRawBufferPointer(rebasing: buffer[done..<count]))
      }
      if n == 0 { throw .ioError }
      done += n
    }
  }

  /// `FileSystem.setSize`: the host file's `ftruncate`.
  public func setSize(_ inode: Inode, _ size: UInt64) throws(Errno) {
    let file = try hostFile(inode)
    guard file.writable else { throw .permissionDenied }
    guard size <= Inode.maxFileSize else { throw .fileTooLarge }
    try Self.io { try file.fd.resize(to: Int64(size)) }
  }

  /// `fallocate(PUNCH_HOLE | KEEP_SIZE)` on the host file; the host file system's answer
  /// (`EOPNOTSUPP` on some) is passed on.
  public func punchHole(_ inode: Inode, fromPage first: UInt64, toPage last: UInt64) throws(Errno) {
    let file = try hostFile(inode)
    guard file.writable else { throw .badFileDescriptor }
    let offset = Int64(first << Page.shift)
    let length = last == .max || last - first > UInt64(Int64.max >> Page.shift) ? Int64.max - offset : Int64((last - first) << Page.shift)
    // FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE.
    if fl_fallocate(file.fd.rawValue, 0x01 | 0x02, offset, length) != 0 { throw Errno(rawValue: errno) }
  }

  /// `FileSystem.sync` (`->fsync`).
  public func sync(_ inode: Inode) throws(Errno) {
    guard let file = inode.hostFile else { return }
    if fsync(file.fd.rawValue) != 0 { throw Errno(rawValue: errno) }
  }

  /// `FileSystem.permission` (`inode_permission`).
  public func permission(_ inode: Inode, write: Bool) throws(Errno) {
    if write, inode.kind == .regular, inode.hostFile?.writable != true { throw .permissionDenied }
  }

  /// `FileSystem.syncFileSystem` (`sync_filesystem`).
  public func syncFileSystem() throws(Errno) {
    let all = lock.withLock { Array(inodes.values) }
    for inode in all where inode.kind == .regular {
      try inode.writeback(from: 0, to: .max, sync: true)
    }
  }
}
