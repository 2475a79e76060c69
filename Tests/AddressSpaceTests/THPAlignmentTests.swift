import Faultline
import FaultlineTestSupport
import Testing

/// Hint-less private anonymous mappings whose length is a multiple of 2 MiB land on a 2 MiB
/// boundary (Linux 6.7+ `thp_get_unmapped_area`), any prot; other lengths and hinted mappings
/// are placed as before. (Shared anonymous memory takes `shmem_get_unmapped_area`:
/// `LinuxRulesTests`.) Checked on the host with the same sequence (each mapping
/// after a 4 KiB one that leaves the next free address unaligned).
@Suite struct THPAlignmentTests {
  let mib: UInt64 = 1 << 20

  @Test func pmdMultipleAnonymousMappingsAreAligned() throws {
    try withRig(memoryBytes: 64 << 20) { r in
      func next(_ length: UInt64, prot: Prot = rw, flags: MapFlags = anonPrivate, hint: UInt64 = 0) throws -> UInt64 {
        _ = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
        // Gaps left above by earlier alignment are smaller than any length here, so the mapping
        // goes below the lowest one: right below it, or at the highest aligned place below it.
        let lowest = UInt64(r.mm.mapsLines()[0].split(separator: "-")[0], radix: 16)!
        let a = try r.cpu.mmap(hint, length, prot: prot, flags: flags)
        let expected = length % (2 * mib) == 0 && hint == 0 ? (lowest - length) & ~(2 * mib - 1) : lowest - length
        #expect(a == (hint != 0 ? hint : expected), "length \(length)")
        return a
      }
      #expect(try next(2 * mib) % (2 * mib) == 0)
      #expect(try next(2 * mib, flags: anonPrivate | MapFlags.stack) % (2 * mib) == 0)
      #expect(try next(2 * mib, prot: Prot.none) % (2 * mib) == 0)
      #expect(try next(4 * mib) % (2 * mib) == 0)
      #expect(try next(3 * mib) % (2 * mib) != 0)
      #expect(try next(2 * mib + page) % (2 * mib) != 0)
      _ = try next(2 * mib, hint: 0x2_0000_1000)
    }
  }
}
