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
  /// The machine the address spaces run on; `run` makes a larger one when the script needs it
  /// (`arenaBytes`).
  public private(set) var machine: Machine
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
  /// Where the calls come from, and those read ahead of the one being replayed (`lookAhead`).
  private var source: () -> ScriptEntry? = { nil }
  private var ahead: [ScriptEntry] = []
  private var aheadHead = 0
  /// Recorded path → the engine path of its stand-in file (`StandInFile`), machine-wide: the
  /// tmpfs is one for every address space.
  var standInPaths: [String: String] = [:]
  var standInCount = 0
  /// The engine paths of stand-ins for disk files (`StandInKind.diskFile`).
  var diskStandIns: Set<String> = []
  /// Whether what the log cannot show is inferred (kernel-made ranges, opens taken as recorded):
  /// for traced programs, not for op scripts (`ReplayOptions.strict`).
  var inferring = true
  /// The call being executed and its process (for consequences and hints).
  var current: (op: Operation, process: ReplayProcess)?

  public init(options: ReplayOptions = ReplayOptions()) throws(Errno) {
    self.options = options
    machine = try Self.makeMachine(options.memoryBytes, options)
  }

  private static func makeMachine(_ bytes: Int, _ options: ReplayOptions) throws(Errno) -> Machine {
    let machine = try Machine(memoryBytes: bytes, profile: options.profile)
    // Files opened by the script live in a tmpfs at the root.
    machine.mount(TmpFS(memory: machine.memory), at: "/")
    return machine
  }

  /// The arena a script with `traits` needs: `ReplayOptions.memoryBytes`, or more when its
  /// populating calls (`MAP_POPULATE` and `MAP_LOCKED` mmaps, `mlock`, `MADV_POPULATE_*`,
  /// stores) add up to more, with a quarter on top for page tables and the page cache; at most
  /// `ReplayOptions.maxArenaBytes`. (A `-Xms1g -XX:+AlwaysPreTouch` JVM populates its whole
  /// heap with `MADV_POPULATE_WRITE`: the 1 GiB default cannot hold it.) The sum is an upper
  /// bound: memory unmapped in between is counted again.
  func arenaBytes(for traits: ScriptTraits) -> Int {
    let total = traits.populatedBytes
    let wanted = total / 4 > UInt64(Int.max) / 5 ? UInt64(Int.max) : total + total / 4
    return Int(min(max(UInt64(options.memoryBytes), wanted), UInt64(max(ReplayOptions.maxArenaBytes, options.memoryBytes))))
  }

  deinit { tearDown() }

  /// Replays `script` and returns what happened. One executor runs one script.
  /// `unreadableLines`: the lines the parser skipped, for the report.
  public func run(_ script: ReplayScript, unreadableLines: [ReplayParseError] = []) -> ReplayReport {
    var entries = script.entries.makeIterator()
    return run(ScriptTraits(script.calls), unreadableLines: { unreadableLines }) { entries.next() }
  }

  /// Replays the calls `reader` reads, for a script with `traits` (a first pass over it).
  public func run(_ reader: ScriptReader, traits: ScriptTraits) -> ReplayReport {
    run(traits, unreadableLines: { reader.errors }) { reader.next() }
  }

  private func run(
    _ traits: ScriptTraits, unreadableLines: () -> [ReplayParseError], source: @escaping () -> ScriptEntry?
  ) -> ReplayReport {
    self.source = source
    let arena = arenaBytes(for: traits)
    if processes.isEmpty, arena > options.memoryBytes, let bigger = try? Self.makeMachine(arena, options) {
      machine = bigger
    }
    report.arenaBytes = machine.memory.frameCount * Page.byteCount
    scriptHasAccesses = traits.hasAccesses
    inferring = !(options.strict ?? traits.hasPseudoCalls)
    while let entry = nextEntry() {
      step(entry)
    }
    report.unreadableLines = unreadableLines()
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

  /// Replays the file at `path` as it reads it, in two passes (`ScriptTraits`, then the calls),
  /// holding a few calls at a time: an 800,000-line log replays in bounded memory.
  /// - Throws: the `Errno` of opening it; a `ReplayParseError` when no line reads.
  public static func replay(contentsOf path: String, options: ReplayOptions = ReplayOptions()) throws -> ReplayReport {
    let first = try ScriptReader(path: path)
    var traits = ScriptTraits()
    while let e = first.next() { traits.add(e.call) }
    if first.entryCount == 0, let error = first.errors.first { throw error }
    return try ReplayExecutor(options: options).run(try ScriptReader(path: path), traits: traits)
  }

  /// The next entry to replay: read ahead by `peek`, or from the source.
  private func nextEntry() -> ScriptEntry? {
    guard aheadHead < ahead.count else { return source() }
    let e = ahead[aheadHead]
    aheadHead += 1
    if aheadHead == ahead.count {
      ahead.removeAll(keepingCapacity: true)
      aheadHead = 0
    }
    return e
  }

  /// The entry `k` places after the one being replayed (0: the next), reading ahead.
  private func peek(_ k: Int) -> ScriptEntry? {
    while ahead.count - aheadHead <= k {
      guard let e = source() else { return nil }
      ahead.append(e)
    }
    return ahead[aheadHead + k]
  }

  func tearDown() {
    for p in processes { p.tearDown() }
    processes.removeAll()
    pidProcess.removeAll()
    lastProcess = nil
    machine.drainDeferredFrees()
  }

  // MARK: One call

  private func step(_ entry: ScriptEntry) {
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
      guard case .value(let n) = call.result, !n.negative, n.magnitude > 0, let parent = process(for: key, entry) else {
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
    guard let p = process(for: key, entry, op: op, result: call.result) else {
      report.skip("\(call.name): no address space")
      return
    }
    lastProcess = p
    current = (op, p)
    execute(op, entry, in: p)
    current = nil
  }

  /// The process `key` runs in, creating one for a new program.
  private func process(
    for key: Int64, _ entry: ScriptEntry, op: Operation? = nil, result: RecordedResult = .none
  ) -> ReplayProcess? {
    if execed.remove(key) != nil { return newProcess(for: key, at: entry) }
    if let p = pidProcess[key] {
      // A brk(NULL) that returns a break this program never had: it exec'd, untraced.
      if case .brk(0) = op, case .value(let n) = result, let last = p.lastRecordedBrk, last != n.bits {
        return newProcess(for: key, at: entry)
      }
      return p
    }
    if let child = children.removeValue(forKey: key) {
      pidProcess[key] = child
      return child
    }
    if case .brk(0) = op { return newProcess(for: key, at: entry) }
    if let last = lastProcess {
      pidProcess[key] = last
      return last
    }
    return newProcess(for: key, at: entry)
  }

  private func newProcess(for key: Int64, at entry: ScriptEntry) -> ReplayProcess? {
    var config = AddressSpaceConfig(profile: machine.profile)
    config.design = options.design
    options.apply(to: &config)
    let layout = lookAhead(from: entry, pid: key)
    if let b = layout.startBrk { config.startBrk = b }
    if let base = options.mapsBase ?? layout.mmapBase { config.mmapBase = base }
    // The legacy layout leaves the first hint-less mmap just above TASK_UNMAPPED_BASE (past
    // ld.so and the vdso), the default one near the top; a --maps-base says top-down.
    let nearUnmappedBase = options.mapsBase == nil && layout.firstMmap.map {
      $0 >= config.taskUnmappedBase && $0 - config.taskUnmappedBase < Self.legacyWindow
    } ?? false
    if options.legacyLayout ?? nearUnmappedBase { config.addrCompatLayout = true }
    do {
      let p = try ReplayProcess(machine: machine, config: config)
      processes.append(p)
      pidProcess[key] = p
      report.processes += 1
      report.mapsBases.append(config.mmapIsLegacy ? config.taskUnmappedBase : config.mmapBase)
      if config.mmapIsLegacy {
        report.legacyLayouts += 1
        // ld.so, [vvar] and [vdso] lie bottom-up from TASK_UNMAPPED_BASE, below the first
        // hint-less mmap: the kernel made them before the log starts.
        if inferring, let first = layout.firstMmap, first > config.taskUnmappedBase, nearUnmappedBase {
          report.inferred += p.inferKernelMappings(config.taskUnmappedBase, first - config.taskUnmappedBase)
        }
      }
      return p
    } catch {
      report.skip("address space: \(error)")
      return nil
    }
  }

  /// How far above `TASK_UNMAPPED_BASE` a first hint-less mmap says "legacy layout": 1 TiB.
  static let legacyWindow: UInt64 = 1 << 40

  /// The program's first `brk(NULL)` result, the end of its first hint-less mmap and that
  /// mmap's address, from the calls of `pid` starting at `entry`, up to its next program; at
  /// most `lookAheadLimit` calls ahead.
  private func lookAhead(
    from entry: ScriptEntry, pid: Int64
  ) -> (startBrk: UInt64?, mmapBase: UInt64?, firstMmap: UInt64?) {
    var startBrk: UInt64?
    var first: UInt64?
    var sawBrk = false
    var lastBrk: UInt64?
    var base: UInt64?
    var j = -1
    while j < Self.lookAheadLimit, base == nil || !sawBrk, let next = j < 0 ? entry : peek(j) {
      let call = next.call
      let later = j >= 0
      j += 1
      guard Int64(call.pid ?? -1) == pid, let op = try? Operation.decode(call) else { continue }
      switch (op, call.result) {
      case (.exec, _):
        if later { return (startBrk, base, first) }
      case (.brk(let a), .value(let n)):
        if a == 0, later, let lastBrk, lastBrk != n.bits { return (startBrk, base, first) }
        if !sawBrk && a == 0 { startBrk = n.bits }
        sawBrk = true
        lastBrk = n.bits
      case (.mmap(0, let len, _, let flags, _, _), .value(let n)):
        if base == nil && flags & (MapFlags.fixed | MapFlags.fixedNoReplace).rawValue == 0 {
          // A hugetlb mapping covers whole huge pages (a size with none made no mapping).
          let log2 = MapFlags(rawValue: flags).hugePageLog2
          let huge = log2 == 0 ? machine.hugetlb.defaultSize : HugePageSize(rawValue: log2)
          let length = flags & MapFlags.hugeTLB.rawValue == 0 ? Page.roundUp(len) : huge?.roundUp(len)
          let end = n.bits &+ (length ?? 0)
          if end > n.bits && end <= AddressSpaceConfig(profile: machine.profile).taskSize && Page.isAligned(end) {
            base = end
            first = n.bits
          }
        }
      default:
        break
      }
    }
    return (startBrk, base, first)
  }

  /// How far `lookAhead` reads ahead of a new program's first call: its layout comes from its
  /// first calls, and the calls read ahead are held in memory.
  static let lookAheadLimit = 100_000

  // MARK: Results

  /// The recorded result as an outcome, when it is one the engine can give.
  func expectedOutcome(_ entry: ScriptEntry) -> Outcome? {
    switch entry.call.result {
    case .value(let n): .value(n.bits)
    case .error(let name, _): Symbols.errno(named: name).map { .errno($0) }
    case .access(let o): .access(o)
    default: nil
    }
  }

  /// Compares and counts one executed call.
  func record(_ entry: ScriptEntry, got: Outcome) {
    report.executed += 1
    guard let expected = expectedOutcome(entry) else {
      report.unchecked += 1
      log(entry, "ran: \(got) (no recorded result)")
      return
    }
    if expected == got {
      report.matched += 1
      log(entry, "ok")
    } else {
      let address = Self.addressResults.contains(entry.call.name)
      let hint = stateHint(entry, op: current?.op, expected: expected, got: got)
      mismatch(entry, expected: expected.text(address: address), got: got.text(address: address), hint: hint)
    }
  }

  /// Calls whose result is an address: printed in hex in mismatches whatever its size.
  private static let addressResults: Set<String> = ["mmap", "mremap", "brk", "shmat"]

  func mismatch(_ entry: ScriptEntry, expected: String, got: String, hint: String? = nil) {
    var m = ReplayMismatch(line: entry.line, call: ScriptPrinter.summary(entry.call), expected: expected, got: got)
    m.hint = hint
    if let current { m.rootLine = rootLine(in: current.process, of: current.op, line: entry.line) }
    report.mismatches.append(m)
    log(entry, "MISMATCH: \(m.description.drop { $0 != " " }.dropFirst())")
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
