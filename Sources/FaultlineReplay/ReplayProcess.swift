import Faultline

/// One program of a replayed log: its engine address space, the thread that makes its calls,
/// and what the replay knows beyond the engine's VMAs.
final class ReplayProcess {
  var mm: AddressSpace?
  var cpu: CPU?
  /// Recorded fd → engine fd, for files the script opened.
  var fds: [Int32: Int32] = [:]
  /// Normalised paths of files opened by the script (their maps lines are compared).
  var openedPaths: Set<String> = []
  /// Ranges the script mapped or unmapped (never inferred as kernel-made memory).
  var touched = AddressRanges()
  /// Ranges that stand in for memory the engine does not model: left out of maps comparisons.
  var foreign = AddressRanges()
  /// The last break the log recorded for this program.
  var lastRecordedBrk: UInt64?
  /// Recorded fd → the stand-in open under it (`StandInFile`); its engine fd is in `fds` too.
  var standIns: [Int32: StandInFile] = [:]
  /// Ranges where the engine's layout left the recorded one, with the line of the root mismatch
  /// (`ReplayDivergence`); `0..<UInt64.max` when the layouts could not be made to agree.
  var divergences: [(range: Range<UInt64>, line: Int)] = []

  init(machine: Machine, config: AddressSpaceConfig) throws(Errno) {
    let mm = try AddressSpace(machine: machine, config: config)
    self.mm = mm
    cpu = try CPU(mm: mm)
  }

  /// The child of `fork`: a copy of the parent's address space (`AddressSpace.fork`) and of what
  /// the replay knows about it.
  init(forkOf parent: ReplayProcess) throws(Errno) {
    guard let cpu = parent.cpu else { throw Errno.noSuchProcess }
    let mm = try cpu.fork()
    self.mm = mm
    let childCPU = try CPU(mm: mm)
    // The child's thread starts with a copy of the parent's registers, PKRU included (a
    // machine without keys has no PKRU to copy).
    try? childCPU.wrpkru(cpu.pkru)
    self.cpu = childCPU
    fds = parent.fds
    openedPaths = parent.openedPaths
    touched = parent.touched
    foreign = parent.foreign
    lastRecordedBrk = parent.lastRecordedBrk
    standIns = parent.standIns
    divergences = parent.divergences
  }

  func tearDown() {
    cpu = nil
    mm?.destroy()
    mm = nil
  }

  /// The engine's mapped ranges overlapping `r`, in order.
  func mappedRanges(in r: Range<UInt64>) -> [Range<UInt64>] {
    guard let mm else { return [] }
    var out: [Range<UInt64>] = []
    mm.mmapLock.readLock()
    // find_vma from the range's start, then each next VMA: O(k log n), not a walk of the tree.
    var next = mm.tree.find(r.lowerBound)
    while let v = next?.takeUnretainedValue(), v.start < r.upperBound {
      out.append(v.start..<v.end)
      next = mm.tree.find(v.end)
    }
    mm.mmapLock.readUnlock()
    return out
  }

  /// Maps the parts of `[addr, addr+len)` that neither the engine nor the script ever had:
  /// memory the kernel made before the log starts (the ELF, ld.so, the stack). Returns how many
  /// ranges it mapped. `growsDown`: the range is the stack, a `VM_GROWSDOWN` VMA as Linux makes
  /// it (what a completed `mprotect(…, PROT_GROWSDOWN)` shows: Linux refuses it on any other VMA).
  func inferKernelMappings(_ addr: UInt64, _ len: UInt64, growsDown: Bool = false) -> Int {
    let end = addr &+ Page.roundUp(len)
    guard let mm, let cpu, Page.isAligned(addr), end > addr, end <= mm.config.taskSize else { return 0 }
    var known = touched
    for r in mappedRanges(in: addr..<end) { known.insert(r) }
    var n = 0
    for gap in known.gaps(in: addr..<end) {
      var flags = MapFlags.private | MapFlags.anonymous | MapFlags.fixedNoReplace
      if growsDown { flags.insert(.growsDown) }
      if (try? cpu.mmap(gap.lowerBound, gap.upperBound - gap.lowerBound, prot: Prot.read | Prot.write, flags: flags)) != nil {
        foreign.insert(gap)
        touched.insert(gap)
        n += 1
      }
    }
    return n
  }

  /// Where a hint-less mapping of `length` bytes at `offset` of the stand-in open as engine
  /// `fd` goes when its file system's `get_unmapped_area` is `thp_get_unmapped_area` (ext4, xfs,
  /// btrfs): when the mapping covers a whole 2 MiB-aligned extent of the file, the kernel
  /// searches for `length + 2 MiB` and aligns the address with the offset
  /// (`__thp_get_unmapped_area`). `nil`: no alignment. The padded search is the engine's own, by
  /// a probe mapping of the stand-in (tmpfs at `huge=never`: the plain search) removed at once.
  func thpFileAddress(hint: UInt64, length: UInt64, offset: UInt64, fd: Int32) -> UInt64? {
    let size: UInt64 = 2 << 20
    let len = Page.roundUp(length)
    guard let cpu, len != 0 else { return nil }
    let offEnd = offset &+ len
    let offAlign = (offset &+ (size - 1)) & ~(size - 1)
    guard offAlign >= offset, offEnd > offset, offEnd > offAlign, offEnd - offAlign >= size else { return nil }
    let lenPad = len &+ size
    guard lenPad > len, offset &+ lenPad > offset else { return nil }
    guard let probe = try? cpu.mmap(hint, lenPad, prot: Prot.none, flags: MapFlags.private, fd: fd, offset: 0) else {
      return nil
    }
    try? cpu.munmap(probe, lenPad)
    if probe == hint { return hint }
    let offSub = (offset &- probe) & (size - 1)
    return offSub == 0 ? probe &+ size : probe &+ offSub
  }
}
