import Faultline
import Glibc

// The same loop shapes as the engine's workloads, run on the host kernel through Glibc, so that
// engine ÷ kernel ratios compare like with like. Stores go through an `UnsafeMutablePointer<UInt8>`
// into memory that escaped to an opaque system call (`munmap`, `madvise`) right after, with a
// value that changes per round, so the optimiser cannot drop them.

/// The host kernel's page size (`sysconf(_SC_PAGESIZE)`), which these loops step by.
let hostPage = Int(sysconf(Int32(_SC_PAGESIZE)))

/// `mmap(NULL, length, RW, flags, fd, 0)` on the host; throws the errno on `MAP_FAILED`.
private func hostMap(_ length: UInt64, flags: Int32, fd: Int32 = -1) throws(Errno) -> UnsafeMutablePointer<UInt8> {
  let p = Glibc.mmap(nil, Int(length), PROT_READ | PROT_WRITE, flags, fd, 0)
  guard let p, p != UnsafeMutableRawPointer(bitPattern: -1) else { throw Errno(rawValue: errno) }
  return p.assumingMemoryBound(to: UInt8.self)
}

private func hostUnmap(_ p: UnsafeMutablePointer<UInt8>, _ length: UInt64) throws(Errno) {
  if Glibc.munmap(p, Int(length)) != 0 { throw Errno(rawValue: errno) }
}

/// One store per 4 KiB page of `[p, p + length)`.
@inline(__always) private func touchPages(_ p: UnsafeMutablePointer<UInt8>, _ length: UInt64, _ value: UInt8) {
  var i = 0
  let n = Int(length)
  while i < n {
    p[i] = value
    i += hostPage
  }
}

/// `page_fault1` on the host kernel: `mmap(len, RW, PRIVATE|ANON)`, one store per page,
/// `munmap`, `rounds` times. Same timing split as `anonymousFaultLoop`.
public func hostAnonymousFaultLoop(regionBytes: UInt64, rounds: Int) throws -> FaultLoopResult {
  var result = FaultLoopResult(pages: 0, touchNanoseconds: 0, totalNanoseconds: 0)
  for r in 0..<rounds {
    let t0 = nowNanoseconds()
    let p = try hostMap(regionBytes, flags: MAP_PRIVATE | MAP_ANONYMOUS)
    let t1 = nowNanoseconds()
    touchPages(p, regionBytes, UInt8(truncatingIfNeeded: r | 1))
    let t2 = nowNanoseconds()
    try hostUnmap(p, regionBytes)
    let t3 = nowNanoseconds()
    result.pages += Int(regionBytes) / hostPage
    result.touchNanoseconds += t2 - t1
    result.totalNanoseconds += t3 - t0
  }
  return result
}

/// `ebizzy -mTt N` on the host kernel: every thread loops on `mmap` of `chunkBytes` private
/// anonymous memory, one store per page, `munmap`, for `seconds`, all in this process's mm.
public func hostEbizzy(threads: Int, seconds: Double, chunkBytes: UInt64 = 512 << 10) throws -> EbizzyResult {
  let records = try timedRun(threads: threads, seconds: seconds) { _, stop in
    var n = 0
    while !stop() {
      let p = try hostMap(chunkBytes, flags: MAP_PRIVATE | MAP_ANONYMOUS)
      touchPages(p, chunkBytes, UInt8(truncatingIfNeeded: n | 1))
      try hostUnmap(p, chunkBytes)
      n += 1
    }
    return n
  }
  return EbizzyResult(records: records.ops, seconds: records.seconds)
}

/// A file of `length` bytes under `directory`, made with `mkstemp` and unlinked at once, so only
/// the returned descriptor keeps it (as will-it-scale's page_fault2/3 do).
private func hostTempFile(directory: String, length: UInt64) throws(Errno) -> Int32 {
  var template = Array("\(directory)/faultline-pf-XXXXXX".utf8CString)
  let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
  if fd < 0 { throw Errno(rawValue: errno) }
  let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
  if unlink(path) != 0 || ftruncate(fd, off_t(length)) != 0 {
    let e = errno
    _ = Glibc.close(fd)
    throw Errno(rawValue: e)
  }
  return fd
}

/// will-it-scale's `page_fault2` (`shared: false`, MAP_PRIVATE: COW faults) and `page_fault3`
/// (`shared: true`, MAP_SHARED) on the host kernel. Each thread has its own unlinked file of
/// `regionBytes` in `directory` and loops: mmap it, one store per page, munmap, for `seconds`.
/// Returns faults (pages written) per second summed over threads.
public func hostFileFaultLoop(
  directory: String, threads: Int, seconds: Double, shared: Bool, regionBytes: UInt64
) throws -> Double {
  let flags = shared ? MAP_SHARED : MAP_PRIVATE
  let pages = try timedRun(threads: threads, seconds: seconds) { _, stop in
    let fd = try hostTempFile(directory: directory, length: regionBytes)
    defer { _ = Glibc.close(fd) }
    var n = 0
    var round = 0
    while !stop() {
      let p = try hostMap(regionBytes, flags: flags, fd: fd)
      touchPages(p, regionBytes, UInt8(truncatingIfNeeded: round | 1))
      try hostUnmap(p, regionBytes)
      n += Int(regionBytes) / hostPage
      round += 1
    }
    return n
  }
  return pages.rate
}

/// The DONTNEED refault loop on the host kernel: each thread maps a private anonymous region of
/// `regionBytes` once, then loops: one store per page (each a fault), `madvise(MADV_DONTNEED)`
/// (zaps them all), for `seconds`. Returns faults per second summed over threads.
public func hostDontneedLoop(threads: Int, seconds: Double, regionBytes: UInt64) throws -> Double {
  let pages = try timedRun(threads: threads, seconds: seconds) { _, stop in
    let p = try hostMap(regionBytes, flags: MAP_PRIVATE | MAP_ANONYMOUS)
    defer { _ = Glibc.munmap(p, Int(regionBytes)) }
    var n = 0
    var round = 0
    while !stop() {
      touchPages(p, regionBytes, UInt8(truncatingIfNeeded: round | 1))
      if Glibc.madvise(p, Int(regionBytes), MADV_DONTNEED) != 0 { throw Errno(rawValue: errno) }
      n += Int(regionBytes) / hostPage
      round += 1
    }
    return n
  }
  return pages.rate
}

/// The engine twin of `hostDontneedLoop`: each thread maps its region once in `mm`, then loops:
/// one store per page, `madvise(MADV_DONTNEED)`, for `seconds`. Returns faults per second summed
/// over threads.
public func dontneedLoop(
  mm: AddressSpace, threads: Int, seconds: Double, regionBytes: UInt64, isolated: [AddressSpace]? = nil
) throws -> Double {
  let flags = MapFlags.private | MapFlags.anonymous
  let pages = try timedRun(threads: threads, seconds: seconds) { t, stop in
    let cpu = try CPU(mm: isolated?[t] ?? mm)
    let a = try cpu.mmap(0, regionBytes, prot: Prot.read | Prot.write, flags: flags)
    var n = 0
    while !stop() {
      var va = a
      while va < a + regionBytes {
        try cpu.storeByte(va, 1)
        va += Page.size
      }
      try cpu.madvise(a, regionBytes, advice: Advice.dontNeed)
      n += Int(regionBytes / Page.size)
    }
    try cpu.munmap(a, regionBytes)
    return n
  }
  return pages.rate
}
