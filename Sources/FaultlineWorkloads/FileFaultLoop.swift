import Faultline
import Synchronization

/// will-it-scale's `page_fault2` (`shared: false`: a private file mapping, so every write is a
/// COW fault, `do_cow_fault`) and `page_fault3` (`shared: true`: a shared file mapping, so every
/// write dirties a page-cache page, `do_shared_fault`). Each thread has its own file of
/// `regionBytes` under `directory` (a mounted path) and loops: mmap it, write one byte per page,
/// munmap, for `seconds`. Returns faults (pages written) per second summed over threads.
public func fileFaultLoop(
  mm: AddressSpace, directory: String, threads: Int, seconds: Double, shared: Bool, regionBytes: UInt64
) throws -> Double {
  final class Shared: @unchecked Sendable {
    let go = Atomic<Bool>(false)
    let stop = Atomic<Bool>(false)
    let pages = Atomic<Int>(0)
    let failures = Atomic<Int>(0)
  }
  let s = Shared()
  let flags = shared ? MapFlags.shared : MapFlags.private
  runOnThreads(threads + 1) { t in
    if t == threads {
      s.go.store(true, ordering: .releasing)
      let t0 = nowNanoseconds()
      while Double(nowNanoseconds() - t0) < seconds * 1e9 { usleep(2000) }
      s.stop.store(true, ordering: .releasing)
      return
    }
    var n = 0
    do {
      let cpu = try CPU(mm: mm)
      let fd = try cpu.open("\(directory)/pf-\(t)", flags: OpenFlags.readWrite | OpenFlags.create)
      try cpu.ftruncate(fd, regionBytes)
      while !s.go.load(ordering: .acquiring) {}
      while !s.stop.load(ordering: .relaxed) {
        let a = try cpu.mmap(0, regionBytes, prot: Prot.read | Prot.write, flags: flags, fd: fd)
        var va = a
        while va < a + regionBytes {
          try cpu.storeByte(va, 1)
          va += 4096
        }
        try cpu.munmap(a, regionBytes)
        n += Int(regionBytes / 4096)
      }
      try cpu.close(fd)
    } catch {
      s.failures.wrappingAdd(1, ordering: .relaxed)
    }
    s.pages.wrappingAdd(n, ordering: .relaxed)
  }
  if s.failures.load(ordering: .relaxed) > 0 { throw EbizzyError.threadFailed }
  return Double(s.pages.load(ordering: .relaxed)) / seconds
}

import Glibc
