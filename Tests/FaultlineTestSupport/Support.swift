import Faultline
import FaultlineWorkloads
import Synchronization
import Testing

/// A machine, an address space and one thread on it, for one test.
public final class Rig {
  public let machine: Machine
  public var mm: AddressSpace!
  public var cpu: CPU!

  /// `profile` is the machine modelled: `.reference` unless a test pins another, so that a test
  /// of a semantic answers the same on every host. `config` defaults to the profile's settings.
  public init(
    memoryBytes: Int = 16 << 20, config: AddressSpaceConfig? = nil, design: FaultDesign? = nil,
    profile: MachineProfile = .reference
  ) throws {
    var config = config ?? AddressSpaceConfig(profile: profile)
    config.design = design ?? environmentDesign ?? config.design
    machine = try Machine(memoryBytes: memoryBytes, profile: profile)
    mm = try AddressSpace(machine: machine, config: config)
    cpu = try CPU(mm: mm)
  }

  /// Frames still in use after the address space is torn down and deferred frees have run.
  public func teardown() -> Int {
    cpu = nil
    mm.destroy()
    mm = nil
    machine.drainDeferredFrees()
    return machine.memory.framesInUse
  }
}

/// Runs `body` with a fresh rig and checks, whatever the body did, that every frame is free
/// after teardown.
public func withRig(
  memoryBytes: Int = 16 << 20, config: AddressSpaceConfig? = nil, design: FaultDesign? = nil,
  profile: MachineProfile = .reference, sourceLocation: SourceLocation = #_sourceLocation,
  _ body: (Rig) throws -> Void
) throws {
  let rig = try Rig(memoryBytes: memoryBytes, config: config, design: design, profile: profile)
  defer {
    let leaked = rig.teardown()
    #expect(leaked == 0, "frames leaked after teardown", sourceLocation: sourceLocation)
  }
  try body(rig)
}

/// The design named by `FAULTLINE_DESIGN` (`mmap_lock`, `spf`, `seq`, `vma_lock`): `.ci/run`
/// runs the whole suite once per design this way. Tests that name a design keep it.
public let environmentDesign: FaultDesign? = {
  guard let name = getenv("FAULTLINE_DESIGN") else { return nil }
  guard let d = FaultDesign(rawValue: String(cString: name)) else {
    fatalError("FAULTLINE_DESIGN=\(String(cString: name)): expected one of \(FaultDesign.allCases)")
  }
  return d
}()

/// Expects `body` to throw exactly `errno`.
public func expectErrno<T>(
  _ errno: Errno, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws(Errno) -> T
) {
  do {
    let v = try body()
    Issue.record("expected \(errno), got success: \(v)", sourceLocation: sourceLocation)
  } catch {
    #expect(error == errno, sourceLocation: sourceLocation)
  }
}

public let page: UInt64 = 4096

/// At least eight lower-case hex digits, as `/proc/self/maps` prints addresses and offsets.
public func hex8(_ v: UInt64) -> String {
  let s = String(v, radix: 16)
  return s.count >= 8 ? s : String(repeating: "0", count: 8 - s.count) + s
}

/// The maps line of a private anonymous VMA: offset 0, device 00:00, inode 0, then a trailing
/// space, as Linux prints it.
public func anonLine(_ start: UInt64, _ end: UInt64, _ perms: String) -> String {
  "\(hex8(start))-\(hex8(end)) \(perms) 00000000 00:00 0 "
}
public let rw = Prot.read | Prot.write
public let anonPrivate = MapFlags.private | MapFlags.anonymous
public let anonShared = MapFlags.shared | MapFlags.anonymous

/// What a stress test's threads found wrong: a count, and the first description (so that a
/// failing run reports one readable violation, not thousands).
public final class ViolationLog: @unchecked Sendable {
  private let count = Atomic<Int>(0)
  private let lock = PThreadMutex()
  nonisolated(unsafe) private var first = ""

  public init() {}

  /// Records a violation; keeps the text of the first.
  public func fail(_ text: String) {
    if count.wrappingAdd(1, ordering: .relaxed).oldValue == 0 { lock.withLock { first = text } }
  }

  public var violations: Int { count.load(ordering: .relaxed) }
  public var firstViolation: String { lock.withLock { first } }
}

/// Runs `body` on `count` pthreads and joins them (raw pthreads: see reference/swift-stack.md §5).
public func runThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
  runOnThreads(count, body)
}

#if canImport(Glibc)
import Glibc
#endif
