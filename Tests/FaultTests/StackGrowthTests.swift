import Faultline
import FaultlineTestSupport
import Testing

/// Stack growth (`expand_stack`): a fault below a `MAP_GROWSDOWN` VMA grows it, within
/// `stack_guard_gap` (256 pages) of an accessible VMA below and `RLIMIT_STACK` (8 MiB). Each
/// expectation was first produced by the same accesses on the host kernel (6.18).
@Suite struct StackGrowthTests {
  static let w: UInt64 = 0x1_0000_0000

  func window(_ mm: AddressSpace) -> [String] {
    mm.mapsLines().compactMap { line in
      let f = line.split(separator: " ")
      guard let s = UInt64(f[0].split(separator: "-")[0], radix: 16), s >= Self.w, s < Self.w + 0x1000_0000 else {
        return nil
      }
      return "\(f[0]) \(f[1])"
    }
  }

  @Test(arguments: FaultDesign.allCases)
  func faultsBelowAStackGrowItUntilTheGapOrTheLimit(design: FaultDesign) throws {
    try withRig(design: design) { r in
      let w = Self.w
      let top = w + 0x100_0000
      _ = try r.cpu.mmap(top, 4 * page, prot: rw, flags: anonPrivate | MapFlags.fixed | MapFlags.growsDown)
      try r.cpu.storeByte(top - page + 5, 1)
      #expect(window(r.mm) == ["100fff000-101004000 rw-p"])
      try r.cpu.storeByte(top - 100 * page, 1)
      #expect(window(r.mm) == ["100f9c000-101004000 rw-p"])
      #expect(try r.cpu.loadByte(top - page + 5) == 1)
      _ = try r.cpu.mmap(w, page, prot: Prot.read, flags: anonPrivate | MapFlags.fixed)
      // Past RLIMIT_STACK (the stack would span more than 8 MiB).
      #expect(throws: Signal.sigsegv(.mapErr, address: w + 256 * page)) { try r.cpu.storeByte(w + 256 * page, 1) }
      #expect(throws: Signal.sigsegv(.mapErr, address: top + 4 * page - (9 << 20))) {
        try r.cpu.storeByte(top + 4 * page - (9 << 20), 1)
      }
      // The guard gap: 255 pages above an accessible VMA is too close, 256 is not.
      let t = w + 0x200_0000
      _ = try r.cpu.mmap(t, 4 * page, prot: rw, flags: anonPrivate | MapFlags.fixed | MapFlags.growsDown)
      _ = try r.cpu.mmap(t - 300 * page, page, prot: Prot.read, flags: anonPrivate | MapFlags.fixed)
      #expect(throws: Signal.sigsegv(.mapErr, address: t - 44 * page)) { try r.cpu.storeByte(t - 44 * page, 1) }
      try r.cpu.storeByte(t - 43 * page, 1)
      #expect(window(r.mm) == ["100000000-100001000 r--p", "100f9c000-101004000 rw-p", "101ed4000-101ed5000 r--p", "101fd5000-102004000 rw-p"])
      // Below a PROT_NONE VMA the gap does not apply.
      let u = w + 0x400_0000
      _ = try r.cpu.mmap(u, 4 * page, prot: rw, flags: anonPrivate | MapFlags.fixed | MapFlags.growsDown)
      _ = try r.cpu.mmap(u - 300 * page, page, prot: Prot.none, flags: anonPrivate | MapFlags.fixed)
      try r.cpu.storeByte(u - 290 * page, 1)
      #expect(r.mm.mapsLines().contains { $0.hasPrefix("\(String(u - 290 * page, radix: 16))-\(String(u + 4 * page, radix: 16)) rw-p") })
      // A VMA that does not grow down gives SEGV_MAPERR below it.
      _ = try r.cpu.mmap(w + 0x300_0000, page, prot: rw, flags: anonPrivate | MapFlags.fixed)
      #expect(throws: Signal.sigsegv(.mapErr, address: w + 0x300_0000 - page)) { try r.cpu.loadByte(w + 0x300_0000 - page) }
    }
  }
}
