import Faultline
import Glibc
import Synchronization

// will-it-scale's mmap1 (anonymous mmap + munmap of a region, nothing touched) and pft-style
// runs (threads fault pages of one large VMA, or of one VMA each, and drop them with
// MADV_DONTNEED to fault them again), on the engine and on the host kernel. pft's single large
// VMA is the per-VMA-lock and SPF worst case: every fault touches the same VMA's lock word or
// reference count.

/// mmap1: every thread loops on mmap of `regionBytes` private anonymous memory and munmap.
/// Returns pairs per second summed over threads.
public func mmapLoop(
  mm: AddressSpace, threads: Int, seconds: Double, regionBytes: UInt64, isolated: [AddressSpace]? = nil
) throws -> Double {
  let pairs = try timedRun(threads: threads, seconds: seconds) { t, stop in
    let cpu = try CPU(mm: isolated?[t] ?? mm)
    var n = 0
    while !stop() {
      let a = try cpu.mmap(0, regionBytes, prot: Prot.read | Prot.write, flags: MapFlags.private | MapFlags.anonymous)
      try cpu.munmap(a, regionBytes)
      n += 1
    }
    return n
  }
  return pairs.rate
}

/// mmap1 on the host kernel.
public func hostMmapLoop(threads: Int, seconds: Double, regionBytes: UInt64) throws -> Double {
  let pairs = try timedRun(threads: threads, seconds: seconds) { _, stop in
    var n = 0
    while !stop() {
      let p = Glibc.mmap(nil, Int(regionBytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
      guard let p, p != UnsafeMutableRawPointer(bitPattern: -1) else { throw Errno(rawValue: errno) }
      if Glibc.munmap(p, Int(regionBytes)) != 0 { throw Errno(rawValue: errno) }
      n += 1
    }
    return n
  }
  return pairs.rate
}

/// pft: each thread owns a `sliceBytes` slice and loops: write one byte per page, then
/// MADV_DONTNEED the slice. With `sharedVMA` the slices are parts of one mapping made up front;
/// otherwise each thread maps its own. Returns faults per second summed over threads.
public func pftLoop(mm: AddressSpace, threads: Int, seconds: Double, sliceBytes: UInt64, sharedVMA: Bool) throws -> Double {
  let setup = try CPU(mm: mm)
  let flags = MapFlags.private | MapFlags.anonymous
  let base = sharedVMA ? try setup.mmap(0, sliceBytes * UInt64(threads), prot: Prot.read | Prot.write, flags: flags) : 0
  defer { if sharedVMA { try? setup.munmap(base, sliceBytes * UInt64(threads)) } }
  let faults = try timedRun(threads: threads, seconds: seconds) { t, stop in
    let cpu = try CPU(mm: mm)
    let a = sharedVMA ? base + UInt64(t) * sliceBytes : try cpu.mmap(0, sliceBytes, prot: Prot.read | Prot.write, flags: flags)
    defer { if !sharedVMA { try? cpu.munmap(a, sliceBytes) } }
    var n = 0
    var value: UInt8 = 1
    while !stop() {
      var va = a
      while va < a + sliceBytes {
        try cpu.storeByte(va, value)
        va += Page.size
      }
      try cpu.madvise(a, sliceBytes, advice: Advice.dontNeed)
      n += Int(sliceBytes / Page.size)
      value &+= 1
    }
    return n
  }
  return faults.rate
}

/// pft on the host kernel.
public func hostPftLoop(threads: Int, seconds: Double, sliceBytes: UInt64, sharedVMA: Bool) throws -> Double {
  let total = Int(sliceBytes) * threads
  var base: UnsafeMutableRawPointer?
  if sharedVMA {
    base = Glibc.mmap(nil, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    guard let b = base, b != UnsafeMutableRawPointer(bitPattern: -1) else { throw Errno(rawValue: errno) }
  }
  defer { if let base { _ = Glibc.munmap(base, total) } }
  let shared = UInt(bitPattern: base)
  let faults = try timedRun(threads: threads, seconds: seconds) { t, stop in
    let p: UnsafeMutableRawPointer
    if sharedVMA {
      p = UnsafeMutableRawPointer(bitPattern: shared + UInt(t) * UInt(sliceBytes))!
    } else {
      let m = Glibc.mmap(nil, Int(sliceBytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
      guard let m, m != UnsafeMutableRawPointer(bitPattern: -1) else { throw Errno(rawValue: errno) }
      p = m
    }
    defer { if !sharedVMA { _ = Glibc.munmap(p, Int(sliceBytes)) } }
    let bytes = p.assumingMemoryBound(to: UInt8.self)
    var n = 0
    var value: UInt8 = 1
    while !stop() {
      var i = 0
      while i < Int(sliceBytes) {
        bytes[i] = value
        i += hostPage
      }
      if Glibc.madvise(p, Int(sliceBytes), MADV_DONTNEED) != 0 { throw Errno(rawValue: errno) }
      n += Int(sliceBytes) / hostPage
      value &+= 1
    }
    return n
  }
  return faults.rate
}

/// mmap2: every thread has its own `regionBytes` file under `directory` and loops on a private
/// mmap of it and munmap, nothing touched. Returns pairs per second summed over threads.
public func fileMmapLoop(
  mm: AddressSpace, directory: String, threads: Int, seconds: Double, regionBytes: UInt64,
  isolated: [AddressSpace]? = nil
) throws -> Double {
  let pairs = try timedRun(threads: threads, seconds: seconds) { t, stop in
    let cpu = try CPU(mm: isolated?[t] ?? mm)
    let fd = try cpu.open("\(directory)/mmap2-\(t)", flags: OpenFlags.readWrite | OpenFlags.create)
    try cpu.ftruncate(fd, regionBytes)
    var n = 0
    while !stop() {
      let a = try cpu.mmap(0, regionBytes, prot: Prot.read | Prot.write, flags: MapFlags.private, fd: fd)
      try cpu.munmap(a, regionBytes)
      n += 1
    }
    try cpu.close(fd)
    return n
  }
  return pairs.rate
}

/// mmap2 on the host kernel (each thread's file made with mkstemp in `directory` and unlinked).
public func hostFileMmapLoop(directory: String, threads: Int, seconds: Double, regionBytes: UInt64) throws -> Double {
  let pairs = try timedRun(threads: threads, seconds: seconds) { _, stop in
    var template = Array("\(directory)/mmap2-XXXXXX".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    guard fd >= 0 else { throw Errno(rawValue: errno) }
    defer { Glibc.close(fd) }
    template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
    if ftruncate(fd, off_t(regionBytes)) != 0 { throw Errno(rawValue: errno) }
    var n = 0
    while !stop() {
      let p = Glibc.mmap(nil, Int(regionBytes), PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0)
      guard let p, p != UnsafeMutableRawPointer(bitPattern: -1) else { throw Errno(rawValue: errno) }
      if Glibc.munmap(p, Int(regionBytes)) != 0 { throw Errno(rawValue: errno) }
      n += 1
    }
    return n
  }
  return pairs.rate
}
