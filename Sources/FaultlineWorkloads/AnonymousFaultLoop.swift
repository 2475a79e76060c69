import Faultline

/// One measured run of a will-it-scale `page_fault1`-shaped loop: map a region, write one byte
/// per page, unmap it.
public struct FaultLoopResult: Sendable {
  public var pages: Int
  /// Time spent in the touch loops (the faults themselves).
  public var touchNanoseconds: UInt64
  /// Time of the whole loop, mmap and munmap included.
  public var totalNanoseconds: UInt64
  public var touchNanosecondsPerPage: Double { Double(touchNanoseconds) / Double(max(pages, 1)) }
  public var totalNanosecondsPerPage: Double { Double(totalNanoseconds) / Double(max(pages, 1)) }
}

/// `page_fault1`: `mmap(len, RW, PRIVATE|ANON)`, one store per page, `munmap`, `rounds` times.
public func anonymousFaultLoop(cpu: CPU, regionBytes: UInt64, rounds: Int) throws -> FaultLoopResult {
  var result = FaultLoopResult(pages: 0, touchNanoseconds: 0, totalNanoseconds: 0)
  let flags = MapFlags.private | MapFlags.anonymous
  for _ in 0..<rounds {
    let t0 = nowNanoseconds()
    let a = try cpu.mmap(0, regionBytes, prot: Prot.read | Prot.write, flags: flags)
    let t1 = nowNanoseconds()
    var va = a
    let end = a + regionBytes
    while va < end {
      try cpu.storeByte(va, 0)
      va += Page.size
    }
    let t2 = nowNanoseconds()
    try cpu.munmap(a, regionBytes)
    let t3 = nowNanoseconds()
    result.pages += Int(regionBytes / Page.size)
    result.touchNanoseconds += t2 - t1
    result.totalNanoseconds += t3 - t0
  }
  return result
}

/// The zeroing canary: `memset` of `pages` free frames of the arena, taken from the allocator
/// as a fault loop would take them, so cache behaviour matches. Returns ns per 4 KiB frame.
public func zeroCanary(memory: PhysicalMemory, pages: Int, rounds: Int) -> Double {
  var frames: [PFN] = []
  frames.reserveCapacity(pages)
  while frames.count < pages, let f = memory.allocate() { frames.append(f) }
  // Freed in reverse so that the free stack keeps its order for whatever runs next.
  defer { for f in frames.reversed() { memory.put(f) } }
  guard !frames.isEmpty else { return .nan }
  var value: UInt8 = 1
  let t0 = nowNanoseconds()
  for _ in 0..<rounds {
    for f in frames {
      memory.address(of: f).initializeMemory(as: UInt8.self, repeating: value, count: Page.byteCount)
    }
    value &+= 1
  }
  let t1 = nowNanoseconds()
  blackHole(memory.address(of: frames[0]).load(as: UInt8.self))
  return Double(t1 - t0) / Double(frames.count * rounds)
}

/// The zeroing canary with `threads` threads at once, each zeroing its own `pages` frames:
/// ns per 4 KiB frame per thread. Against the 1-thread figure it says how far the machine
/// scales at all, whatever the fault path does.
public func zeroCanary(memory: PhysicalMemory, pages: Int, rounds: Int, threads: Int) -> Double {
  if threads <= 1 { return zeroCanary(memory: memory, pages: pages, rounds: rounds) }
  final class Sum: @unchecked Sendable {
    let lock = PThreadMutex()
    var total = 0.0
    var count = 0
  }
  let sum = Sum()
  runOnThreads(threads) { _ in
    let ns = zeroCanary(memory: memory, pages: pages, rounds: rounds)
    if !ns.isNaN { sum.lock.withLock { sum.total += ns; sum.count += 1 } }
  }
  return sum.count > 0 ? sum.total / Double(sum.count) : .nan
}
