import Faultline

/// What one operation did, on either side, and how two results are compared.

/// The signal a load or store ended with.
public enum AccessSignal: Equatable, Hashable, Sendable, CustomStringConvertible {
  /// `SIGSEGV` with `si_code` `SEGV_MAPERR` (1), `SEGV_ACCERR` (2) or another code.
  case sigsegv(code: Int32)
  /// `SIGBUS` with its `si_code`.
  case sigbus(code: Int32)

  public static let mapErr: Int32 = 1
  public static let accErr: Int32 = 2
  public static let pkuErr: Int32 = 4

  public var name: String {
    switch self {
    case .sigsegv: "SIGSEGV"
    case .sigbus: "SIGBUS"
    }
  }

  public var codeName: String {
    switch self {
    case .sigsegv(1): "SEGV_MAPERR"
    case .sigsegv(2): "SEGV_ACCERR"
    case .sigsegv(4): "SEGV_PKUERR"
    case .sigsegv(let c), .sigbus(let c): c == 0x80 ? "SI_KERNEL" : String(c)
    }
  }

  public var description: String { "\(name) (\(codeName))" }
}

/// The result of one operation.
public enum ConformResult: Equatable, Hashable, Sendable {
  /// The call returned this value (an address for mmap/mremap, 0 otherwise).
  case returned(UInt64)
  /// The call failed with this errno.
  case failed(Int32)
  /// A load or store: the signal it ended with (`nil`: it completed), the faulting address, and
  /// for loads the bytes read before it stopped.
  case access(signal: AccessSignal?, faultAddress: UInt64, bytes: [UInt8])
  /// `mincore`'s vector (the call returned 0).
  case vector([UInt8])
  /// Maps lines overlapping the window, exactly as printed.
  case maps([String])
}

/// Compares a sequence's results, side by side, with the few allowances the host's behaviour
/// needs (see `ConformComparator.compare`).
public struct ConformComparator {
  public let window: ConformWindow
  /// Pages (by page number) where the host may still hold data the engine has already dropped:
  /// `MADV_FREE` frees lazily on Linux (without memory pressure the old bytes stay readable until
  /// reclaim), and at once in Faultline. A load from such a page agrees when the engine reads 0
  /// where the host reads old data.
  private var lazyFreed = Set<UInt64>()
  /// Inode numbers in order of first appearance, per side: the engine's shmem inodes are not
  /// the kernel's.
  private var hostInodes: [String: Int] = [:]
  private var engineInodes: [String: Int] = [:]

  public init(window: ConformWindow) { self.window = window }

  /// Whether `engine` agrees with `host` for `op`; `nil` when it does, else why not. Call it for
  /// every op of a sequence, in order (it tracks `MADV_FREE` and inode numbers).
  public mutating func compare(_ op: ConformOp, host: ConformResult, engine: ConformResult) -> String? {
    defer { track(op, host) }
    switch (op, host, engine) {
    case (_, .returned(let h), .returned(let e)) where op.placementFree:
      if h == e { return nil }
      let len = op.resultLength
      if !window.contains(h, len) && !window.contains(e, len) { return nil }
      return "returned 0x\(hex(e)), the host 0x\(hex(h))"
    case (.store, .access(let hs, let ha, _), .access(let es, let ea, _)):
      if hs != es { return "ended with \(describe(es, ea)), the host with \(describe(hs, ha))" }
      if hs != nil && ha != ea { return "faulted at 0x\(hex(ea)), the host at 0x\(hex(ha))" }
      return nil
    case (.load(let addr, _), .access(let hs, let ha, let hb), .access(let es, let ea, let eb)):
      if hs != es { return "ended with \(describe(es, ea)), the host with \(describe(hs, ha))" }
      if hs != nil && ha != ea { return "faulted at 0x\(hex(ea)), the host at 0x\(hex(ha))" }
      if hb.count != eb.count { return "read \(eb.count) bytes, the host \(hb.count)" }
      for i in 0..<hb.count where hb[i] != eb[i] {
        let page = (addr &+ UInt64(i)) >> Page.shift
        if eb[i] == 0 && lazyFreed.contains(page) { continue }
        return "read \(bytesText(eb)), the host \(bytesText(hb)) (first difference at byte \(i))"
      }
      return nil
    case (.maps, .maps(let h), .maps(let e)):
      let hn = h.map { normalize($0, &hostInodes) }
      let en = e.map { normalize($0, &engineInodes) }
      if hn == en { return nil }
      return "maps differ"
    case (.mincore(let addr, _), .vector(let h), .vector(let e)):
      if h.count != e.count { return "vector of \(e.count) pages, the host \(h.count)" }
      for i in 0..<h.count where h[i] != e[i] {
        if e[i] == 0 && lazyFreed.contains((addr >> Page.shift) + UInt64(i)) { continue }
        return "vector \(e), the host \(h)"
      }
      return nil
    default:
      if host == engine { return nil }
      return "\(op.resultText(engine)), the host \(op.resultText(host))"
    }
  }

  /// Keeps the `MADV_FREE` page set up to date after `op` ran on the host with `result`.
  private mutating func track(_ op: ConformOp, _ result: ConformResult) {
    func pages(_ addr: UInt64, _ length: UInt64) -> [UInt64] {
      let first = addr >> Page.shift
      let count = min(Page.covering(length), window.reserveLength >> Page.shift)
      return (0..<count).map { first &+ $0 }
    }
    // Advice reaches the VMAs before a hole (ENOMEM) or before a VMA that refuses it (EINVAL,
    // e.g. MADV_FREE on shared memory), so any result but an argument error counts.
    func applied(_ r: ConformResult, _ addr: UInt64, _ length: UInt64) -> Bool {
      if case .failed(22) = r { return Page.isAligned(addr) && length != 0 && addr &+ Page.roundUp(length) > addr }
      return true
    }
    switch op {
    case .madvise(let addr, let length, let advice) where applied(result, addr, length):
      if advice == 8 {  // MADV_FREE
        lazyFreed.formUnion(pages(addr, length))
      } else if advice == 4 || advice == 9 || advice == 24 {  // DONTNEED, REMOVE, DONTNEED_LOCKED
        lazyFreed.subtract(pages(addr, length))
      }
    case .mmap(let addr, let length, _, _):
      if case .returned(let a) = result, a == addr { lazyFreed.subtract(pages(addr, length)) }
    case .munmap(let addr, let length):
      if case .returned = result { lazyFreed.subtract(pages(addr, length)) }
    case .mremap(let old, let oldSize, let newSize, _, let newAddress):
      // Data moves with the pages: forget both ranges (a moved lazily freed page is rare).
      if case .returned(let a) = result {
        lazyFreed.subtract(pages(old, max(oldSize, newSize)))
        lazyFreed.subtract(pages(a, newSize))
        lazyFreed.subtract(pages(newAddress, newSize))
      }
    default:
      break
    }
  }

  /// A maps line with its inode number replaced by its order of first appearance in the sequence.
  private func normalize(_ line: String, _ table: inout [String: Int]) -> String {
    var fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true).map(String.init)
    guard fields.count >= 5 else { return line }
    let inode = fields[4]
    // Anonymous memory shows 00:00 and inode 0; shmem shows 00:01 and any inode (a System V
    // segment's is its id, and the engine's first id is 0).
    if inode != "0" || fields[3] != "00:00" {
      let key = fields[3] + " " + inode
      if table[key] == nil { table[key] = table.count + 1 }
      fields[4] = "#\(table[key]!)"
    }
    if fields.count == 6 {
      fields[5] = fields[5].trimmingLeadingSpaces()
      // A System V key: the host child's are its own (`FL_PROBE_SHMGET`), so keys are numbered
      // by first appearance too; IPC_PRIVATE's /SYSV00000000 stays as it is.
      if fields[5].hasPrefix("/SYSV") && !fields[5].hasPrefix("/SYSV00000000") {
        let key = "key " + fields[5].prefix(13)
        if table[key] == nil { table[key] = table.count + 1 }
        fields[5] = "/SYSV#\(table[key]!)" + fields[5].dropFirst(13)
      }
    }
    return fields.joined(separator: " ")
  }

  private func describe(_ s: AccessSignal?, _ addr: UInt64) -> String {
    guard let s else { return "ok" }
    return "\(s) at 0x\(hex(addr))"
  }
}

func bytesText(_ b: [UInt8]) -> String {
  if b.count > 16 { return "[" + b.prefix(16).map { String($0) }.joined(separator: ", ") + ", …]" }
  return "[" + b.map { String($0) }.joined(separator: ", ") + "]"
}

func hex(_ v: UInt64) -> String { String(v, radix: 16) }

extension String {
  func trimmingLeadingSpaces() -> String { String(drop { $0 == " " }) }
}
