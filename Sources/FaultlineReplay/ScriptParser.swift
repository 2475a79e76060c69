/// Reads a replay script: strace's line syntax (`strace -f` logs replay unchanged) plus the
/// pseudo-calls `load`, `store`, `maps`, `open`, `ftruncate`, `close` and `wrpkru`.
///
/// Per line, in order:
/// - blank lines, `#` comments, `+++ exited … +++`, `strace: …` and `[ Process … ]` notes are
///   skipped;
/// - a pid prefix is taken off: `[pid  1234] ` (strace -f on stderr) or `1234  ` (strace -f -o);
///   then a timestamp (`-t`, `-tt`, `-ttt`, `-r`: a number with `:` or `.`);
/// - `--- SIGSEGV {si_signo=…, si_code=…, si_addr=…} ---` right after a load or store of the
///   same pid that ended with that signal is its `ScriptCall.signal`; any other signal line is
///   skipped;
/// - `name(args <unfinished ...>` waits for its `<... name resumed>rest` on the same pid; the
///   joined call takes the resumed line's number, where its result is. One that never resumes
///   is kept as unfinished (the executor skips it);
/// - `name(args) = result`, less a trailing `<0.000012>`;
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

  private struct Pending {
    var line: Int
    var head: [UInt8]
  }

  private struct State {
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
      if s.isEmpty || s.first == UInt8(ascii: "#") { return }
      if CallSyntax.hasPrefix(s, "strace: ") || CallSyntax.hasPrefix(s, "[ Process ") { return }
      let pid: Int32?
      do throws(CallSyntax.SyntaxError) {
        (pid, s) = try ScriptParser.takePrefix(s)
      } catch {
        errors.append(ReplayParseError(line: lineNo, message: error.message))
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
      } else if s.count >= CallSyntax.unfinishedMarker.count,
        s.suffix(CallSyntax.unfinishedMarker.count).elementsEqual(CallSyntax.unfinishedMarker)
      {
        if let old = pending.removeValue(forKey: key) { emitUnfinished(old, pid: pid) }
        pending[key] = Pending(line: lineNo, head: Array(CallSyntax.trimmed(s.dropLast(CallSyntax.unfinishedMarker.count))))
        return
      }
      do throws(CallSyntax.SyntaxError) {
        let call = try ScriptParser.call(text[...], pid: callPid)
        entries.append(ScriptEntry(line: start, call: call))
        if call.name == "maps" { mapsEntry = entries.count - 1 }
      } catch {
        errors.append(ReplayParseError(line: lineNo, message: error.message))
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
        let call = ScriptCall(
          pid: pid, name: split.name, arguments: split.arguments.map(CallSyntax.argument), result: .none,
          unfinished: true)
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

  /// Takes `[pid  N] ` or `N  ` and a timestamp off the front of a line.
  private static func takePrefix(_ s: ArraySlice<UInt8>) throws(CallSyntax.SyntaxError) -> (Int32?, ArraySlice<UInt8>) {
    var rest = s
    var pid: Int32?
    if CallSyntax.hasPrefix(rest, "[pid") {
      guard let close = rest.firstIndex(of: UInt8(ascii: "]")) else { throw .init("malformed '[pid N]' prefix") }
      let digits = CallSyntax.trimmed(rest[(rest.startIndex + 4)..<close])
      guard let n = CallSyntax.number(digits), n.style == .decimal, !n.negative, let p = Int32(exactly: n.magnitude)
      else { throw .init("malformed '[pid N]' prefix") }
      pid = p
      rest = CallSyntax.trimmed(rest[(close + 1)...])
    } else if let first = rest.first, CallSyntax.isDigit(first) {
      // `1234  call(...)` (strace -f -o FILE): digits, then spaces, then not a timestamp.
      var i = rest.startIndex
      while i < rest.endIndex && CallSyntax.isDigit(rest[i]) { i += 1 }
      if i < rest.endIndex && CallSyntax.isSpace(rest[i]) {
        guard let n = CallSyntax.number(rest[rest.startIndex..<i]), let p = Int32(exactly: n.magnitude) else {
          throw .init("pid out of range")
        }
        pid = p
        rest = CallSyntax.trimmed(rest[i...])
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
    return (pid, rest)
  }

  /// One complete call line (prefix already removed).
  private static func call(_ text: ArraySlice<UInt8>, pid: Int32?) throws(CallSyntax.SyntaxError) -> ScriptCall {
    let split = try CallSyntax.splitCall(text)
    guard let after = split.resultText else { throw .init("unfinished call") }
    var rest = CallSyntax.trimmed(after[...])
    guard rest.first == UInt8(ascii: "=") else { throw .init("expected '= result' after \(split.name)(…)") }
    rest = CallSyntax.stripTiming(rest.dropFirst())
    let result = CallSyntax.result(rest)
    let call = ScriptCall(pid: pid, name: split.name, arguments: split.arguments.map(CallSyntax.argument), result: result)
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
