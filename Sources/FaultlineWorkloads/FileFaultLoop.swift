import Faultline

/// will-it-scale's `page_fault2` (`shared: false`: a private file mapping, so every write is a
/// COW fault, `do_cow_fault`) and `page_fault3` (`shared: true`: a shared file mapping, so every
/// write dirties a page-cache page, `do_shared_fault`). Each thread has its own file of
/// `regionBytes` under `directory` (a mounted path) and loops: mmap it, write one byte per page,
/// munmap, for `seconds`. Returns faults (pages written) per second summed over threads.
public func fileFaultLoop(
  mm: AddressSpace, directory: String, threads: Int, seconds: Double, shared: Bool, regionBytes: UInt64,
  isolated: [AddressSpace]? = nil
) throws -> Double {
  let flags = shared ? MapFlags.shared : MapFlags.private
  let pages = try timedRun(threads: threads, seconds: seconds) { t, stop in
    let cpu = try CPU(mm: isolated?[t] ?? mm)
    let fd = try cpu.open("\(directory)/pf-\(t)", flags: OpenFlags.readWrite | OpenFlags.create)
    try cpu.ftruncate(fd, regionBytes)
    var n = 0
    while !stop() {
      let a = try cpu.mmap(0, regionBytes, prot: Prot.read | Prot.write, flags: flags, fd: fd)
      var va = a
      while va < a + regionBytes {
        try cpu.storeByte(va, 1)
        va += Page.size
      }
      try cpu.munmap(a, regionBytes)
      n += Int(regionBytes / Page.size)
    }
    try cpu.close(fd)
    return n
  }
  return pages.rate
}
