import Faultline
import Glibc

/// Reads a script from a file a line at a time (`ScriptParser`'s rules), handing out each call
/// as soon as nothing later in the text can change it, so a replay holds a few calls of the log
/// at a time instead of all of them. A call that never resumes (`<unfinished ...>` to the end)
/// comes out when strace gives up on it, after calls on later lines.
public final class ScriptReader {
  private var state = ScriptParser.State()
  private var lineNo = 0
  private var finished = false
  private let file: UnsafeMutablePointer<FILE>
  private var buffer: UnsafeMutablePointer<CChar>?
  private var capacity = 0
  /// Calls handed out so far.
  public private(set) var entryCount = 0

  /// Opens `path` for reading.
  /// - Throws: the `Errno` `fopen` gave.
  public init(path: String) throws(Errno) {
    guard let f = fopen(path, "r") else { throw Errno(rawValue: errno) }
    file = f
  }

  deinit {
    fclose(file)
    free(buffer)
  }

  /// The lines that could not be read so far (all of them once `next` returned `nil`).
  public var errors: [ReplayParseError] { state.errors }

  /// The next call, or `nil` at the end of the file.
  public func next() -> ScriptEntry? {
    while true {
      if let e = state.takeSettled(all: finished) {
        entryCount += 1
        return e
      }
      if finished { return nil }
      let n = getline(&buffer, &capacity, file)
      guard n >= 0, let buffer else {
        state.finish()
        finished = true
        continue
      }
      lineNo += 1
      var bytes = UnsafeRawBufferPointer(start: buffer, count: n)
      if bytes.last == 0x0A { bytes = UnsafeRawBufferPointer(rebasing: bytes.dropLast()) }
      state.feed(Array(bytes)[...], lineNo)
    }
  }
}

/// What a replay must know of a whole script before its first call: whether it is an op script
/// (strict, `ReplayOptions.strict`), whether it records accesses (`mincore` vectors are then
/// compared), and how much memory its populating calls touch (`ReplayExecutor.arenaBytes`).
public struct ScriptTraits: Sendable {
  /// Any `load` or `store`.
  public var hasAccesses = false
  /// Any pseudo-call only op scripts have (`load`, `store`, `maps`, `wrpkru`).
  public var hasPseudoCalls = false
  /// Bytes of `MAP_POPULATE` and `MAP_LOCKED` mmaps, `mlock`, `MADV_POPULATE_*` and stores.
  public var populatedBytes: UInt64 = 0

  public init() {}

  public init(_ calls: some Sequence<ScriptCall>) {
    for c in calls { add(c) }
  }

  /// The pseudo-calls that make a script an op script.
  static let pseudoCalls: Set<String> = ["load", "store", "maps", "wrpkru"]

  public mutating func add(_ call: ScriptCall) {
    if call.name == "load" || call.name == "store" { hasAccesses = true }
    if Self.pseudoCalls.contains(call.name) { hasPseudoCalls = true }
    guard let op = try? Operation.decode(call) else { return }
    let populating = (MapFlags.populate | MapFlags.locked).rawValue
    switch op {
    case .mmap(_, let len, _, let flags, _, _) where flags & populating != 0: populatedBytes &+= len
    case .mlock(_, let len, _), .store(_, let len): populatedBytes &+= len
    case .madvise(_, let len, let advice)
    where advice == Advice.populateRead.rawValue || advice == Advice.populateWrite.rawValue:
      populatedBytes &+= len
    default: break
    }
  }
}
