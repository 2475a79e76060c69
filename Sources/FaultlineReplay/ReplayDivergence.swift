import Faultline

/// What a replay does after a call disagrees with the log: it goes on from the recorded state,
/// so one divergence makes one report, and it says which state the log could not carry might
/// explain a mismatch.
///
/// **One divergence, one report.** A hint-less `mmap` the engine placed elsewhere (or refused)
/// is moved to the recorded address (`MAP_FIXED_NOREPLACE`), so later calls run against the
/// layout the program had. The root mismatch's ranges (where the engine put it, where Linux
/// did) are remembered; a later mismatch of a call on those ranges is a *consequence*
/// (`ReplayMismatch.rootLine`), counted apart from the roots. When the recorded place is not
/// free on the engine, the mapping stays where the engine put it and every later mismatch of
/// that address space is a consequence.
extension ReplayExecutor {
  /// Moves the engine's new mapping `[got, got+len)` to the recorded address `recorded`; `remap`
  /// maps `len` bytes at an address with the call's arguments and `MAP_FIXED_NOREPLACE`.
  /// Returns where the mapping now is (`nil`: nowhere, the engine had refused it).
  func followRecordedPlacement(
    _ entry: ScriptEntry, got: Outcome, recorded: UInt64, length: UInt64, in p: ReplayProcess,
    remap: (UInt64) throws(Errno) -> UInt64
  ) -> UInt64? {
    let len = Page.roundUp(length)
    guard let cpu = p.cpu, len > 0 else { return nil }
    var diverged: [Range<UInt64>] = []
    if recorded &+ len > recorded { diverged.append(recorded..<(recorded + len)) }
    var engine: UInt64?
    if case .value(let a) = got, a &+ len > a {
      engine = a
      diverged.append(a..<(a + len))
      try? cpu.munmap(a, len)
    }
    if let placed = try? remap(recorded), placed == recorded {
      p.divergences.append(contentsOf: diverged.map { ($0, entry.line) })
      return recorded
    }
    // The recorded place is taken on the engine: the layouts differ from here on.
    p.divergences.append((0..<UInt64.max, entry.line))
    guard let engine else { return nil }
    return try? remap(engine)
  }

  /// The root mismatch a mismatch of the call on `line` follows from: the line of an earlier
  /// divergence whose range the call touches.
  func rootLine(in p: ReplayProcess, of op: Operation, line: Int) -> Int? {
    let earlier = p.divergences.filter { $0.line != line }
    if let all = earlier.first(where: { $0.range == 0..<UInt64.max }) { return all.line }
    guard let r = Self.addressRange(of: op) else { return nil }
    return earlier.first { $0.range.overlaps(r) }?.line
  }

  /// The range a call works on, for consequences.
  static func addressRange(of op: Operation) -> Range<UInt64>? {
    let (a, len): (UInt64, UInt64)
    switch op {
    case .munmap(let x, let n), .mprotect(let x, let n, _), .madvise(let x, let n, _), .msync(let x, let n, _),
      .mlock(let x, let n, _), .munlock(let x, let n), .mincore(let x, let n, _), .load(let x, let n),
      .store(let x, let n), .pkeyMprotect(let x, let n, _, _):
      (a, len) = (x, n)
    case .mremap(let x, let n, _, _, _):
      (a, len) = (x, n)
    case .mmap(let x, let n, _, _, _, _) where x != 0:
      (a, len) = (x, n)
    default:
      return nil
    }
    let end = a &+ Page.roundUp(max(len, 1))
    return end > a ? a..<end : a..<UInt64.max
  }

  /// The flag that gives the replay state the log cannot carry, when such state could explain
  /// a mismatch of `entry` (`expected` recorded, `got` on the engine).
  func stateHint(_ entry: ScriptEntry, op: Operation?, expected: Outcome, got: Outcome) -> String? {
    let lockErrors: Set<Errno> = [.noMemory, .notPermitted, .resourceTemporarilyUnavailable]
    func isError(_ o: Outcome, _ set: Set<Errno>) -> Bool {
      if case .errno(let e) = o { return set.contains(e) }
      return false
    }
    if got == .outOfMemory {
      return "the engine's frame arena is full: --memory BYTES"
    }
    var locks = false
    var populates = false
    switch op {
    case .mlock: locks = true
    case .mmap(_, _, _, let flags, _, _):
      locks = flags & MapFlags.locked.rawValue != 0
      populates = flags & MapFlags.populate.rawValue != 0
    case .mremap: locks = true
    case .madvise(_, _, let advice):
      populates = advice == Advice.populateRead.rawValue || advice == Advice.populateWrite.rawValue
    default: break
    }
    if locks && (isError(expected, lockErrors) || isError(got, lockErrors)) {
      return "state the log lacks: --privileged, or --rlimit MEMLOCK=BYTES (the engine's is \(memlockText))"
    }
    if populates && isError(got, [.noMemory]) {
      return "the engine's frame arena may be full: --memory BYTES"
    }
    switch op {
    case .mmap(let addr, _, _, let flags, _, _):
      if isError(expected, [.notPermitted]) || isError(got, [.notPermitted]) {
        if addr < 0x10000 || flags & MapFlags.locked.rawValue != 0 { return "state the log lacks: --privileged" }
      }
      if isError(expected, [.noMemory]) && !isError(got, [.noMemory]) {
        return "state the log lacks: --rlimit AS=BYTES or --rlimit DATA=BYTES"
      }
      if case .value(let r) = expected, case .value = got, addr == 0, let config = current?.process.mm?.config {
        let nearUnmappedBase = r >= config.taskUnmappedBase && r - config.taskUnmappedBase < Self.legacyWindow
        if nearUnmappedBase && !config.mmapIsLegacy { return "the program ran with the legacy layout: --legacy-layout" }
        if r > config.taskSize / 2 && config.mmapIsLegacy {
          return "the program ran with the default layout: --no-legacy-layout"
        }
      }
    case .brk, .mremap:
      if isError(expected, [.noMemory]) && !isError(got, [.noMemory]) {
        return "state the log lacks: --rlimit AS=BYTES or --rlimit DATA=BYTES"
      }
    default:
      break
    }
    return nil
  }

  private var memlockText: String {
    if options.privileged { return "unbounded" }
    let limit = options.rlimits[.memlock] ?? AddressSpaceConfig().rlimitMemlock
    return limit == .max ? "unlimited" : "\(limit >> 10) KiB"
  }
}
