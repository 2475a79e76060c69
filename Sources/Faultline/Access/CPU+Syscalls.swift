/// The memory system calls, made by this thread: the library's one syscall surface. Faults a call
/// takes on the caller's behalf (`MAP_POPULATE`, `MAP_LOCKED`, `mlock`, `MADV_POPULATE_*`) run on
/// this handle, as Linux's `__get_user_pages` runs in the calling thread. `AddressSpace` has
/// the same calls with a `cpu:` argument, `package` only, for this package's runners and tests.
extension CPU {
  /// `mmap(2)`: maps `length` bytes and returns the address; `fd` and `offset` for a file.
  public func mmap(
    _ addr: UInt64, _ length: UInt64, prot: Prot, flags: MapFlags, fd: Int32 = -1, offset: Int64 = 0
  ) throws(Errno) -> UInt64 {
    try mm.mmap(addr, length, prot: prot, flags: flags, fd: fd, offset: offset, cpu: self)
  }

  /// `munmap(2)`.
  public func munmap(_ addr: UInt64, _ length: UInt64) throws(Errno) { try mm.munmap(addr, length) }

  /// `mprotect(2)`.
  public func mprotect(_ addr: UInt64, _ length: UInt64, prot: Prot) throws(Errno) {
    try mm.mprotect(addr, length, prot: prot, cpu: self)
  }

  /// `madvise(2)`.
  public func madvise(_ addr: UInt64, _ length: UInt64, advice: Advice) throws(Errno) {
    try mm.madvise(addr, length, advice: advice, cpu: self)
  }

  /// `mlock2(2)` (`mlock(2)` when `flags` is empty).
  public func mlock(_ addr: UInt64, _ length: UInt64, flags: MlockFlags = []) throws(Errno) {
    try mm.mlock(addr, length, flags: flags, cpu: self)
  }

  /// `munlock(2)`.
  public func munlock(_ addr: UInt64, _ length: UInt64) throws(Errno) { try mm.munlock(addr, length) }

  /// `mlockall(2)`: locks every mapping (`MCL_CURRENT`) and/or every later one (`MCL_FUTURE`).
  public func mlockall(_ flags: MlockallFlags) throws(Errno) { try mm.mlockall(flags, cpu: self) }

  /// `munlockall(2)`: unlocks every mapping and ends `MCL_FUTURE`.
  public func munlockall() { mm.munlockall() }

  /// `mseal(2)`: seals the VMAs of the range against unmapping, moving, resizing, `mprotect`
  /// and discarding read-only anonymous memory (`flags` must be 0).
  public func mseal(_ addr: UInt64, _ length: UInt64, flags: UInt64 = 0) throws(Errno) {
    try mm.mseal(addr, length, flags: flags)
  }

  /// `shmget(2)`: the id of the System V segment with `key` (`ShmFlags.ipcPrivate` for a new
  /// one), created with `IPC_CREAT` when absent. Segments belong to the machine.
  public func shmget(_ key: Int32, _ size: UInt64, flags: ShmFlags) throws(Errno) -> Int32 {
    try mm.machine.shm.get(
      key: key, size: size, flags: flags, memory: mm.memory, overcommit: mm.machine.profile.overcommitMemory,
      hugetlb: mm.machine.hugetlb, capIPCLock: mm.config.capIPCLock)
  }

  /// `shmat(2)`: attaches segment `id` at `addr` (0: wherever it fits) and returns the address.
  public func shmat(_ id: Int32, _ addr: UInt64 = 0, flags: ShmatFlags = []) throws(Errno) -> UInt64 {
    try mm.shmat(id, addr, flags: flags, cpu: self)
  }

  /// `shmdt(2)`: detaches the segment attached at `addr`.
  public func shmdt(_ addr: UInt64) throws(Errno) { try mm.shmdt(addr) }

  /// `shmctl(2)`: runs `cmd` on segment `id` (an index for `SHM_STAT`) and returns what the call
  /// returns (0, an index, or an id); `shmStat` gives the `IPC_STAT` buffer.
  @discardableResult
  public func shmctl(_ id: Int32, _ cmd: ShmctlCommand) throws(Errno) -> Int32 {
    try mm.machine.shm.control(id, cmd).1
  }

  /// `shmctl(id, IPC_STAT)`: the segment's state.
  public func shmStat(_ id: Int32) throws(Errno) -> ShmidDS {
    guard let ds = try mm.machine.shm.control(id, .stat).0 else { throw Errno.invalidArgument }
    return ds
  }

  /// `mincore(2)`: one byte per page, 1 when resident.
  public func mincore(_ addr: UInt64, _ length: UInt64) throws(Errno) -> [UInt8] { try mm.mincore(addr, length) }

  /// `mremap(2)`: returns the new address.
  public func mremap(
    _ addr: UInt64, _ oldSize: UInt64, _ newSize: UInt64, flags: MremapFlags, newAddress: UInt64 = 0
  ) throws(Errno) -> UInt64 {
    try mm.mremap(addr, oldSize, newSize, flags: flags, newAddress: newAddress, cpu: self)
  }

  /// `fork(2)`: the child's address space (its threads need their own `CPU` handles).
  public func fork() throws(Errno) -> AddressSpace { try mm.fork() }

  /// `brk(2)`: returns the new break (the old one when the request fails).
  public func brk(_ addr: UInt64) -> UInt64 { mm.brk(addr, cpu: self) }

  /// `msync(2)`.
  public func msync(_ addr: UInt64, _ length: UInt64, flags: MsyncFlags) throws(Errno) {
    try mm.msync(addr, length, flags: flags)
  }

  /// `open(2)` in the address space's file table.
  public func open(_ path: String, flags: OpenFlags) throws(Errno) -> Int32 { try mm.files.open(path, flags: flags) }

  /// `close(2)`. Faultline writes a writable file's dirty pages back on close, as NFS's
  /// close-to-open consistency does (a local Linux file system leaves them to the flusher).
  public func close(_ fd: Int32) throws(Errno) {
    if let file = try? mm.files.getRaw(fd), file.writable {
      try? file.inode.writeback(from: 0, to: .max, sync: false)
    }
    try mm.files.close(fd)
  }

  /// `ftruncate(2)`.
  public func ftruncate(_ fd: Int32, _ length: UInt64) throws(Errno) { try mm.files.ftruncate(fd, length) }
}
