import Faultline

/// The anonymous-memory scenarios: a fault on page 1 of a 4-page private mapping (page 0 was
/// written first, so the VMA has its anon_vma and the page tables exist, and the speculative
/// designs can complete the fault without `mmap_lock`) against `munmap` or `mprotect` of the
/// whole mapping.
extension Scenario {
  /// A read or write fault vs munmap of its range (invariants 1, 3, 7).
  public static let faultMunmap = Scenario(
    name: "fault-munmap",
    summary: "anonymous read/write fault on page 1 vs munmap of the 4-page mapping",
    threads: ["F", "W"], variants: ["read", "write"], usesFputMode: false, needsWorkDir: false,
    make: { config, s in try AnonRun(config, s, mprotect: false) })

  /// A write fault vs mprotect(PROT_READ) of its range (invariants 2, 3, 7).
  public static let faultMprotect = Scenario(
    name: "fault-mprotect",
    summary: "anonymous write fault on page 1 vs mprotect(PROT_READ) of the 4-page mapping",
    threads: ["F", "W"], variants: ["write"], usesFputMode: false, needsWorkDir: false,
    make: { config, s in try AnonRun(config, s, mprotect: true) })
}

/// One run of `fault-munmap` or `fault-mprotect`.
///
/// Checks: once munmap returned, no PTE in the range (invariant 1, at every quiescent point
/// after it and at the end: a fault that started before it installs nothing later); once
/// mprotect(PROT_READ) returned, no writable PTE (invariant 2, likewise); mapped frames are in
/// use and none leaks (3); the fault's result is one Linux allows for the order (7): munmap →
/// `ok` or `SIGSEGV(MAPERR)`, mprotect → `ok` or `SIGSEGV(ACCERR)`, fixed when the two did not
/// overlap. Sabotage: the writer skips its system call (munmap) or keeps `PROT_WRITE`
/// (mprotect) while still claiming to have returned.
final class AnonRun: ScenarioRig, ScenarioRun {
  let isMprotect: Bool
  let write: Bool
  var bodies: [@Sendable () -> Void] = []

  init(_ config: ScenarioConfig, _ s: Scheduler, mprotect: Bool) throws {
    isMprotect = mprotect
    write = mprotect || config.variant == "write"
    try super.init(config, s)
    let (mm, page) = (self.mm!, Self.page)
    let base = try mapAnonymousWindow()
    let sabotage = config.sabotage
    let writer: @Sendable () throws(Errno) -> Void
    if mprotect {
      let prot = sabotage ? Prot.read | Prot.write : Prot.read
      // The writer is its own thread, with its own CPU handle, as the fault body is.
      writer = { () throws(Errno) in try CPU(mm: mm).mprotect(base, 4 * page, prot: prot) }
    } else {
      writer = { () throws(Errno) in if !sabotage { try mm.munmap(base, 4 * page) } }
    }
    bodies = [faultBody(write: write), Self.writerBody(s, times, mprotect ? "mprotect" : "munmap", writer)]
    arm()
  }

  func quiescent(step: Int, violations: inout [String]) {
    checkMappedFramesLive(step, &violations)
    guard times.value.writerEnd != 0 else { return }
    checkWriterEffect(at: "step \(step)", &violations)
  }

  /// Invariants 1 and 2 once the writer returned.
  func checkWriterEffect(at when: String, _ violations: inout [String]) {
    if isMprotect {
      for a in mappedPages(where: { $0.isPresent && $0.isWritable }) {
        violations.append("inv2: writable PTE at \(hex(a)) after mprotect(PROT_READ) returned (\(when))")
      }
    } else {
      for a in mappedPages() {
        violations.append("inv1: PTE at \(hex(a)) after munmap returned (\(when))")
      }
    }
  }

  func finish(allFinished: Bool, violations: inout [String]) -> Observation {
    let o = observe(&violations)
    if allFinished {
      checkMappedFramesLive(-1, &violations)
      checkWriterEffect(at: "end", &violations)
      checkResultOrdering(before: "ok", after: isMprotect ? "SIGSEGV(ACCERR)" : "SIGSEGV(MAPERR)", &violations)
    }
    bodies = []
    teardown(allFinished: allFinished, &violations)
    return o
  }
}
