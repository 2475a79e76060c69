/// A file-descriptor table (`struct files_struct` / `fdtable`): fds to open files, resolved
/// against a `Namespace`. Each address space will own one.
///
/// An installed fd holds one reference on its `OpenFile`; `close` and the table's end put it.
/// fds 0–2 are never handed out (no stdio here): the lowest free fd from 3 is (`alloc_fd`).
///
/// Guards: `lock` guards `files` and `reserved` (fds being opened, not yet installed). Path
/// lookup, creation and `O_TRUNC` run without it.
public final class FileTable: @unchecked Sendable {
  /// The mounts paths resolve through.
  package let namespace: Namespace
  /// `RLIMIT_NOFILE`: fds must stay below it (`EMFILE`).
  public let maxFiles: Int

  private let lock = PThreadMutex()
  private var files: [OpenFile?] = [nil, nil, nil]
  private var reserved: Set<Int32> = []
  private static let firstFD = 3

  /// An empty table (`files_struct`) that resolves paths in `namespace` and hands out descriptors
  /// below `maxFiles` (`RLIMIT_NOFILE`; past it `open` fails with `EMFILE`).
  public init(namespace: Namespace, maxFiles: Int = 1024) {
    self.namespace = namespace
    self.maxFiles = maxFiles
  }

  deinit {
    for case let f? in files { f.fput() }
  }

  // MARK: open / close

  /// Opens `path` (`do_sys_open`): resolves it through the namespace, creates it under
  /// `O_CREAT`, truncates it under `O_TRUNC` (through the page cache and the backing store) and
  /// installs the lowest free fd.
  ///
  /// `O_PATH` keeps only `O_DIRECTORY` and gives an fd that `get` refuses (`EBADF`) and `getRaw`
  /// accepts. Access mode 3 opens for neither reading nor writing, as Linux does.
  /// - Throws: `ENOENT` (no such file or mount), `EEXIST` (`O_CREAT|O_EXCL` on an existing file),
  ///   `EISDIR` (a directory with write access, `O_TRUNC` or `O_CREAT`), `ENOTDIR` (`O_DIRECTORY`
  ///   on a non-directory), `EACCES` (the file system refuses writing), `EMFILE`.
  public func open(_ path: String, flags: OpenFlags) throws(Errno) -> Int32 {
    var flags = flags
    if flags.contains(.path) { flags.formIntersection(.pathFlags) }
    let fd = try reserveFD()
    do {
      let file = try openFile(path, flags: flags)
      install(file, at: fd)
      return fd
    } catch {
      lock.withLock { _ = reserved.remove(fd) }
      throw error
    }
  }

  private func openFile(_ path: String, flags: OpenFlags) throws(Errno) -> OpenFile {
    let (mount, rest) = try namespace.resolve(path)
    let isPath = flags.contains(.path)
    let create = !isPath && flags.contains(.create)
    let inode =
      create
      ? try lookupOrCreate(mount.fs, rest, exclusive: flags.contains(.exclusive))
      : try mount.fs.lookup(rest)

    let mode = flags.intersection(.accessMode)
    let wantsWrite = !isPath && (mode == .writeOnly || mode == .readWrite)
    let truncate = !isPath && flags.contains(.truncate)
    if inode.kind == .directory {
      if create { throw .isDirectory }
      if wantsWrite || truncate { throw .isDirectory }
    } else if flags.contains(.directory) {
      throw .notDirectory
    }
    if !isPath { try mount.fs.permission(inode, write: wantsWrite || (truncate && inode.kind == .regular)) }

    let file = try OpenFile(inode: inode, flags: flags, mount: mount, path: Namespace.normalize(path))
    if truncate && inode.kind == .regular {
      do {
        try inode.truncate(to: 0)
      } catch {
        file.fput()
        throw error
      }
    }
    return file
  }

  /// The inode at `path`, created when absent (`lookup_open`). Another opener may create it
  /// between our lookup and create: then it is looked up again, unless `exclusive`.
  private func lookupOrCreate(_ fs: any FileSystem, _ path: String, exclusive: Bool) throws(Errno) -> Inode {
    do throws(Errno) {
      let inode = try fs.lookup(path)
      if exclusive { throw .fileExists }
      return inode
    } catch {
      if error != .noSuchFileOrDirectory { throw error }
    }
    do throws(Errno) {
      return try fs.create(path)
    } catch {
      if error != .fileExists || exclusive { throw error }
    }
    return try fs.lookup(path)
  }

  /// Closes `fd` (`close_fd`): frees the slot, then puts the file's reference.
  /// - Throws: `EBADF` when `fd` is not open.
  public func close(_ fd: Int32) throws(Errno) {
    let file: OpenFile = try lock.withLock { () throws(Errno) -> OpenFile in
      guard fd >= 0, Int(fd) < files.count, let f = files[Int(fd)] else { throw .badFileDescriptor }
      files[Int(fd)] = nil
      return f
    }
    file.fput()
  }

  /// Closes every fd (`exit_files`).
  package func closeAll() {
    let all: [OpenFile] = lock.withLock {
      let open = files.compactMap { $0 }
      files = [nil, nil, nil]
      return open
    }
    for f in all { f.fput() }
  }

  // MARK: Lookup

  /// The file at `fd`, without taking a reference: the caller `fget()`s it, and must not rely on
  /// it once another thread may have closed `fd` (use `fget(_:)` then). With `forMmap` (the
  /// default, Linux's `fget`), an `O_PATH` fd is refused.
  /// - Throws: `EBADF` when `fd` is not open, or is `O_PATH` and `forMmap` is set.
  package func get(_ fd: Int32, forMmap: Bool = true) throws(Errno) -> OpenFile {
    try lock.withLock { () throws(Errno) -> OpenFile in try lookupLocked(fd, allowPath: !forMmap) }
  }

  /// `get(fd, forMmap: false)` (`fget_raw`): `O_PATH` fds included.
  package func getRaw(_ fd: Int32) throws(Errno) -> OpenFile {
    try get(fd, forMmap: false)
  }

  /// The file at `fd` with a reference taken for the caller, atomically with the lookup (`fget`):
  /// safe against a racing `close`. The caller `fput()`s it.
  /// - Throws: `EBADF` as `get`.
  package func fget(_ fd: Int32, forMmap: Bool = true) throws(Errno) -> OpenFile {
    try lock.withLock { () throws(Errno) -> OpenFile in
      let f = try lookupLocked(fd, allowPath: !forMmap)
      f.fget()
      return f
    }
  }

  private func lookupLocked(_ fd: Int32, allowPath: Bool) throws(Errno) -> OpenFile {
    guard fd >= 0, Int(fd) < files.count, let f = files[Int(fd)] else { throw .badFileDescriptor }
    if f.isPath && !allowPath { throw .badFileDescriptor }
    return f
  }

  /// Open fds.
  public var openCount: Int { lock.withLock { files.reduce(0) { $0 + ($1 == nil ? 0 : 1) } } }

  // MARK: Operations on fds

  /// Sets the size of the file at `fd` (`ftruncate(2)` → `do_truncate`): `i_size`, the page cache
  /// (mappings beyond the new EOF zapped, pages dropped, the EOF page's tail zeroed), the backing
  /// store, mtime.
  /// - Throws: `EBADF` (bad or `O_PATH` fd), `EINVAL` (length past `loff_t`, not open for writing,
  ///   not a regular file), `EFBIG`, or the backing store's error.
  public func ftruncate(_ fd: Int32, _ length: UInt64) throws(Errno) {
    let file = try fget(fd)
    defer { file.fput() }
    guard length <= Inode.maxFileSize else { throw .invalidArgument }  // negative as a loff_t
    guard file.writable, file.inode.kind == .regular else { throw .invalidArgument }
    try file.inode.truncate(to: length)
  }

  /// Reads from the file at `fd` at `offset` through the page cache (`pread64`).
  /// - Throws: `EBADF` (bad, `O_PATH` or not readable), `EISDIR`, `EINVAL` (negative offset).
  public func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(Errno) -> Int {
    let file = try fget(fd)
    defer { file.fput() }
    guard file.readable else { throw .badFileDescriptor }
    guard offset <= Inode.maxFileSize else { throw .invalidArgument }
    return try file.inode.read(into: buffer, at: offset)
  }

  /// Writes to the file at `fd` at `offset` through the page cache (`pwrite64`); the data is
  /// dirty in the cache until writeback.
  /// - Throws: `EBADF` (bad, `O_PATH` or not writable), `EINVAL` (negative offset, non-regular),
  ///   `EFBIG`.
  public func pwrite(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws(Errno) -> Int {
    let file = try fget(fd)
    defer { file.fput() }
    guard file.writable else { throw .badFileDescriptor }
    guard offset <= Inode.maxFileSize else { throw .invalidArgument }
    return try file.inode.write(bytes, at: offset)
  }

  /// Writes back the file at `fd` and syncs its backing store (`fsync(2)`).
  public func fsync(_ fd: Int32) throws(Errno) {
    let file = try fget(fd)
    defer { file.fput() }
    try file.inode.writeback(from: 0, to: .max, sync: true)
  }

  /// Duplicates `fd` onto the lowest free fd (`dup(2)`), sharing the open file.
  public func dup(_ fd: Int32) throws(Errno) -> Int32 {
    let file = try fget(fd, forMmap: false)
    let new: Int32
    do {
      new = try reserveFD()
    } catch {
      file.fput()
      throw error
    }
    install(file, at: new)
    return new
  }

  /// A copy of the table sharing every open file (`dup_fd`, for `fork`).
  package func copy() -> FileTable {
    let t = FileTable(namespace: namespace, maxFiles: maxFiles)
    lock.withLock {
      for case let f? in files { f.fget() }
      t.files = files
    }
    return t
  }

  // MARK: Slots

  private func reserveFD() throws(Errno) -> Int32 {
    try lock.withLock { () throws(Errno) -> Int32 in
      var fd = Self.firstFD
      while (fd < files.count && files[fd] != nil) || reserved.contains(Int32(fd)) { fd += 1 }
      guard fd < maxFiles else { throw .tooManyOpenFiles }
      reserved.insert(Int32(fd))
      return Int32(fd)
    }
  }

  private func install(_ file: OpenFile, at fd: Int32) {
    lock.withLock {
      reserved.remove(fd)
      while files.count <= Int(fd) { files.append(nil) }
      files[Int(fd)] = file
    }
  }
}
