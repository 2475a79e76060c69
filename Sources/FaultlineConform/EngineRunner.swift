import CFaultlineProbe
import Faultline
import Glibc

/// Runs op sequences on the engine: a fresh `Machine` and `AddressSpace` (the profile's
/// `AddressSpaceConfig`, with the chosen fault design) and one `CPU` per sequence.
///
/// Every op that a thread makes goes through that one `CPU`, mmap and mprotect included: the
/// execute-only key and `pkey_alloc` set its PKRU, and its loads and stores are checked
/// against it, as one thread of the host child.
///
/// Two things stand for what the host child has besides the window: `RLIMIT_MEMLOCK` is the
/// child's (`FL_PROBE_MEMLOCK_LIMIT`), and a `PROT_NONE` mapping of `restOfProcess` bytes,
/// placed top-down before the first op, stands for the child's own mappings (its parent's
/// libraries, heap, stacks): it counts in `total_vm`, so that `mlockall(MCL_CURRENT)` is `ENOMEM`
/// on both sides (a process larger than the limit), and it lies above the heap, so that a
/// `brk` towards `TASK_SIZE` meets a mapping on both sides.
public struct EngineRunner: Sendable {
  public let window: ConformWindow
  public let design: FaultDesign
  /// The frame arena of each sequence's machine (the window needs a few hundred KiB).
  public let memoryBytes: Int
  /// The machine each sequence runs on. `faultline conform` keeps `.host`: the other side of the
  /// comparison is this machine's kernel.
  public let profile: MachineProfile

  /// The size of the stand-in for the host child's own mappings.
  public static let restOfProcess: UInt64 = 256 << 20

  public init(
    window: ConformWindow = ConformWindow(), design: FaultDesign = .mmapLock, memoryBytes: Int = 32 << 20,
    profile: MachineProfile = .host
  ) {
    self.window = window
    self.design = design
    self.memoryBytes = memoryBytes
    self.profile = profile
  }

  /// Runs `ops` on a fresh address space and returns one result per op.
  public func run(_ ops: [ConformOp]) throws(Errno) -> [ConformResult] {
    let machine = try Machine(memoryBytes: memoryBytes, profile: profile)
    var config = AddressSpaceConfig(profile: profile)
    config.design = design
    config.rlimitMemlock = UInt64(FL_PROBE_MEMLOCK_LIMIT)
    let mm = try AddressSpace(machine: machine, config: config)
    var results: [ConformResult] = []
    results.reserveCapacity(ops.count)
    do {
      let cpu = try CPU(mm: mm)
      _ = try cpu.mmap(0, Self.restOfProcess, prot: .none, flags: [.private, .anonymous, .noReserve])
      let heapBase = Page.roundUp(mm.currentBrk)
      var shmSlots = [Int32](repeating: -1, count: Self.shmSlots)
      for op in ops {
        // An engine trap cannot be caught: FAULTLINE_CONFORM_TRACE=1 names the op it died in.
        if Self.trace {
          let line = "engine: \(op.callText)\n"
          _ = line.withCString { write(2, $0, strlen($0)) }
        }
        results.append(Self.step(op, cpu: cpu, window: window, heapBase: heapBase, shmSlots: &shmSlots))
      }
    }
    mm.destroy()
    machine.drainDeferredFrees()
    return results
  }

  static let trace = getenv("FAULTLINE_CONFORM_TRACE").map { String(cString: $0) == "1" } ?? false

  /// `FL_PROBE_SHM_SLOTS`: the segments a sequence names by slot.
  static let shmSlots = 4

  /// Runs `op`; `heapBase` is the initial break, which `.brk` and `.heapMunmap` are relative to.
  static func step(_ op: ConformOp, cpu: CPU, window: ConformWindow, heapBase: UInt64, shmSlots: inout [Int32])
    -> ConformResult
  {
    let mm = cpu.mm
    func call(_ body: () throws(Errno) -> Void) -> ConformResult {
      do throws(Errno) {
        try body()
        return .returned(0)
      } catch {
        return .failed(error.rawValue)
      }
    }
    // A call that returns an address; a placement-free one that landed outside the window is
    // unmapped again, as the host side does.
    func placing(_ length: UInt64, _ body: () throws(Errno) -> UInt64) -> ConformResult {
      do throws(Errno) {
        let a = try body()
        if op.placementFree && !window.contains(a, length) { try? cpu.munmap(a, length) }
        return .returned(a)
      } catch {
        return .failed(error.rawValue)
      }
    }
    switch op {
    case .mmap(let addr, let length, let prot, let flags):
      return placing(length) { () throws(Errno) in try cpu.mmap(addr, length, prot: Prot(rawValue: prot), flags: MapFlags(rawValue: flags)) }
    case .munmap(let addr, let length):
      return call { () throws(Errno) in try cpu.munmap(addr, length) }
    case .mprotect(let addr, let length, let prot):
      return call { () throws(Errno) in try cpu.mprotect(addr, length, prot: Prot(rawValue: prot)) }
    case .madvise(let addr, let length, let advice):
      return call { () throws(Errno) in try cpu.madvise(addr, length, advice: Advice(rawValue: advice)) }
    case .mremap(let old, let oldSize, let newSize, let flags, let newAddress):
      return placing(newSize) { () throws(Errno) in
        try cpu.mremap(old, oldSize, newSize, flags: MremapFlags(rawValue: flags), newAddress: newAddress)
      }
    case .mlock(let addr, let length):
      return call { () throws(Errno) in try cpu.mlock(addr, length) }
    case .mlock2(let addr, let length, let flags):
      return call { () throws(Errno) in try cpu.mlock(addr, length, flags: MlockFlags(rawValue: flags)) }
    case .munlock(let addr, let length):
      return call { () throws(Errno) in try cpu.munlock(addr, length) }
    case .mincore(let addr, let length):
      do throws(Errno) {
        return .vector(try cpu.mincore(addr, length))
      } catch {
        return .failed(error.rawValue)
      }
    case .load(let addr, let length):
      var buffer = [UInt8](repeating: 0, count: Int(length))
      var signal: Signal?
      buffer.withUnsafeMutableBytes { b in
        do throws(Signal) { try cpu.load(addr, into: b) } catch { signal = error }
      }
      return accessResult(addr, signal, buffer)
    case .store(let addr, let length, let pattern):
      let bytes = (0..<length).map { UInt8(truncatingIfNeeded: UInt64(pattern) &+ $0) }
      var signal: Signal?
      bytes.withUnsafeBytes { b in
        do throws(Signal) { try cpu.store(addr, from: b) } catch { signal = error }
      }
      return accessResult(addr, signal, nil)
    case .maps:
      let lines = mm.mapsLines().filter { line in
        guard let (s, e) = mapsRange(line) else { return false }
        return s < window.end && e > window.start
      }
      return .maps(lines)
    case .pkeyAlloc(let flags, let rights):
      do throws(Errno) {
        return .returned(UInt64(try cpu.pkeyAlloc(flags: flags, accessRights: PkeyAccessRights(rawValue: rights))))
      } catch {
        return .failed(error.rawValue)
      }
    case .pkeyFree(let key):
      return call { () throws(Errno) in try cpu.pkeyFree(Int(key)) }
    case .pkeyMprotect(let addr, let length, let prot, let key):
      return call { () throws(Errno) in try cpu.pkeyMprotect(addr, length, prot: Prot(rawValue: prot), pkey: Int(key)) }
    case .wrpkru(let value):
      return call { () throws(Errno) in try cpu.wrpkru(value) }
    case .shmget(let key, let size, let flags, let slot):
      do throws(Errno) {
        let id = try cpu.shmget(key, size, flags: ShmFlags(rawValue: flags))
        if shmSlots.indices.contains(slot) { shmSlots[slot] = id }
        return .returned(UInt64(slot))
      } catch {
        return .failed(error.rawValue)
      }
    case .shmat(let slot, let addr, let flags):
      let id = shmSlots.indices.contains(slot) ? shmSlots[slot] : -1
      do throws(Errno) {
        return .returned(try cpu.shmat(id, addr, flags: ShmatFlags(rawValue: flags)))
      } catch {
        return .failed(error.rawValue)
      }
    case .shmdt(let addr):
      return call { () throws(Errno) in try cpu.shmdt(addr) }
    case .shmctl(let slot, let cmd):
      let id = shmSlots.indices.contains(slot) ? shmSlots[slot] : -1
      do throws(Errno) {
        if ShmctlCommand(rawValue: cmd) == .stat { return .returned(UInt64(try cpu.shmStat(id).attachments)) }
        return .returned(UInt64(UInt32(bitPattern: try cpu.shmctl(id, ShmctlCommand(rawValue: cmd)))))
      } catch {
        return .failed(error.rawValue)
      }
    case .brk(let addr, let relative):
      return .returned(cpu.brk(relative ? heapBase &+ addr : addr) &- heapBase)
    case .heapMunmap(let offset, let length):
      return call { () throws(Errno) in try cpu.munmap(heapBase &+ offset, length) }
    case .mseal(let addr, let length, let flags):
      return call { () throws(Errno) in try cpu.mseal(addr, length, flags: flags) }
    case .mlockall(let flags):
      return call { () throws(Errno) in try cpu.mlockall(MlockallFlags(rawValue: flags)) }
    case .munlockall:
      cpu.munlockall()
      return .returned(0)
    }
  }

  /// The result of an access that stopped with `signal` (`nil`: completed); a load's bytes are
  /// those copied before the fault.
  static func accessResult(_ addr: UInt64, _ signal: Signal?, _ buffer: [UInt8]?) -> ConformResult {
    let s: AccessSignal?
    let at: UInt64
    switch signal {
    case nil: (s, at) = (nil, 0)
    case .sigsegv(.mapErr, let a)?: (s, at) = (.sigsegv(code: AccessSignal.mapErr), a)
    case .sigsegv(.accErr, let a)?: (s, at) = (.sigsegv(code: AccessSignal.accErr), a)
    case .sigsegv(.pkuErr, let a)?: (s, at) = (.sigsegv(code: AccessSignal.pkuErr), a)
    case .sigbus(let a)?: (s, at) = (.sigbus(code: 2), a)  // BUS_ADRERR
    case .outOfMemory(let a)?: (s, at) = (.sigbus(code: -1), a)  // no Linux counterpart
    }
    var bytes: [UInt8] = []
    if let buffer { bytes = s == nil ? buffer : Array(buffer.prefix(Int(at &- addr))) }
    return .access(signal: s, faultAddress: at, bytes: bytes)
  }
}

/// The start and end of a maps line.
func mapsRange(_ line: String) -> (UInt64, UInt64)? {
  guard let dash = line.firstIndex(of: "-"), let space = line.firstIndex(of: " ") else { return nil }
  guard let s = UInt64(line[..<dash], radix: 16),
    let e = UInt64(line[line.index(after: dash)..<space], radix: 16)
  else { return nil }
  return (s, e)
}
