import Faultline

/// Runs a script against fresh engine address spaces and compares every call's result with the
/// recorded one (for a load or store with a signal line, its `si_code` and `si_addr` too).
/// Address spaces follow `ReplayOptions.profile`.
///
/// **Processes.** A log of `strace -f` can hold several programs. Each gets its own
/// `AddressSpace` on one `Machine`:
/// - a pid seen for the first time whose first call is `brk(NULL)` (what ld.so does first) is a
///   new program; so is a pid after its `execve`, and a pid whose `brk(NULL)` returns a break its
///   program never had (an `execve` the log did not trace);
/// - a pid named by a traced `clone`/`clone3`/`vfork` with `CLONE_VM` joins its parent's address
///   space (a thread); a child of `fork` (or `clone` without `CLONE_VM`) gets a copy of the
///   parent's, made by `AddressSpace.fork` when the clone call is replayed;
/// - any other new pid joins the address space of the most recent call (threads, when clone is
///   not traced; also the main pid once strace starts printing `[pid N]`). A log with several
///   pids and no process call at all says so in its summary: it was recorded without
///   `-e trace=process`, and forked children ran in their parent's address space.
///
/// **Layout.** `mm->start_brk` is the result of the program's first `brk(NULL)`. `mmap_base` is
/// `--maps-base`, or else the end of the program's first successful hint-less `mmap`: the kernel
/// has already placed ld.so, the vdso and the stack at the top of the mmap area, mappings the
/// engine never sees, and the first hint-less mmap lands right below them.
///
/// **Memory the engine does not model.** A file `mmap` on an fd the script never opened (a
/// library, opened by an untraced `openat`) that the kernel completed is replayed as an anonymous
/// private mapping with the same address, length, protection and flags, so placement is still
/// checked and later `munmap`/`mprotect` calls find it. A call that the kernel completed on a
/// range the script never mapped nor unmapped (ld.so's RELRO `mprotect`: the kernel mapped ld.so
/// and the ELF) first gets that range mapped, anonymous and read-write, with `MAP_FIXED_NOREPLACE`;
/// for an `mprotect(…, PROT_GROWSDOWN)` (glibc making the stack executable) the range is the
/// stack, mapped `MAP_GROWSDOWN` as Linux's is.
/// Both are left out of `maps()` comparisons (`MapsLine`).
public final class ReplayExecutor {
  public let options: ReplayOptions
  public let machine: Machine
  var report = ReplayReport()
  var processes: [ReplayProcess] = []
  /// The process each pid runs in (`-1` for lines without a pid).
  var pidProcess: [Int64: ReplayProcess] = [:]
  /// Pids that called `execve`: their next call starts a new program.
  var execed: Set<Int64> = []
  /// Children announced by a traced clone, with the address space they run in: the parent's
  /// (a thread, `vfork`) or its copy (`fork`).
  var children: [Int64: ReplayProcess] = [:]
  /// Whether the script records memory accesses (an op script rather than a traced program):
  /// only then does `mincore`'s vector say something about the engine.
  var scriptHasAccesses = false
  var lastProcess: ReplayProcess?
  /// Recorded System V segment ids → the engine's (the namespace is the machine's, shared by
  /// every process of the log).
  var shmIDs: [Int32: Int32] = [:]
  /// The pids seen so far (`ReplayReport.pids`).
  var pids: Set<Int32> = []
  var script = ReplayScript()

  public init(options: ReplayOptions = ReplayOptions()) throws(Errno) {
    self.options = options
    machine = try Machine(memoryBytes: options.memoryBytes, profile: options.profile)
    // Files opened by the script live in a tmpfs at the root.
    machine.mount(TmpFS(memory: machine.memory), at: "/")
  }

  deinit { tearDown() }

  /// Replays `script` and returns what happened. One executor runs one script.
  /// `unreadableLines`: the lines the parser skipped, for the report.
  public func run(_ script: ReplayScript, unreadableLines: [ReplayParseError] = []) -> ReplayReport {
    self.script = script
    report.unreadableLines = unreadableLines
    scriptHasAccesses = script.calls.contains { $0.name == "load" || $0.name == "store" }
    for (index, entry) in script.entries.enumerated() {
      step(index, entry)
    }
    tearDown()
    return report
  }

  /// Parses and replays `text`; lines that cannot be read are skipped and reported
  /// (`ReplayReport.unreadableLines`).
  /// - Throws: a `ReplayParseError` when no line reads (`ScriptParser.parseSkippingUnreadable`).
  public static func replay(_ text: String, options: ReplayOptions = ReplayOptions()) throws -> ReplayReport {
    let (script, unreadable) = try ScriptParser.parseSkippingUnreadable(text)
    return try ReplayExecutor(options: options).run(script, unreadableLines: unreadable)
  }

  func tearDown() {
    for p in processes { p.tearDown() }
    processes.removeAll()
    pidProcess.removeAll()
    lastProcess = nil
    machine.drainDeferredFrees()
  }

  // MARK: One call

  private func step(_ index: Int, _ entry: ScriptEntry) {
    let call = entry.call
    if let pid = call.pid, pids.insert(pid).inserted { report.pids += 1 }
    if call.unfinished {
      report.skip("\(call.name): unfinished in the log")
      log(entry, "skipped (unfinished)")
      return
    }
    let op: Operation?
    do throws(Operation.DecodeError) {
      op = try Operation.decode(call)
    } catch {
      // The parser refuses these; a hand-built script may still hold one.
      report.skip("\(call.name): malformed")
      return
    }
    guard let op else {
      report.skip("\(call.name): not modelled")
      log(entry, "skipped (not modelled)")
      return
    }
    let key = Int64(call.pid ?? -1)
    switch op {
    case .exec, .clone: report.processCalls += 1
    default: break
    }
    switch op {
    case .exec:
      execed.insert(key)
      report.skip("\(call.name): starts a new program")
      return
    case .clone(let sharesVM):
      guard case .value(let n) = call.result, !n.negative, n.magnitude > 0, let parent = process(for: key, index) else {
        report.skip("\(call.name): failed or unknown child")
        return
      }
      lastProcess = parent
      let child: ReplayProcess
      if sharesVM {
        child = parent
        report.skip("\(call.name): a thread of the same address space")
      } else {
        do throws(Errno) {
          child = try ReplayProcess(forkOf: parent)
        } catch {
          report.skip("\(call.name): fork failed in the engine (\(error))")
          return
        }
        processes.append(child)
        report.processes += 1
        report.forks += 1
        log(entry, "forked the address space")
      }
      children[Int64(truncatingIfNeeded: n.magnitude)] = child
      return
    default:
      break
    }
    guard let p = process(for: key, index, op: op, result: call.result) else {
      report.skip("\(call.name): no address space")
      return
    }
    lastProcess = p
    execute(op, entry, in: p)
  }

  /// The process `key` runs in, creating one for a new program.
  private func process(
    for key: Int64, _ index: Int, op: Operation? = nil, result: RecordedResult = .none
  ) -> ReplayProcess? {
    if execed.remove(key) != nil { return newProcess(for: key, at: index) }
    if let p = pidProcess[key] {
      // A brk(NULL) that returns a break this program never had: it exec'd, untraced.
      if case .brk(0) = op, case .value(let n) = result, let last = p.lastRecordedBrk, last != n.bits {
        return newProcess(for: key, at: index)
      }
      return p
    }
    if let child = children.removeValue(forKey: key) {
      pidProcess[key] = child
      return child
    }
    if case .brk(0) = op { return newProcess(for: key, at: index) }
    if let last = lastProcess {
      pidProcess[key] = last
      return last
    }
    return newProcess(for: key, at: index)
  }

  private func newProcess(for key: Int64, at index: Int) -> ReplayProcess? {
    var config = AddressSpaceConfig(profile: machine.profile)
    config.design = options.design
    let layout = lookAhead(from: index, pid: key)
    if let b = layout.startBrk { config.startBrk = b }
    if let base = options.mapsBase ?? layout.mmapBase { config.mmapBase = base }
    do {
      let p = try ReplayProcess(machine: machine, config: config)
      processes.append(p)
      pidProcess[key] = p
      report.processes += 1
      report.mapsBases.append(config.mmapBase)
      return p
    } catch {
      report.skip("address space: \(error)")
      return nil
    }
  }

  /// The program's first `brk(NULL)` result and the end of its first hint-less mmap, from the
  /// calls of `pid` starting at `index`, up to its next program.
  private func lookAhead(from index: Int, pid: Int64) -> (startBrk: UInt64?, mmapBase: UInt64?) {
    var startBrk: UInt64?
    var sawBrk = false
    var lastBrk: UInt64?
    var base: UInt64?
    var j = index
    let entries = script.entries
    while j < entries.count, base == nil || !sawBrk {
      let call = entries[j].call
      defer { j += 1 }
      guard Int64(call.pid ?? -1) == pid, let op = try? Operation.decode(call) else { continue }
      switch (op, call.result) {
      case (.exec, _):
        if j > index { return (startBrk, base) }
      case (.brk(let a), .value(let n)):
        if a == 0, j > index, let lastBrk, lastBrk != n.bits { return (startBrk, base) }
        if !sawBrk && a == 0 { startBrk = n.bits }
        sawBrk = true
        lastBrk = n.bits
      case (.mmap(0, let len, _, let flags, _, _), .value(let n)):
        if base == nil && flags & (MapFlags.fixed | MapFlags.fixedNoReplace).rawValue == 0 {
          let end = n.bits &+ Page.roundUp(len)
          if end > n.bits && end <= AddressSpaceConfig(profile: machine.profile).taskSize && Page.isAligned(end) { base = end }
        }
      default:
        break
      }
    }
    return (startBrk, base)
  }

  // MARK: Results

  /// Compares and counts one executed call.
  func record(_ entry: ScriptEntry, got: Outcome) {
    report.executed += 1
    let expected: Outcome?
    switch entry.call.result {
    case .value(let n): expected = .value(n.bits)
    case .error(let name, _): expected = Symbols.errno(named: name).map { .errno($0) }
    case .access(let o): expected = .access(o)
    default: expected = nil
    }
    guard let expected else {
      report.unchecked += 1
      log(entry, "ran: \(got) (no recorded result)")
      return
    }
    if expected == got {
      report.matched += 1
      log(entry, "ok")
    } else {
      let address = Self.addressResults.contains(entry.call.name)
      mismatch(entry, expected: expected.text(address: address), got: got.text(address: address))
    }
  }

  /// Calls whose result is an address: printed in hex in mismatches whatever its size.
  private static let addressResults: Set<String> = ["mmap", "mremap", "brk", "shmat"]

  func mismatch(_ entry: ScriptEntry, expected: String, got: String) {
    let m = ReplayMismatch(line: entry.line, call: ScriptPrinter.summary(entry.call), expected: expected, got: got)
    report.mismatches.append(m)
    log(entry, "MISMATCH: expected \(expected), got \(got)")
  }

  func log(_ entry: ScriptEntry, _ what: String) {
    options.log?("\(entry.line): \(ScriptPrinter.summary(entry.call)) -> \(what)")
  }
}

/// What a call did on the engine.
enum Outcome: Equatable, CustomStringConvertible {
  case value(UInt64)
  case errno(Errno)
  case access(AccessOutcome)
  /// A load or store the engine could not finish for lack of frames (Linux would OOM-kill).
  case outOfMemory

  var description: String { text(address: false) }

  /// As `description`; `address`: a value is an address, in hex however small.
  func text(address: Bool) -> String {
    switch self {
    case .value(let v): address || v > 0xFFFF ? "0x" + String(v, radix: 16) : String(Int64(bitPattern: v))
    case .errno(let e): "-1 \(Symbols.name(of: e)) (\(Symbols.message(of: e)))"
    case .access(let o): o.rawValue
    case .outOfMemory: "out of memory"
    }
  }
}

/// `PAGE_ALIGN`, wrapping to 0 past the top as Linux's does.
