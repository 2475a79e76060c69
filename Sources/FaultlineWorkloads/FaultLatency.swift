import Faultline
import Glibc
import Histogram

/// Fault latency percentiles in nanoseconds.
public struct LatencyPercentiles: Sendable, Equatable {
  public var p50: Double
  public var p99: Double
  public var p999: Double
  public var samples: Int
}

/// One page_fault1 round with every store timed (each store faults: the pages are fresh), in an
/// HDR histogram (3 significant digits). Timing adds two clock reads per fault, so the
/// percentiles come from this separate round, not from the throughput rounds.
public func anonymousFaultLatency(cpu: CPU, regionBytes: UInt64) throws -> LatencyPercentiles {
  var h = Histogram<UInt64>(highestTrackableValue: 10_000_000_000, numberOfSignificantValueDigits: .three)
  let a = try cpu.mmap(0, regionBytes, prot: Prot.read | Prot.write, flags: MapFlags.private | MapFlags.anonymous)
  var va = a
  while va < a + regionBytes {
    let t0 = nowNanoseconds()
    try cpu.storeByte(va, 1)
    h.record(max(nowNanoseconds() - t0, 1))
    va += Page.size
  }
  try cpu.munmap(a, regionBytes)
  return percentiles(h)
}

/// The same on the host kernel.
public func hostAnonymousFaultLatency(regionBytes: UInt64) throws -> LatencyPercentiles {
  var h = Histogram<UInt64>(highestTrackableValue: 10_000_000_000, numberOfSignificantValueDigits: .three)
  let p = Glibc.mmap(nil, Int(regionBytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
  guard let p, p != UnsafeMutableRawPointer(bitPattern: -1) else { throw Errno(rawValue: errno) }
  let bytes = p.assumingMemoryBound(to: UInt8.self)
  var i = 0
  while i < Int(regionBytes) {
    let t0 = nowNanoseconds()
    bytes[i] = 1
    h.record(max(nowNanoseconds() - t0, 1))
    i += hostPage
  }
  if Glibc.munmap(p, Int(regionBytes)) != 0 { throw Errno(rawValue: errno) }
  return percentiles(h)
}

private func percentiles(_ h: Histogram<UInt64>) -> LatencyPercentiles {
  LatencyPercentiles(
    p50: Double(h.valueAtPercentile(50)), p99: Double(h.valueAtPercentile(99)),
    p999: Double(h.valueAtPercentile(99.9)), samples: Int(h.totalCount))
}
