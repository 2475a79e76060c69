import Faultline
import Glibc
import Synchronization

// page_fault1-thp: will-it-scale's page_fault1 on memory advised for transparent huge pages, on
// the engine and on the host kernel. Each thread loops: map a private anonymous region that is
// a whole number of 2 MiB extents at a 2 MiB-aligned address, `madvise(MADV_HUGEPAGE)` it, write
// one byte per 4 KiB page as page_fault1 does, and unmap it. Where THP applies, the first write
// of each extent faults in a 2 MiB page and the next 511 find it mapped; elsewhere every write
// is a 4 KiB fault. The THP counters of `/proc/vmstat` (or the engine's, by the same names) say
// which happened.

/// `HPAGE_PMD_SIZE` on x86-64: the extent one PMD-mapped huge page covers.
public let hugePageBytes: UInt64 = 2 << 20

/// The `/proc/vmstat` counters that say how a THP-eligible fault went: a huge page installed
/// (`thp_fault_alloc`), or none to be had, so 4 KiB pages instead (`thp_fault_fallback`).
public let thpFaultCounterNames = ["thp_fault_alloc", "thp_fault_fallback"]

/// What one page_fault1-thp run measured, summed over its threads.
public struct HugeFaultLoopResult: Sendable {
  /// 4 KiB pages written (one store each), over all threads and passes.
  public var pages: Int
  /// Seconds from the common start to the last thread's return (as `TimedCount`).
  public var seconds: Double
  /// Time spent in the touch loops, summed over threads: the faults and the stores that hit.
  public var touchNanoseconds: UInt64

  public init(pages: Int, seconds: Double, touchNanoseconds: UInt64) {
    self.pages = pages
    self.seconds = seconds
    self.touchNanoseconds = touchNanoseconds
  }

  /// 4 KiB pages written per second, summed over threads: will-it-scale's op count (one per
  /// page written, whatever size the fault behind it was).
  public var rate: Double { Double(pages) / seconds }
  /// Touch time per 4 KiB page written: comparable with page_fault1's ns per fault.
  public var nanosecondsPer4KiB: Double { Double(touchNanoseconds) / Double(max(pages, 1)) }
  /// Touch time per 2 MiB extent written: one 2 MiB fault and 511 stores that hit it where the
  /// extent got a huge page, 512 4 KiB faults where it did not.
  public var nanosecondsPer2MiB: Double { nanosecondsPer4KiB * Double(hugePageBytes / Page.size) }
}

/// Touch time summed over the worker threads of one run.
private final class TouchTime: Sendable {
  let nanoseconds = Atomic<UInt64>(0)
}

/// The region a page_fault1-thp thread maps each pass: `bytes` rounded up to whole 2 MiB extents.
public func hugeFaultRegion(_ bytes: UInt64) -> UInt64 {
  (max(bytes, 1) + hugePageBytes - 1) & ~(hugePageBytes - 1)
}

/// page_fault1-thp on the engine: each of `threads` threads loops on a 2 MiB-aligned private
/// anonymous mapping of `regionBytes` (a positive multiple of 2 MiB, else `EINVAL`) in `mm` (or
/// its own space of `isolated`), `MADV_HUGEPAGE`, one store per 4 KiB page, `munmap`, for
/// `seconds`.
public func hugeAnonymousFaultLoop(
  mm: AddressSpace, threads: Int, seconds: Double, regionBytes: UInt64, isolated: [AddressSpace]? = nil
) throws -> HugeFaultLoopResult {
  guard regionBytes > 0, regionBytes % hugePageBytes == 0 else { throw Errno.invalidArgument }
  let touch = TouchTime()
  let run = try timedRun(threads: threads, seconds: seconds) { t, stop in
    let cpu = try CPU(mm: isolated?[t] ?? mm)
    var n = 0
    var ns: UInt64 = 0
    var value: UInt8 = 1
    while !stop() {
      let a = try mapHugeAligned(cpu, regionBytes)
      try cpu.madvise(a, regionBytes, advice: Advice.hugePage)
      let t0 = nowNanoseconds()
      var va = a
      while va < a + regionBytes {
        try cpu.storeByte(va, value)
        va += Page.size
      }
      ns += nowNanoseconds() - t0
      try cpu.munmap(a, regionBytes)
      n += Int(regionBytes / Page.size)
      value &+= 1
    }
    touch.nanoseconds.wrappingAdd(ns, ordering: .relaxed)
    return n
  }
  return HugeFaultLoopResult(
    pages: run.ops, seconds: run.seconds, touchNanoseconds: touch.nanoseconds.load(ordering: .relaxed))
}

/// A private anonymous read-write mapping of `length` (a multiple of 2 MiB) at a 2 MiB-aligned
/// address. Linux 6.7 and later (and the engine) place such a mapping aligned already; on an
/// older kernel's placement, map 2 MiB more and trim both ends, as a THP-aware allocator does.
private func mapHugeAligned(_ cpu: CPU, _ length: UInt64) throws -> UInt64 {
  let prot = Prot.read | Prot.write
  let flags = MapFlags.private | MapFlags.anonymous
  let a = try cpu.mmap(0, length, prot: prot, flags: flags)
  if a % hugePageBytes == 0 { return a }
  try cpu.munmap(a, length)
  let padded = try cpu.mmap(0, length + hugePageBytes, prot: prot, flags: flags)
  let start = (padded + hugePageBytes - 1) & ~(hugePageBytes - 1)
  if start > padded { try cpu.munmap(padded, start - padded) }
  let tail = padded + length + hugePageBytes - (start + length)
  if tail > 0 { try cpu.munmap(start + length, tail) }
  return start
}

/// page_fault1-thp on the host kernel, under the host's THP setting (with `madvise`, the
/// `MADV_HUGEPAGE` here is what gives huge pages; with `never`, none do). Same loop and result
/// as `hugeAnonymousFaultLoop`.
public func hostHugeAnonymousFaultLoop(threads: Int, seconds: Double, regionBytes: UInt64) throws -> HugeFaultLoopResult {
  guard regionBytes > 0, regionBytes % hugePageBytes == 0 else { throw Errno.invalidArgument }
  let touch = TouchTime()
  let run = try timedRun(threads: threads, seconds: seconds) { _, stop in
    var n = 0
    var ns: UInt64 = 0
    var value: UInt8 = 1
    while !stop() {
      let p = try hostMapHugeAligned(Int(regionBytes))
      if Glibc.madvise(p, Int(regionBytes), MADV_HUGEPAGE) != 0 { throw Errno(rawValue: errno) }
      let bytes = p.assumingMemoryBound(to: UInt8.self)
      let t0 = nowNanoseconds()
      var i = 0
      while i < Int(regionBytes) {
        bytes[i] = value
        i += hostPage
      }
      ns += nowNanoseconds() - t0
      if Glibc.munmap(p, Int(regionBytes)) != 0 { throw Errno(rawValue: errno) }
      n += Int(regionBytes) / hostPage
      value &+= 1
    }
    touch.nanoseconds.wrappingAdd(ns, ordering: .relaxed)
    return n
  }
  return HugeFaultLoopResult(
    pages: run.ops, seconds: run.seconds, touchNanoseconds: touch.nanoseconds.load(ordering: .relaxed))
}

/// The host twin of `mapHugeAligned`.
private func hostMapHugeAligned(_ length: Int) throws(Errno) -> UnsafeMutableRawPointer {
  func map(_ n: Int) throws(Errno) -> UnsafeMutableRawPointer {
    let p = Glibc.mmap(nil, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    guard let p, p != UnsafeMutableRawPointer(bitPattern: -1) else { throw Errno(rawValue: errno) }
    return p
  }
  let huge = Int(hugePageBytes)
  let p = try map(length)
  if Int(bitPattern: p) % huge == 0 { return p }
  _ = Glibc.munmap(p, length)
  let padded = try map(length + huge)
  let lead = (huge - Int(bitPattern: padded) % huge) % huge
  if lead > 0 { _ = Glibc.munmap(padded, lead) }
  if huge - lead > 0 { _ = Glibc.munmap(padded + lead + length, huge - lead) }
  return padded + lead
}

/// The host's `/proc/vmstat` counters named in `names` (those it has; a missing file gives none).
/// System-wide: a delta over a run also counts whatever else the machine faulted meanwhile.
public func hostVMStat(_ names: [String]) -> [String: UInt64] {
  guard let f = fopen("/proc/vmstat", "r") else { return [:] }
  defer { fclose(f) }
  let wanted = Set(names)
  var out: [String: UInt64] = [:]
  var line: UnsafeMutablePointer<CChar>?
  var capacity = 0
  defer { free(line) }
  while getline(&line, &capacity, f) > 0, let line {
    let fields = String(cString: line).split(whereSeparator: { $0 == " " || $0 == "\n" })
    guard fields.count == 2, wanted.contains(String(fields[0])), let v = UInt64(fields[1]) else { continue }
    out[String(fields[0])] = v
  }
  return out
}

/// The engine's counters named in `names` (as `/proc/vmstat` names them), from a snapshot: only
/// those the engine keeps, so a counter it does not have yet is absent rather than zero.
public func engineVMStat(_ snapshot: [VMStatItem: UInt64], _ names: [String]) -> [String: UInt64] {
  var out: [String: UInt64] = [:]
  for item in VMStatItem.allCases where names.contains(item.name) { out[item.name] = snapshot[item] ?? 0 }
  return out
}
