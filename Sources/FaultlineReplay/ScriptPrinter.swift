/// Prints a script in strace's syntax, so that `ScriptParser.parse(print(s))` gives `s` back
/// (line numbers aside), and a script written in this canonical form prints byte for byte.
///
/// Canonical form: `[pid %5d] ` when the call has a pid (`[pid %5d<comm>] ` with its `-Y`
/// command), arguments joined by `, ` (an fd with its `-y` path as `3</path>`), one space on
/// each side of `=`, a result's annotation as `= 3</path>`, errors as `-1 ENAME (message)`, a load or store's signal line after it with
/// the same prefix, `maps() = ` followed by its lines and a blank line. Timings, comments and
/// strace's notes are not kept.
public enum ScriptPrinter {
  public static func print(_ script: ReplayScript) -> String {
    var out = ""
    for entry in script.entries { out += line(entry.call) + "\n" }
    return out
  }

  /// One call's text (several lines for `maps()`), without the final newline.
  public static func line(_ call: ScriptCall) -> String {
    var prefix = ""
    if let pid = call.pid {
      let digits = String(pid)
      prefix = "[pid " + String(repeating: " ", count: max(0, 5 - digits.count)) + digits
        + (call.comm.map { "<" + $0 + ">" } ?? "") + "] "
    }
    let arguments = call.arguments.enumerated().map { (k, a) in
      argument(a) + (call.fdPaths[k].map { "<" + $0 + ">" } ?? "")
    }
    var s = prefix + call.name + "(" + arguments.joined(separator: ", ")
    if call.unfinished { return s + " <unfinished ...>" }
    s += ") = " + result(call.result) + (call.resultAnnotation.map { "<" + $0 + ">" } ?? "")
    if let bytes = call.loadedBytes { s += " " + hex(bytes) }
    if let signal = call.signal {
      s += "\n" + prefix + signalLine(signal)
    }
    if case .maps(let lines) = call.result {
      for l in lines { s += "\n" + l }
      s += "\n"
    }
    return s
  }

  /// `--- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_PKUERR, si_addr=0x…} ---`.
  public static func signalLine(_ r: SignalRecord) -> String {
    let addr = r.address == 0 ? "NULL" : "0x" + String(r.address, radix: 16)
    return "--- \(r.signal) {si_signo=\(r.signal), si_code=\(r.code), si_addr=\(addr)} ---"
  }

  /// A call without its maps lines and signal line (for messages).
  public static func summary(_ call: ScriptCall) -> String {
    var c = call
    c.signal = nil
    if case .maps = c.result { c.result = .maps([]) }
    let text = line(c)
    return text.hasSuffix("\n") ? String(text.dropLast()) : text
  }

  public static func argument(_ a: CallArgument) -> String {
    switch a {
    case .null: return "NULL"
    case .number(let n): return number(n)
    case .flags(let atoms):
      return atoms.map { atom in
        switch atom {
        case .name(let n): n
        case .number(let n): number(n)
        }
      }.joined(separator: "|")
    case .string(let s, let truncated): return quote(s) + (truncated ? "..." : "")
    case .array(let items, let truncated):
      return "[" + (items.map(argument) + (truncated ? ["..."] : [])).joined(separator: ", ") + "]"
    case .raw(let text): return text
    }
  }

  public static func number(_ n: Number) -> String {
    let sign = n.negative ? "-" : ""
    switch n.style {
    case .decimal: return sign + String(n.magnitude)
    case .hex: return sign + "0x" + String(n.magnitude, radix: 16)
    case .octal: return sign + "0" + String(n.magnitude, radix: 8)
    }
  }

  public static func result(_ r: RecordedResult) -> String {
    switch r {
    case .value(let n): return number(n)
    case .error(let name, let message): return "-1 " + name + (message.map { " (" + $0 + ")" } ?? "")
    case .unknown(let rest): return "?" + (rest.map { " " + $0 } ?? "")
    case .access(let o): return o.rawValue
    case .maps: return ""
    case .raw(let text): return text
    case .none: return "?"
    }
  }

  /// Bytes as lower-case hex digits, two a byte.
  static func hex(_ bytes: [UInt8]) -> String {
    bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
  }

  /// A C string literal as strace writes it.
  static func quote(_ s: String) -> String {
    var out: [UInt8] = [UInt8(ascii: "\"")]
    for b in s.utf8 {
      switch b {
      case UInt8(ascii: "\""): out += Array("\\\"".utf8)
      case UInt8(ascii: "\\"): out += Array("\\\\".utf8)
      case 0x0A: out += Array("\\n".utf8)
      case 0x09: out += Array("\\t".utf8)
      case 0x0D: out += Array("\\r".utf8)
      case 0x0B: out += Array("\\v".utf8)
      case 0x0C: out += Array("\\f".utf8)
      case 0..<0x20, 0x7F:
        let h = String(b, radix: 16)
        out += Array(("\\x" + (h.count == 1 ? "0" + h : h)).utf8)
      default:
        out.append(b)
      }
    }
    out.append(UInt8(ascii: "\""))
    return String(decoding: out, as: UTF8.self)
  }
}
