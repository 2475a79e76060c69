/// The host file behind one `HostFS` inode: one open host descriptor, read-write when the host
/// allows it, else read-only, closed when the inode goes (the last reference to this object).
///
/// Immutable after creation; `pread`/`pwrite` at absolute offsets need no lock.
final class HostFile: @unchecked Sendable {
  let fd: FileDescriptor
  /// Whether `fd` was opened read-write.
  let writable: Bool

  init(fd: FileDescriptor, writable: Bool) {
    self.fd = fd
    self.writable = writable
  }

  deinit { try? fd.close() }
}
