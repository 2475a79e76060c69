/// Reads a replay script: strace's line syntax (`strace -f` logs replay unchanged) plus the
/// pseudo-calls `load`, `store`, `maps`, `open`, `ftruncate`, `close` and `wrpkru`.
///
/// Per line, in order:
/// - blank lines, `#` comments, `+++ exited … +++`, `strace: …` and `[ Process … ]` notes, and
///   the stack lines `-k` prints under a call (` > /lib/…/libc.so.6(mmap64+0x2a) [0x11ba2a]`)
///   are skipped;
/// - the prefixes are taken off in the order strace prints them: the pid, `[pid  1234] ` (strace
///   -f on stderr) or `1234  ` (strace -f -o), with `-Y`'s command (`[pid 1234<ls>] `,
///   `1234<ls> `); a timestamp (`-t`, `-tt`, `-ttt`, `-r`: a number with `:` or `.`); `-n`'s
///   syscall number (`[   9] `); `-i`'s instruction pointer (`[00007ffff7feaca3] `,
///   `[????????????????] `);
/// - in arguments and results, `-y`/`-yy`'s fd paths (`3</usr/lib/libc.so.6>`) and `-Y`'s
///   commands (`= 30980<sh>`) are kept beside the number (`ScriptCall.fdPaths`,
///   `ScriptCall.resultAnnotation`), and `/* … */` comments (`-X verbose`'s
///   `0x3 /* PROT_READ|PROT_WRITE */`, an unnamed flag's `0x8 /* MAP_??? */`) leave the number;
/// - `--- SIGSEGV {si_signo=…, si_code=…, si_addr=…} ---` right after a load or store of the
///   same pid that ended with that signal is its `ScriptCall.signal`; any other signal line is
///   skipped;
/// - `name(args <unfinished ...>` waits for its `<... name resumed>rest` on the same pid; the
///   joined call takes the resumed line's number, where its result is. One that never resumes
///   is kept as unfinished (the executor skips it), as is a call cut short by `<detached ...>`
///   (the end of an `strace -p` log);
/// - `name(args) = result`, less a trailing `<0.000012>`; a load's `= ok 5a5a00` is `ok` with
///   the bytes it read (`ScriptCall.loadedBytes`);
/// - `maps() = ` is followed by `/proc/self/maps` lines up to a blank line or the end.
///
/// Calls Faultline models are decoded (`Operation.decode`) while parsing, so a modelled call
/// with the wrong arguments is a parse error with its line number.
public enum ScriptParser {
  /// Parses `text`, stopping at the first error.
  public static func parse(_ text: String) throws(ReplayParseError) -> ReplayScript {
    let (script, errors) = parseCollectingErrors(text)
    if let first = errors.first { throw first }
    return script
  }

  /// Parses `text` for a replay: the lines it cannot read come back, to be reported and
  /// skipped, and the replay goes on without them.
  /// - Throws: the first error when no line reads as a call: the text is not a script at all.
  public static func parseSkippingUnreadable(
    _ text: String
  ) throws(ReplayParseError) -> (script: ReplayScript, unreadable: [ReplayParseError]) {
    let (script, errors) = parseCollectingErrors(text)
    if script.entries.isEmpty, let first = errors.first { throw first }
    return (script, errors)
  }

  /// Parses `text` and returns every line it could read together with every error.
  public static func parseCollectingErrors(_ text: String) -> (script: ReplayScript, errors: [ReplayParseError]) {
    var state = State()
    let bytes = Array(text.utf8)
    var lineNo = 0
    for line in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
      lineNo += 1
      state.feed(line, lineNo)
    }
    state.finish()
    return (ReplayScript(entries: state.entries), state.errors)
  }

  struct Pending {
    var line: Int
    var head: [UInt8]
    var comm: String?
  }

  static let detachedMarker = Array("<detached ...>".utf8)

  struct State {
    var entries: [ScriptEntry] = []
    var errors: [ReplayParseError] = []
    /// Unfinished calls by pid (`Int64(-1)` for lines without one).
    var pending: [Int64: Pending] = [:]
    /// The entry whose maps lines are being read.
    var mapsEntry: Int?

    /// The start of a line that strace cut with its own `strace: Process N attached` note; the
    /// next line continues it.
    var carry: (line: Int, text: [UInt8])?

    mutating func feed(_ raw: ArraySlice<UInt8>, _ lineNo: Int) {
      var line = raw
      while let last = line.last, CallSyntax.isSpace(last) { line = line.dropLast() }
      if let c = carry {
        carry = nil
        let joined = c.text + line
        feed(joined[...], c.line)
        return
      }
      if let note = ScriptParser.find(Array("strace: Process ".utf8), in: line), note > line.startIndex,
        mapsEntry == nil
      {
        carry = (lineNo, Array(line[line.startIndex..<note]))
        return
      }
      if let m = mapsEntry {
        if CallSyntax.trimmed(line).isEmpty {
          mapsEntry = nil
        } else if case .maps(var lines) = entries[m].call.result {
          let text = CallSyntax.string(CallSyntax.trimmed(line))
          if MapsLine(text) == nil {
            errors.append(ReplayParseError(line: lineNo, message: "not a /proc/self/maps line (end maps() lines with a blank line)"))
            return
          }
          lines.append(text)
          entries[m].call.result = .maps(lines)
        }
        return
      }
      var s = CallSyntax.trimmed(line)
      if s.isEmpty || s.first == UInt8(ascii: "#") || s.first == UInt8(ascii: ">") { return }
      if CallSyntax.hasPrefix(s, "strace: ") || CallSyntax.hasPrefix(s, "[ Process ") { return }
      let pid: Int32?
      let comm: String?
      do throws(CallSyntax.SyntaxError) {
        (pid, comm, s) = try ScriptParser.takePrefix(s)
      } catch {
        errors.append(ReplayParseError(line: lineNo, message: error.message))
        return
      }
      if s.count >= ScriptParser.detachedMarker.count,
        s.suffix(ScriptParser.detachedMarker.count).elementsEqual(ScriptParser.detachedMarker)
      {
        detach(CallSyntax.trimmed(s.dropLast(ScriptParser.detachedMarker.count)), pid: pid, comm: comm, lineNo)
        return
      }
      if CallSyntax.hasPrefix(s, "---") {
        attachSignal(s, pid: pid)
        return
      }
      if CallSyntax.hasPrefix(s, "+++") { return }
      let key = Int64(pid ?? -1)
      var start = lineNo
      var text = Array(s)
      var callPid = pid
      var callComm = comm
      if CallSyntax.hasPrefix(s, "<...") {
        guard let close = s.firstIndex(of: UInt8(ascii: ">")) else {
          errors.append(ReplayParseError(line: lineNo, message: "malformed '<... resumed>'"))
          return
        }
        let marker = CallSyntax.trimmed(s[(s.startIndex + 4)..<close])
        let name = marker.split(separator: 0x20).first.map { CallSyntax.string($0) } ?? ""
        // Once only one process is left, strace drops the pid prefix, also on a resumed half.
        var from = key
        if pending[key] == nil, pid == nil {
          let named = pending.filter { $0.value.head.starts(with: Array((name + "(").utf8)) }
          if named.count == 1, let only = named.first { from = only.key }
        }
        guard let p = pending.removeValue(forKey: from) else {
          errors.append(ReplayParseError(line: lineNo, message: "'<... \(name) resumed>' with no unfinished \(name) call before it"))
          return
        }
        if let head = p.head.split(separator: UInt8(ascii: "("), maxSplits: 1).first,
          CallSyntax.string(head) != name
        {
          errors.append(ReplayParseError(line: lineNo, message: "'<... \(name) resumed>' resumes an unfinished \(CallSyntax.string(head)) call"))
          return
        }
        text = p.head + Array(s[(close + 1)...])
        start = lineNo
        callPid = from < 0 ? nil : Int32(truncatingIfNeeded: from)
        callComm = comm ?? p.comm
      } else if s.count >= CallSyntax.unfinishedMarker.count,
        s.suffix(CallSyntax.unfinishedMarker.count).elementsEqual(CallSyntax.unfinishedMarker)
      {
        if let old = pending.removeValue(forKey: key) { emitUnfinished(old, pid: pid) }
        pending[key] = Pending(
          line: lineNo, head: Array(CallSyntax.trimmed(s.dropLast(CallSyntax.unfinishedMarker.count))), comm: comm)
        return
      }
      do throws(CallSyntax.SyntaxError) {
        var call = try ScriptParser.call(text[...], pid: callPid)
        call.comm = callComm
        entries.append(ScriptEntry(line: start, call: call))
        if call.name == "maps" { mapsEntry = entries.count - 1 }
      } catch {
        errors.append(ReplayParseError(line: lineNo, message: error.message))
      }
    }

    /// A call strace stopped tracing (`strace -p` ends with `name(args <detached ...>`, or
    /// `<... name resumed> <detached ...>` for a pending one) stays unfinished; the marker alone
    /// is noise.
    mutating func detach(_ head: ArraySlice<UInt8>, pid: Int32?, comm: String?, _ lineNo: Int) {
      if CallSyntax.hasPrefix(head, "<...") {
        if let p = pending.removeValue(forKey: Int64(pid ?? -1)) { emitUnfinished(p, pid: pid) }
      } else if !head.isEmpty {
        emitUnfinished(Pending(line: lineNo, head: Array(head), comm: comm), pid: pid)
      }
    }

    /// Makes a signal line the `signal` of the call before it, when that is a load or store of
    /// the same pid that ended with this signal and has none yet.
    mutating func attachSignal(_ s: ArraySlice<UInt8>, pid: Int32?) {
      guard let last = entries.indices.last, entries[last].call.signal == nil, entries[last].call.pid == pid,
        entries[last].call.name == "load" || entries[last].call.name == "store",
        case .access(let outcome) = entries[last].call.result, outcome != .ok,
        let record = ScriptParser.signalRecord(s), record.signal == outcome.rawValue
      else { return }
      entries[last].call.signal = record
    }

    /// Takes the first entry off when nothing later in the text can still change it: a signal
    /// line may attach to the last entry and maps lines go to the one collecting them; after
    /// `finish`, (`all`) every entry may go. For `ScriptReader`.
    mutating func takeSettled(all: Bool) -> ScriptEntry? {
      let settled = all ? entries.count : min(mapsEntry ?? Int.max, entries.count - 1)
      guard settled > 0 else { return nil }
      if let m = mapsEntry { mapsEntry = m - 1 }
      return entries.removeFirst()
    }

    mutating func finish() {
      if let c = carry {
        carry = nil
        feed([][...], c.line)
      }
      for (key, p) in pending.sorted(by: { $0.value.line < $1.value.line }) {
        emitUnfinished(p, pid: key < 0 ? nil : Int32(truncatingIfNeeded: key))
      }
      pending.removeAll()
      entries.sort { $0.line < $1.line }
    }

    mutating func emitUnfinished(_ p: Pending, pid: Int32?) {
      do throws(CallSyntax.SyntaxError) {
        let split = try CallSyntax.splitCall(p.head[...] + CallSyntax.unfinishedMarker)
        let (arguments, fdPaths) = ScriptParser.arguments(split.arguments)
        let call = ScriptCall(
          pid: pid, name: split.name, arguments: arguments, result: .none, unfinished: true, comm: p.comm,
          fdPaths: fdPaths)
        entries.append(ScriptEntry(line: p.line, call: call))
      } catch {
        errors.append(ReplayParseError(line: p.line, message: error.message))
      }
    }
  }

  /// Reads `--- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_PKUERR, si_addr=0x…} ---`; `nil` when
  /// the line lacks one of the three fields or `si_code` is neither a name nor a number.
  static func signalRecord(_ s: ArraySlice<UInt8>) -> SignalRecord? {
    let body = CallSyntax.trimmed(s.dropFirst(3))
    guard let open = body.firstIndex(of: UInt8(ascii: "{")), let close = body.lastIndex(of: UInt8(ascii: "}")),
      open < close
    else { return nil }
    let name = CallSyntax.string(CallSyntax.trimmed(body[body.startIndex..<open]))
    var signo: String?, code: String?, address: UInt64?
    for field in body[(open + 1)..<close].split(separator: UInt8(ascii: ",")) {
      let parts = field.split(separator: UInt8(ascii: "="), maxSplits: 1)
      guard parts.count == 2 else { continue }
      let value = CallSyntax.trimmed(parts[1])
      switch CallSyntax.string(CallSyntax.trimmed(parts[0])) {
      case "si_signo": signo = CallSyntax.string(value)
      case "si_code":
        let isName = value.first.map(CallSyntax.isIdentStart) == true && value.allSatisfy(CallSyntax.isIdent)
        if isName || CallSyntax.number(value) != nil { code = CallSyntax.string(value) }
      case "si_addr":
        address = value.elementsEqual("NULL".utf8) ? 0 : CallSyntax.number(value).map(\.bits)
      default: break
      }
    }
    guard signo == name, let code, let address else { return nil }
    return SignalRecord(signal: name, code: code, address: address)
  }

  /// The index of the first occurrence of `needle` in `s`.
  static func find(_ needle: [UInt8], in s: ArraySlice<UInt8>) -> Int? {
    guard let first = needle.first, s.count >= needle.count else { return nil }
    var i = s.startIndex
    while i + needle.count <= s.endIndex {
      if s[i] == first && s[i..<(i + needle.count)].elementsEqual(needle) { return i }
      i += 1
    }
    return nil
  }

  /// Takes the prefixes off the front of a line: the pid (`[pid  N] `, `N  `, either with
  /// `-Y`'s `<comm>`), a timestamp, then the `[…]` of `-n` and `-i`.
  private static func takePrefix(
    _ s: ArraySlice<UInt8>
  ) throws(CallSyntax.SyntaxError) -> (Int32?, String?, ArraySlice<UInt8>) {
    var rest = s
    var pid: Int32?
    var comm: String?
    if CallSyntax.hasPrefix(rest, "[pid") {
      let bad = CallSyntax.SyntaxError("malformed '[pid N]' prefix")
      let body = CallSyntax.trimmed(rest.dropFirst(4))
      guard let (p, c, after) = pidWithComm(body), after.first == UInt8(ascii: "]") else { throw bad }
      (pid, comm) = (p, c)
      rest = CallSyntax.trimmed(after.dropFirst())
    } else if let first = rest.first, CallSyntax.isDigit(first) {
      // `1234  call(...)` (strace -f -o FILE): digits, then spaces or `<comm>`, then not a
      // timestamp.
      let digits = rest.prefix(while: CallSyntax.isDigit)
      if let next = rest.dropFirst(digits.count).first, CallSyntax.isSpace(next) || next == UInt8(ascii: "<") {
        guard let (p, c, after) = pidWithComm(rest), let space = after.first, CallSyntax.isSpace(space) else {
          throw .init(Int32(CallSyntax.string(digits)) == nil ? "pid out of range" : "malformed 'N<comm>' prefix")
        }
        (pid, comm) = (p, c)
        rest = CallSyntax.trimmed(after)
      }
    }
    // A timestamp: digits with ':' or '.', then a space.
    if let first = rest.first, CallSyntax.isDigit(first) {
      var i = rest.startIndex
      while i < rest.endIndex && (CallSyntax.isDigit(rest[i]) || rest[i] == UInt8(ascii: ":") || rest[i] == UInt8(ascii: ".")) {
        i += 1
      }
      if i < rest.endIndex && CallSyntax.isSpace(rest[i]) { rest = CallSyntax.trimmed(rest[i...]) }
    }
    // `-n`'s `[   9]` (`[x32:  9]` for another personality) and `-i`'s `[00007ffff7feaca3]`.
    while rest.first == UInt8(ascii: "["), let close = rest.firstIndex(of: UInt8(ascii: "]")) {
      let inner = CallSyntax.trimmed(rest[(rest.startIndex + 1)..<close])
      let isTag = { (c: UInt8) in CallSyntax.isIdent(c) || CallSyntax.isSpace(c) || c == UInt8(ascii: ":") || c == UInt8(ascii: "?") }
      guard !inner.isEmpty, inner.allSatisfy(isTag) else { break }
      rest = CallSyntax.trimmed(rest[(close + 1)...])
    }
    return (pid, comm, rest)
  }

  /// Reads `1234` or `1234<comm>` at the start of `s`; the pid, the command, and what follows.
  /// `nil` when `s` does not start with a pid that fits an `Int32`.
  private static func pidWithComm(_ s: ArraySlice<UInt8>) -> (Int32, String?, ArraySlice<UInt8>)? {
    var i = s.startIndex
    while i < s.endIndex && CallSyntax.isDigit(s[i]) { i += 1 }
    guard i > s.startIndex, let n = CallSyntax.number(s[s.startIndex..<i]), n.style == .decimal,
      let pid = Int32(exactly: n.magnitude)
    else { return nil }
    guard i < s.endIndex, s[i] == UInt8(ascii: "<") else { return (pid, nil, s[i...]) }
    guard let end = CallSyntax.decorationEnd(s, from: i) else { return nil }
    return (pid, CallSyntax.string(s[(i + 1)..<(end - 1)]), s[end...])
  }

  /// Reads each argument's text, setting `-y`'s fd paths aside (by argument index).
  static func arguments(_ texts: [[UInt8]]) -> ([CallArgument], [Int: String]) {
    var paths: [Int: String] = [:]
    let arguments = texts.enumerated().map { (k, text) -> CallArgument in
      let t = CallSyntax.trimmed(text[...])
      if let d = CallSyntax.decoration(t) {
        paths[k] = d.text
        return CallSyntax.argument(Array(d.token))
      }
      return CallSyntax.argument(text)
    }
    return (arguments, paths)
  }

  /// One complete call line (prefix already removed).
  /// `ok 5a5a00`: a load's result with the bytes it read, in hex (an even number of digits).
  static func loadedBytes(_ s: ArraySlice<UInt8>) -> [UInt8]? {
    guard CallSyntax.hasPrefix(s, "ok ") else { return nil }
    let hex = Array(CallSyntax.trimmed(s.dropFirst(3)))
    guard !hex.isEmpty, hex.count % 2 == 0 else { return nil }
    var out: [UInt8] = []
    out.reserveCapacity(hex.count / 2)
    for i in stride(from: 0, to: hex.count, by: 2) {
      guard let hi = CallSyntax.hexDigit(hex[i]), let lo = CallSyntax.hexDigit(hex[i + 1]) else { return nil }
      out.append(hi << 4 | lo)
    }
    return out
  }

  private static func call(_ text: ArraySlice<UInt8>, pid: Int32?) throws(CallSyntax.SyntaxError) -> ScriptCall {
    let split = try CallSyntax.splitCall(text)
    guard let after = split.resultText else { throw .init("unfinished call") }
    var rest = CallSyntax.trimmed(after[...])
    guard rest.first == UInt8(ascii: "=") else { throw .init("expected '= result' after \(split.name)(…)") }
    rest = CallSyntax.stripTiming(rest.dropFirst())
    var annotation: String?
    if let d = CallSyntax.decoration(rest), CallSyntax.number(d.token) != nil {
      (rest, annotation) = (d.token, d.text)
    }
    var result = CallSyntax.result(rest)
    var loaded: [UInt8]?
    if split.name == "load", case .raw = result, let bytes = ScriptParser.loadedBytes(rest) {
      (result, loaded) = (.access(.ok), bytes)
    }
    let (arguments, fdPaths) = ScriptParser.arguments(split.arguments)
    let call = ScriptCall(
      pid: pid, name: split.name, arguments: arguments, result: result, fdPaths: fdPaths, resultAnnotation: annotation,
      loadedBytes: loaded)
    if case .maps = result, call.name != "maps" { throw .init("missing result after \(call.name)(…) =") }
    if call.name == "maps", result != .maps([]) { throw .init("maps() takes no result on its line: its lines follow") }
    do throws(Operation.DecodeError) {
      _ = try Operation.decode(call)
    } catch {
      throw .init(error.message)
    }
    return call
  }
}
