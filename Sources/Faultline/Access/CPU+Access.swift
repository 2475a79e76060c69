import Glibc
import Synchronization

/// Loads and stores at virtual addresses, page by page, through the page tables: the MMU.
///
/// The walk and the byte copy run inside an RCU read section, which stands in for the TLB entry:
/// an unmap or a permission change waits for a grace period before it frees the page or returns
/// (`MMUGather`). A missing or too-weak entry raises a fault through the address space's fault
/// design, then the access is retried; a fault that cannot be fixed ends the access with the
/// signal Linux would deliver, and the bytes of earlier pages stay copied.
extension CPU {
  /// The host address for `va` if the current PTE allows the access. Sets the accessed bit (and
  /// the dirty bit for writes) the way the hardware does, only on a present entry.
  /// Call inside an RCU read section.
  @inline(__always)
  func translate(_ va: UInt64, write: Bool) -> UnsafeMutableRawPointer? {
    if va >= Page.userAddressLimit { return nil }  // non-canonical: no walk
    guard let slot = walker.lookupPTE(va) else { return translateHuge(va, write: write) }
    guard let e = useLeaf(slot, write: write, required: PTE.present | PTE.user) else { return nil }
    return arenaBase + Int(truncatingIfNeeded: (e & PTE.addressMask) | Page.offset(va))
  }

  /// What the hardware does with the leaf entry in `slot` (a PTE, or a huge PMD): the entry
  /// must have every bit of `required`, PKRU must allow the access to its key, a store needs
  /// write; then the accessed bit (and dirty for a store) is set. Returns the entry, or `nil`
  /// when the access faults.
  @inline(__always)
  func useLeaf(_ slot: UnsafeMutablePointer<Atomic<UInt64>>, write: Bool, required: UInt64) -> UInt64? {
    var e = slot.pointee.load(ordering: .acquiring)
    while true {
      if e & required != required { return nil }
      // Protection keys check every user data access: AD (bit 2k of PKRU) denies it, WD
      // (bit 2k+1) denies a write. Bits 58-62 shifted down are twice the key.
      if (pkruValue >> (UInt32(truncatingIfNeeded: e >> 58) & 0x1E)) & (write ? 3 : 1) != 0 { return nil }
      let want: UInt64
      if write {
        if e & PTE.write == 0 { return nil }
        want = PTE.accessed | PTE.dirty
      } else {
        want = PTE.accessed
      }
      if e & want == want { return e }
      let (ok, current) = slot.pointee.compareExchange(expected: e, desired: e | want, ordering: .relaxed)
      if ok { return e }
      e = current
    }
  }

  /// `translate` through a huge PMD, the leaf of a 2 MiB page, with the same checks and bits.
  /// `nil` when the PMD is not a huge leaf (a level is missing) or the access faults. Out of
  /// line: the 4 KiB walk reaches it only when it found no PTE table.
  @inline(never)
  func translateHuge(_ va: UInt64, write: Bool) -> UnsafeMutableRawPointer? {
    guard let slot = walker.lookupPMD(va),
      let e = useLeaf(slot, write: write, required: PTE.present | PTE.user | PTE.huge)
    else { return nil }
    return arenaBase + Int(truncatingIfNeeded: (e & PTE.addressMask & TransparentHugePage.mask) | (va & ~TransparentHugePage.mask))
  }

  /// Copies `buffer.count` bytes from `addr`.
  public func load(_ addr: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(Signal) {
    try access(addr, buffer.count, write: false) { host, offset, n in
      buffer.baseAddress!.advanced(by: offset).copyMemory(from: host, byteCount: n)
    }
  }

  /// Copies `bytes` to `addr`.
  public func store(_ addr: UInt64, from bytes: UnsafeRawBufferPointer) throws(Signal) {
    try access(addr, bytes.count, write: true) { host, offset, n in
      host.copyMemory(from: bytes.baseAddress!.advanced(by: offset), byteCount: n)
    }
  }

  /// Sets `count` bytes at `addr` to `value` (`memset` through the MMU).
  public func fill(_ addr: UInt64, value: UInt8, count: Int) throws(Signal) {
    try access(addr, count, write: true) { host, _, n in
      host.initializeMemory(as: UInt8.self, repeating: value, count: n)
    }
  }

  /// Writes one byte: the touch of page_fault1 and ebizzy.
  @inline(__always)
  public func storeByte(_ addr: UInt64, _ value: UInt8) throws(Signal) {
    while true {
      rcuSide.lock()
      if let host = translate(addr, write: true) {
        host.storeBytes(of: value, as: UInt8.self)
        rcuSide.unlock()
        return
      }
      rcuSide.unlock()
      if case .signal(let s) = faultIn(addr, write: true) { throw s }
    }
  }

  /// Reads one byte.
  @inline(__always)
  public func loadByte(_ addr: UInt64) throws(Signal) -> UInt8 {
    while true {
      rcuSide.lock()
      if let host = translate(addr, write: false) {
        let v = host.load(as: UInt8.self)
        rcuSide.unlock()
        return v
      }
      rcuSide.unlock()
      if case .signal(let s) = faultIn(addr, write: false) { throw s }
    }
  }

  /// Reads `count` bytes into an array.
  public func loadBytes(_ addr: UInt64, count: Int) throws(Signal) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    var failure: Signal?
    out.withUnsafeMutableBytes { b in
      do throws(Signal) { try load(addr, into: b) } catch { failure = error }
    }
    if let failure { throw failure }
    return out
  }

  /// Writes `bytes` at `addr`.
  public func storeBytes(_ addr: UInt64, _ bytes: [UInt8]) throws(Signal) {
    var failure: Signal?
    bytes.withUnsafeBytes { b in
      do throws(Signal) { try store(addr, from: b) } catch { failure = error }
    }
    if let failure { throw failure }
  }

  /// Walks `[addr, addr+count)` page by page, faulting as needed; `body(host, offset, n)` copies
  /// `n` bytes at buffer offset `offset`.
  @inline(__always)
  func access(
    _ addr: UInt64, _ count: Int, write: Bool,
    _ body: (UnsafeMutableRawPointer, Int, Int) -> Void
  ) throws(Signal) {
    var done = 0
    var va = addr
    while done < count {
      let n = min(count - done, Page.byteCount - Int(Page.offset(va)))
      while true {
        rcuSide.lock()
        if let host = translate(va, write: write) {
          body(host, done, n)
          rcuSide.unlock()
          break
        }
        rcuSide.unlock()
        if case .signal(let s) = faultIn(va, write: write) { throw s }
      }
      done += n
      va &+= UInt64(n)
    }
  }
}
