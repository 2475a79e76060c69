import Faultline

/// The result of an `ebizzy -mT` run.
public struct EbizzyResult: Sendable {
  public var records: Int
  public var seconds: Double
  /// Records per second summed over threads, as ebizzy reports.
  public var recordsPerSecond: Double { Double(records) / seconds }
}

/// `ebizzy -mTt N` on one address space: every thread loops on `mmap` of `chunkBytes` (512 KiB)
/// private anonymous memory, one store per page ("just touch"), `munmap`, for `seconds`. All
/// threads share the address space, so faults (readers) race mmap and munmap (writers), unless
/// `isolated` gives thread `i` its own (`isolated[i]`), as will-it-scale's `_processes` runs.
public func ebizzy(
  mm: AddressSpace, threads: Int, seconds: Double, chunkBytes: UInt64 = 512 << 10, isolated: [AddressSpace]? = nil
) throws -> EbizzyResult {
  let flags = MapFlags.private | MapFlags.anonymous
  let records = try timedRun(threads: threads, seconds: seconds) { t, stop in
    let cpu = try CPU(mm: isolated?[t] ?? mm)
    var n = 0
    while !stop() {
      let a = try cpu.mmap(0, chunkBytes, prot: Prot.read | Prot.write, flags: flags)
      var va = a
      while va < a + chunkBytes {
        try cpu.storeByte(va, 1)
        va += Page.size
      }
      try cpu.munmap(a, chunkBytes)
      n += 1
    }
    return n
  }
  return EbizzyResult(records: records.ops, seconds: records.seconds)
}
