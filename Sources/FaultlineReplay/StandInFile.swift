import Faultline

/// Stand-ins for files a log uses but the replay cannot have: the files a traced program opens
/// (`/proc/sys/vm/overcommit_memory`, shared libraries, jemalloc's reads) and the fds it maps
/// without a traced open. Each is an empty, sparse file in the engine's tmpfs (its size is
/// unknown, so it is large: mappings and accesses never reach its end), opened with the
/// recorded access mode, under the recorded fd. So `mmap`, `mprotect`, `madvise`, `close` of it
/// replay as file calls: a `MAP_SHARED` mapping is shared file memory (`MADV_REMOVE` punches
/// holes, a fork shares it), a `MAP_PRIVATE` one is copy-on-write.
///
/// Placement follows the file system the path names (`StandInKind`), not the tmpfs the stand-in
/// lives in. Ranges mapped from stand-ins are left out of `maps()` comparisons.
struct StandInFile {
  var kind: StandInKind
  /// The engine fd.
  var engineFD: Int32
  /// The path the log gave (traced open, or `-y`'s `3</path>`), if any.
  var path: String?

  /// The size stand-ins are truncated to: 16 TiB, sparse.
  static let size: UInt64 = 1 << 44
}

/// What a stand-in's path says about its file system, which decides where the kernel places a
/// mapping of it (`__get_unmapped_area`). Checked on Linux 6.18 (x86-64, `shmem_enabled=never`,
/// ASLR off): a hint-less 4 MiB mapping of an ext4 file is 2 MiB-aligned, of `/dev/shm` or a
/// memfd it is not; `mremap` of a 3 MiB ext4 mapping to 7 MiB moves to an aligned address, of a
/// `/dev/shm` or anonymous one to an unaligned one; `/dev/zero` maps anonymous memory
/// (aligned when private and a multiple of 2 MiB) or shmem (shared: not aligned).
enum StandInKind: Equatable {
  /// A disk file system with large folios (ext4, xfs, btrfs: `thp_get_unmapped_area`), and any
  /// path that does not say otherwise, or no path at all.
  case diskFile
  /// tmpfs (`shmem_get_unmapped_area`, mounts at `huge=never`): `/dev/shm`, memfd, `/run`,
  /// System V segments.
  case shmem
  /// `/dev/zero`: `mmap_zero` makes private mappings anonymous and shared ones shmem.
  case zero

  init(path: String?) {
    guard let path else {
      self = .diskFile
      return
    }
    if path == "/dev/zero" {
      self = .zero
    } else if path.hasPrefix("/dev/shm/") || path.hasPrefix("/memfd:") || path.hasPrefix("/run/")
      || path.hasPrefix("/SYSV")
    {
      self = .shmem
    } else {
      self = .diskFile
    }
  }
}

extension ReplayExecutor {
  /// Opens a stand-in for `path` (`nil`: a file the log never named) in `p` under the recorded
  /// `fd`, with the access mode of `flags` (read-write when the open was not traced). Every open
  /// of one path shares one stand-in file, as they would share one inode.
  func openStandIn(path: String?, flags: Int32, as fd: Int32, in p: ReplayProcess) -> StandInFile? {
    guard let cpu = p.cpu else { return nil }
    if let old = p.standIns.removeValue(forKey: fd) { try? cpu.close(old.engineFD) }
    let enginePath: String
    if let path, let known = standInPaths[path] {
      enginePath = known
    } else {
      standInCount += 1
      enginePath = "/.faultline-stand-in-\(standInCount)"
      if let path { standInPaths[path] = enginePath }
      if StandInKind(path: path) == .diskFile { diskStandIns.insert(enginePath) }
      guard let created = try? cpu.open(enginePath, flags: OpenFlags.create | OpenFlags.readWrite) else { return nil }
      try? cpu.ftruncate(created, StandInFile.size)
      try? cpu.close(created)
    }
    let mode = OpenFlags(rawValue: flags).intersection([.accessMode, .path])
    guard let engineFD = try? cpu.open(enginePath, flags: mode) else { return nil }
    let s = StandInFile(kind: StandInKind(path: path), engineFD: engineFD, path: path)
    p.standIns[fd] = s
    p.fds[fd] = engineFD
    return s
  }

  /// The stand-in a file `mmap` of the recorded `fd` uses: the one opened for it, unless `-y`
  /// names another file (the log's untraced close and open reused the number), or a new one.
  func standIn(forMmapOf fd: Int32, path: String?, in p: ReplayProcess) -> StandInFile? {
    if let s = p.standIns[fd], path == nil || s.path == nil || s.path == path { return s }
    return openStandIn(path: path, flags: OpenFlags.readWrite.rawValue, as: fd, in: p)
  }
}

extension ReplayProcess {
  /// `mremap` of a stand-in of a disk file that may move and must grow: Linux grows it in place
  /// when it can, and else moves it to `get_unmapped_area(file, 0, newSize, pgoff)`, which for a
  /// large-folio file system is `thp_get_unmapped_area` (the tmpfs stand-in's own rule would not
  /// align). `nil`: not that case; the caller runs the call as it is.
  func mremapDiskStandIn(
    _ old: UInt64, _ oldSize: UInt64, _ newSize: UInt64, diskStandIns: Set<String>
  ) throws(Errno) -> UInt64? {
    guard let cpu, let mm, Page.roundUp(newSize) > Page.roundUp(oldSize), Page.isAligned(old) else { return nil }
    var found: (path: String, pgoff: UInt64)?
    mm.mmapLock.readLock()
    if let v = mm.tree.find(old)?.takeUnretainedValue(), v.start <= old, let file = v.file {
      found = (file.path, v.pgoff + ((old - v.start) >> Page.shift))
    }
    mm.mmapLock.readUnlock()
    guard let found, diskStandIns.contains(found.path) else { return nil }
    do throws(Errno) {
      return try cpu.mremap(old, oldSize, newSize, flags: [], newAddress: 0)
    } catch {
      if error != .noMemory { return nil }
    }
    guard let fd = try? cpu.open(found.path, flags: .readOnly) else { return nil }
    defer { try? cpu.close(fd) }
    guard let target = thpFileAddress(hint: 0, length: newSize, offset: found.pgoff << Page.shift, fd: fd) else {
      return nil
    }
    return try cpu.mremap(old, oldSize, newSize, flags: MremapFlags.mayMove | MremapFlags.fixed, newAddress: target)
  }
}
