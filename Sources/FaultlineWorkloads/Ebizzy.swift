import Faultline
import Synchronization

/// The result of an `ebizzy -mT` run.
public struct EbizzyResult: Sendable {
  public var records: Int
  public var seconds: Double
  /// Records per second summed over threads, as ebizzy reports.
  public var recordsPerSecond: Double { Double(records) / seconds }
}

/// `ebizzy -mTt N` on one address space: every thread loops on `mmap` of `chunkBytes` (512 KiB)
/// private anonymous memory, one store per page ("just touch"), `munmap`, for `seconds`. All
/// threads share the address space, so faults (readers) race mmap and munmap (writers).
public func ebizzy(mm: AddressSpace, threads: Int, seconds: Double, chunkBytes: UInt64 = 512 << 10) throws -> EbizzyResult {
  final class Shared: @unchecked Sendable {
    let go = Atomic<Bool>(false)
    let stop = Atomic<Bool>(false)
    let records = Atomic<Int>(0)
    let failures = Atomic<Int>(0)
  }
  let s = Shared()
  let flags = MapFlags.private | MapFlags.anonymous
  var elapsed = 0.0
  runOnThreads(threads + 1) { t in
    if t == threads {
      s.go.store(true, ordering: .releasing)
      let t0 = nowNanoseconds()
      while Double(nowNanoseconds() - t0) < seconds * 1e9 { usleep(2000) }
      s.stop.store(true, ordering: .releasing)
      return
    }
    guard let cpu = try? CPU(mm: mm) else {
      s.failures.wrappingAdd(1, ordering: .relaxed)
      return
    }
    while !s.go.load(ordering: .acquiring) {}
    var n = 0
    do {
      while !s.stop.load(ordering: .relaxed) {
        let a = try cpu.mmap(0, chunkBytes, prot: Prot.read | Prot.write, flags: flags)
        var va = a
        while va < a + chunkBytes {
          try cpu.storeByte(va, 1)
          va += 4096
        }
        try cpu.munmap(a, chunkBytes)
        n += 1
      }
    } catch {
      s.failures.wrappingAdd(1, ordering: .relaxed)
    }
    s.records.wrappingAdd(n, ordering: .relaxed)
  }
  elapsed = seconds
  if s.failures.load(ordering: .relaxed) > 0 { throw EbizzyError.threadFailed }
  return EbizzyResult(records: s.records.load(ordering: .relaxed), seconds: elapsed)
}

public enum EbizzyError: Error { case threadFailed }

import Glibc
