/// The memory system calls, made by this thread (so that `MAP_POPULATE` faults on its handle).
extension CPU {
  public func mmap(
    _ addr: UInt64, _ length: UInt64, prot: Prot, flags: MapFlags, fd: Int32 = -1, offset: Int64 = 0
  ) throws(Errno) -> UInt64 {
    try mm.mmap(addr, length, prot: prot, flags: flags, fd: fd, offset: offset, cpu: self)
  }

  public func munmap(_ addr: UInt64, _ length: UInt64) throws(Errno) { try mm.munmap(addr, length) }

  public func mprotect(_ addr: UInt64, _ length: UInt64, prot: Prot) throws(Errno) {
    try mm.mprotect(addr, length, prot: prot, cpu: self)
  }

  public func madvise(_ addr: UInt64, _ length: UInt64, advice: Advice) throws(Errno) {
    try mm.madvise(addr, length, advice: advice, cpu: self)
  }

  public func mlock(_ addr: UInt64, _ length: UInt64, flags: Int32 = 0) throws(Errno) {
    try mm.mlock(addr, length, flags: flags, cpu: self)
  }

  public func munlock(_ addr: UInt64, _ length: UInt64) throws(Errno) { try mm.munlock(addr, length) }

  public func mincore(_ addr: UInt64, _ length: UInt64) throws(Errno) -> [UInt8] { try mm.mincore(addr, length) }

  public func mremap(
    _ addr: UInt64, _ oldSize: UInt64, _ newSize: UInt64, flags: MremapFlags, newAddress: UInt64 = 0
  ) throws(Errno) -> UInt64 {
    try mm.mremap(addr, oldSize, newSize, flags: flags, newAddress: newAddress, cpu: self)
  }

  /// `fork(2)`: the child's address space (its threads need their own `CPU` handles).
  public func fork() throws(Errno) -> AddressSpace { try mm.fork() }

  public func brk(_ addr: UInt64) -> UInt64 { mm.brk(addr) }

  public func msync(_ addr: UInt64, _ length: UInt64, flags: Int32) throws(Errno) {
    try mm.msync(addr, length, flags: flags)
  }

  /// `open(2)` in the address space's file table.
  public func open(_ path: String, flags: OpenFlags) throws(Errno) -> Int32 { try mm.files.open(path, flags: flags) }

  /// `close(2)`. Faultline writes a writable file's dirty pages back on close, as NFS's
  /// close-to-open consistency does (a local Linux file system leaves them to the flusher).
  public func close(_ fd: Int32) throws(Errno) {
    if let file = try? mm.files.getRaw(fd), file.writable {
      try? FileWriteback.writeback(file, from: 0, to: .max, machine: machine, sync: false)
    }
    try mm.files.close(fd)
  }

  public func ftruncate(_ fd: Int32, _ length: UInt64) throws(Errno) { try mm.files.ftruncate(fd, length) }
}
