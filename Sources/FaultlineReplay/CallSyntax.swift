/// strace's syntax for one call, read from bytes: `name(arg, arg, …) = result`, the argument
/// forms (numbers, flag expressions, strings, arrays, `NULL`) and the result forms.
///
/// Every function here is total: malformed input gives a `SyntaxError` message, never a trap.
/// Numbers are accumulated with overflow checks, and indices never leave the buffer.
enum CallSyntax {
  struct SyntaxError: Error {
    let message: String
    init(_ message: String) { self.message = message }
  }

  /// A call split at its top level: the name, each argument's text, and what follows the closing
  /// parenthesis (`nil` when the call is cut short by `<unfinished ...>`).
  struct SplitCall {
    var name: String
    var arguments: [[UInt8]]
    var resultText: [UInt8]?
  }

  /// strace writes it after a space; a line cut short by another note may lack the space.
  static let unfinishedMarker = Array("<unfinished ...>".utf8)

  // MARK: Characters

  static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0D }
  static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
  static func isIdentStart(_ c: UInt8) -> Bool { (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F }
  static func isIdent(_ c: UInt8) -> Bool { isIdentStart(c) || isDigit(c) }

  static func trimmed(_ s: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
    var lo = s.startIndex
    var hi = s.endIndex
    while lo < hi && isSpace(s[lo]) { lo += 1 }
    while hi > lo && isSpace(s[hi - 1]) { hi -= 1 }
    return s[lo..<hi]
  }

  static func string(_ bytes: some Collection<UInt8>) -> String { String(decoding: bytes, as: UTF8.self) }

  static func hasPrefix(_ s: ArraySlice<UInt8>, _ p: String) -> Bool { s.starts(with: p.utf8) }

  // MARK: Call

  /// Splits `name(args) rest`. `allowUnfinished`: the text may end in `<unfinished ...>` before the
  /// closing parenthesis.
  static func splitCall(_ text: ArraySlice<UInt8>) throws(SyntaxError) -> SplitCall {
    var s = trimmed(text)
    var unfinished = false
    if s.count >= unfinishedMarker.count && s.suffix(unfinishedMarker.count).elementsEqual(unfinishedMarker) {
      unfinished = true
      s = trimmed(s.dropLast(unfinishedMarker.count))
    }
    var i = s.startIndex
    guard i < s.endIndex, isIdentStart(s[i]) else { throw SyntaxError("expected a call name") }
    while i < s.endIndex && isIdent(s[i]) { i += 1 }
    let name = string(s[s.startIndex..<i])
    guard i < s.endIndex, s[i] == UInt8(ascii: "(") else { throw SyntaxError("expected '(' after \(name)") }
    i += 1
    var args: [[UInt8]] = []
    var depth: [UInt8] = []
    var argStart = i
    var closed = false
    while i < s.endIndex {
      let c = s[i]
      if c == UInt8(ascii: "\"") {
        i = try skipString(s, from: i)
        continue
      }
      if c == UInt8(ascii: "/"), i + 1 < s.endIndex, s[i + 1] == UInt8(ascii: "*") {
        i = try skipComment(s, from: i)
        continue
      }
      // `3</a, b>` (-y): a path may hold commas and brackets.
      if c == UInt8(ascii: "<"), i > argStart, isIdent(s[i - 1]), let end = decorationEnd(s, from: i) {
        i = end
        continue
      }
      switch c {
      case UInt8(ascii: "("), UInt8(ascii: "["), UInt8(ascii: "{"):
        depth.append(c)
      case UInt8(ascii: ")"), UInt8(ascii: "]"), UInt8(ascii: "}"):
        if depth.isEmpty {
          guard c == UInt8(ascii: ")") else { throw SyntaxError("unbalanced '\(Character(Unicode.Scalar(c)))'") }
          closed = true
        } else {
          let open = depth.removeLast()
          let want: UInt8 = open == UInt8(ascii: "(") ? UInt8(ascii: ")") : open == UInt8(ascii: "[") ? UInt8(ascii: "]") : UInt8(ascii: "}")
          if c != want { throw SyntaxError("unbalanced '\(Character(Unicode.Scalar(c)))'") }
        }
      case UInt8(ascii: ","):
        if depth.isEmpty {
          args.append(Array(trimmed(s[argStart..<i])))
          argStart = i + 1
        }
      default:
        break
      }
      if closed { break }
      i += 1
    }
    if !closed && !unfinished { throw SyntaxError("missing ')' closing the arguments of \(name)") }
    if closed && unfinished { throw SyntaxError("text after ')' of an unfinished call") }
    let last = trimmed(s[argStart..<i])
    if !last.isEmpty || !args.isEmpty { args.append(Array(last)) }
    if unfinished {
      if !depth.isEmpty { throw SyntaxError("unbalanced brackets in an unfinished call") }
      return SplitCall(name: name, arguments: args, resultText: nil)
    }
    return SplitCall(name: name, arguments: args, resultText: Array(s[(i + 1)...]))
  }

  /// The index after the closing quote of the string starting at `from` (and after a `...`
  /// truncation mark).
  static func skipString(_ s: ArraySlice<UInt8>, from: Int) throws(SyntaxError) -> Int {
    var i = from + 1
    while i < s.endIndex {
      if s[i] == UInt8(ascii: "\\") {
        i += 2
        continue
      }
      if s[i] == UInt8(ascii: "\"") {
        i += 1
        if s[i...].starts(with: "...".utf8) { i += 3 }
        return i
      }
      i += 1
    }
    throw SyntaxError("unterminated string")
  }

  static func skipComment(_ s: ArraySlice<UInt8>, from: Int) throws(SyntaxError) -> Int {
    var i = from + 2
    while i + 1 < s.endIndex {
      if s[i] == UInt8(ascii: "*") && s[i + 1] == UInt8(ascii: "/") { return i + 2 }
      i += 1
    }
    throw SyntaxError("unterminated comment")
  }

  // MARK: Decorations

  /// Splits a token strace decorated with angle brackets into the token and the text between
  /// them: an fd with its path (`-y`: `3</usr/lib/libc.so.6>`; `-yy`: `3<TCP:[1521176]>`,
  /// `1</dev/pts/0<char 136:0>>`; also `AT_FDCWD</tmp>`), or a pid with its command (`-Y`:
  /// `30980<sh>`). strace 6.1 prints a deleted file's mark after the brackets
  /// (`5</memfd:name>(deleted)`); the text is then the link's own, `/memfd:name (deleted)`.
  /// The text keeps strace's escapes. `nil` when `s` is not of this form.
  static func decoration(_ s: ArraySlice<UInt8>) -> (token: ArraySlice<UInt8>, text: String)? {
    guard let open = s.firstIndex(of: UInt8(ascii: "<")), open > s.startIndex,
      s[s.startIndex..<open].allSatisfy({ isIdent($0) || $0 == UInt8(ascii: "-") }),
      let end = decorationEnd(s, from: open)
    else { return nil }
    var text = string(s[(open + 1)..<(end - 1)])
    let after = s[end...]
    if after.elementsEqual("(deleted)".utf8) {
      text += " (deleted)"
    } else if !after.isEmpty {
      return nil
    }
    return (s[s.startIndex..<open], text)
  }

  /// The index after the `>` that closes the `<` at `from`, or `nil`. A path (`/…`) may
  /// nest a device's `<char 136:0>`; other texts are strace's `TYPE:[…]` forms, whose brackets
  /// may hold `->` and quoted socket paths. A backslash escapes the byte after it.
  static func decorationEnd(_ s: ArraySlice<UInt8>, from: Int) -> Int? {
    let isPath = from + 1 < s.endIndex && s[from + 1] == UInt8(ascii: "/")
    var angles = 0
    var brackets = 0
    var i = from
    while i < s.endIndex {
      let c = s[i]
      if c == UInt8(ascii: "\\") {
        i += 2
        continue
      }
      if !isPath {
        if c == UInt8(ascii: "[") {
          brackets += 1
        } else if c == UInt8(ascii: "]") {
          brackets = max(0, brackets - 1)
        } else if c == UInt8(ascii: "\""), brackets > 0 {
          guard let next = try? skipString(s, from: i) else { return nil }
          i = next
          continue
        }
      }
      if brackets == 0 {
        if c == UInt8(ascii: "<") {
          angles += 1
        } else if c == UInt8(ascii: ">") {
          angles -= 1
          if angles == 0 { return i + 1 }
        }
      }
      i += 1
    }
    return nil
  }

  /// `s` without its `/* … */` comments (`-X verbose`: `0x3 /* PROT_READ|PROT_WRITE */`; and the
  /// comment strace writes for a value it has no name for: `0x8 /* MAP_??? */`); `nil` when it
  /// has none or one is not closed.
  static func withoutComments(_ s: ArraySlice<UInt8>) -> [UInt8]? {
    guard find("/*", in: s) != nil else { return nil }
    var out: [UInt8] = []
    var i = s.startIndex
    while i < s.endIndex {
      if s[i] == UInt8(ascii: "/"), i + 1 < s.endIndex, s[i + 1] == UInt8(ascii: "*") {
        guard let end = try? skipComment(s, from: i) else { return nil }
        i = end
        continue
      }
      out.append(s[i])
      i += 1
    }
    return out
  }

  /// What a number or flags argument with strace's comments means (`-X verbose`'s
  /// `0x3 /* PROT_READ|PROT_WRITE */` is 0x3; `0x8 /* MAP_??? */|MAP_ANONYMOUS` is 0x8 and a
  /// name): the comment only names the value. `nil` for other text. The parser keeps such an
  /// argument `.raw`, so that it prints back as written; decoding reads it through this.
  static func uncommented(_ text: String) -> CallArgument? {
    let s = trimmed(Array(text.utf8)[...])
    guard let first = s.first, isDigit(first) || isIdentStart(first), let bare = withoutComments(s) else { return nil }
    let t = trimmed(bare[...])
    if let n = number(t) { return .number(n) }
    if let atoms = flags(t, requireName: false) { return .flags(atoms) }
    return nil
  }

  /// Whether `needle` occurs in `s`.
  static func find(_ needle: String, in s: ArraySlice<UInt8>) -> Int? {
    ScriptParser.find(Array(needle.utf8), in: s)
  }

  // MARK: Arguments

  /// Reads one argument's text into its typed form; text that is none of the typed forms is kept
  /// as `.raw`.
  static func argument(_ text: [UInt8]) -> CallArgument {
    let s = trimmed(text[...])
    if s.elementsEqual("NULL".utf8) { return .null }
    if let n = number(s) { return .number(n) }
    if let atoms = flags(s) { return .flags(atoms) }
    if let first = s.first, first == UInt8(ascii: "\""), let (str, truncated) = quoted(s) {
      return .string(str, truncated: truncated)
    }
    if let first = s.first, first == UInt8(ascii: "["), let arr = array(s) { return arr }
    return .raw(string(s))
  }

  /// A whole token that is a number: `-?` then `0x` hex, `0` octal, or decimal.
  static func number(_ s: ArraySlice<UInt8>) -> Number? {
    var i = s.startIndex
    var negative = false
    if i < s.endIndex && s[i] == UInt8(ascii: "-") {
      negative = true
      i += 1
    }
    guard i < s.endIndex, isDigit(s[i]) else { return nil }
    var radix: UInt64 = 10
    var style = NumberStyle.decimal
    if s[i] == UInt8(ascii: "0"), i + 1 < s.endIndex {
      if s[i + 1] == UInt8(ascii: "x") || s[i + 1] == UInt8(ascii: "X") {
        radix = 16
        style = .hex
        i += 2
        if i == s.endIndex { return nil }
      } else {
        radix = 8
        style = .octal
        i += 1
      }
    }
    var v: UInt64 = 0
    while i < s.endIndex {
      let c = s[i]
      let d: UInt64
      if isDigit(c) {
        d = UInt64(c - 0x30)
      } else if c >= UInt8(ascii: "a") && c <= UInt8(ascii: "f") {
        d = UInt64(c - UInt8(ascii: "a") + 10)
      } else if c >= UInt8(ascii: "A") && c <= UInt8(ascii: "F") {
        d = UInt64(c - UInt8(ascii: "A") + 10)
      } else {
        return nil
      }
      if d >= radix { return nil }
      let (m, o1) = v.multipliedReportingOverflow(by: radix)
      let (a, o2) = m.addingReportingOverflow(d)
      if o1 || o2 { return nil }
      v = a
      i += 1
    }
    return Number(v, negative: negative, style: style)
  }

  /// `A|B|0x10`: identifiers and numbers joined by `|`, with at least one identifier (a lone
  /// number is a `.number`) unless `requireName` is false.
  static func flags(_ s: ArraySlice<UInt8>, requireName: Bool = true) -> [FlagAtom]? {
    guard !s.isEmpty else { return nil }
    var atoms: [FlagAtom] = []
    var sawName = false
    for part in s.split(separator: UInt8(ascii: "|"), omittingEmptySubsequences: false) {
      let p = trimmed(part)
      if let first = p.first, isIdentStart(first), p.allSatisfy(isIdent) {
        atoms.append(.name(string(p)))
        sawName = true
      } else if let n = number(p) {
        atoms.append(.number(n))
      } else if let n = shifted(p) {
        atoms.append(.number(n))
        sawName = true
      } else {
        return nil
      }
    }
    return sawName || !requireName ? atoms : nil
  }

  /// The shifts strace prints inside flags, by name: `MAP_HUGE_SHIFT`, for a huge page size it
  /// has no `MAP_HUGE_*` name for (`21<<MAP_HUGE_SHIFT`).
  static let shiftNames: [String: UInt64] = ["MAP_HUGE_SHIFT": 26]

  /// `N<<NAME`: `N` shifted by the named shift; nil for anything else or a value that overflows.
  static func shifted(_ p: ArraySlice<UInt8>) -> Number? {
    let lt = UInt8(ascii: "<")
    guard let at = p.firstIndex(of: lt), p.index(after: at) < p.endIndex, p[p.index(after: at)] == lt,
      let n = number(p[p.startIndex..<at]), !n.negative,
      let shift = shiftNames[string(p[p.index(at, offsetBy: 2)...])], n.magnitude <= UInt64.max >> shift
    else { return nil }
    return Number(n.magnitude << shift, style: .hex)
  }

  /// A quoted string with C escapes, optionally followed by `...`; the whole token.
  static func quoted(_ s: ArraySlice<UInt8>) -> (String, Bool)? {
    var bytes: [UInt8] = []
    var i = s.startIndex + 1
    while i < s.endIndex {
      let c = s[i]
      if c == UInt8(ascii: "\"") {
        let rest = s[(i + 1)...]
        if rest.isEmpty { return (string(bytes), false) }
        if rest.elementsEqual("...".utf8) { return (string(bytes), true) }
        return nil
      }
      if c != UInt8(ascii: "\\") {
        bytes.append(c)
        i += 1
        continue
      }
      i += 1
      guard i < s.endIndex else { return nil }
      let e = s[i]
      switch e {
      case UInt8(ascii: "n"): bytes.append(0x0A)
      case UInt8(ascii: "t"): bytes.append(0x09)
      case UInt8(ascii: "r"): bytes.append(0x0D)
      case UInt8(ascii: "v"): bytes.append(0x0B)
      case UInt8(ascii: "f"): bytes.append(0x0C)
      case UInt8(ascii: "a"): bytes.append(0x07)
      case UInt8(ascii: "b"): bytes.append(0x08)
      case UInt8(ascii: "x"):
        var v: UInt8 = 0
        var n = 0
        while n < 2, i + 1 < s.endIndex, let d = hexDigit(s[i + 1]) {
          v = v &* 16 &+ d
          i += 1
          n += 1
        }
        if n == 0 { return nil }
        bytes.append(v)
      case UInt8(ascii: "0")...UInt8(ascii: "7"):
        var v: UInt32 = UInt32(e - 0x30)
        var n = 1
        while n < 3, i + 1 < s.endIndex, s[i + 1] >= 0x30 && s[i + 1] <= 0x37 {
          v = v * 8 + UInt32(s[i + 1] - 0x30)
          i += 1
          n += 1
        }
        bytes.append(UInt8(truncatingIfNeeded: v))
      default:
        bytes.append(e)
      }
      i += 1
    }
    return nil
  }

  static func hexDigit(_ c: UInt8) -> UInt8? {
    if isDigit(c) { return c - 0x30 }
    if c >= UInt8(ascii: "a") && c <= UInt8(ascii: "f") { return c - UInt8(ascii: "a") + 10 }
    if c >= UInt8(ascii: "A") && c <= UInt8(ascii: "F") { return c - UInt8(ascii: "A") + 10 }
    return nil
  }

  /// `[a, b, ...]`: the elements split at the top level; a last `...` marks truncation.
  static func array(_ s: ArraySlice<UInt8>) -> CallArgument? {
    guard s.count >= 2, s.last == UInt8(ascii: "]") else { return nil }
    let inner = s.dropFirst().dropLast()
    guard let parts = splitTopLevel(inner) else { return nil }
    var items: [CallArgument] = []
    var truncated = false
    for (k, p) in parts.enumerated() {
      let t = trimmed(p[...])
      if t.elementsEqual("...".utf8) && k == parts.count - 1 {
        truncated = true
        continue
      }
      if t.isEmpty { return parts.count == 1 ? .array([], truncated: false) : nil }
      items.append(argument(Array(t)))
    }
    return .array(items, truncated: truncated)
  }

  /// Splits at commas outside strings and brackets; `nil` when brackets do not balance.
  static func splitTopLevel(_ s: ArraySlice<UInt8>) -> [[UInt8]]? {
    var parts: [[UInt8]] = []
    var depth = 0
    var start = s.startIndex
    var i = s.startIndex
    while i < s.endIndex {
      let c = s[i]
      if c == UInt8(ascii: "\"") {
        guard let next = try? skipString(s, from: i) else { return nil }
        i = next
        continue
      }
      if c == UInt8(ascii: "(") || c == UInt8(ascii: "[") || c == UInt8(ascii: "{") { depth += 1 }
      if c == UInt8(ascii: ")") || c == UInt8(ascii: "]") || c == UInt8(ascii: "}") {
        depth -= 1
        if depth < 0 { return nil }
      }
      if c == UInt8(ascii: ","), depth == 0 {
        parts.append(Array(s[start..<i]))
        start = i + 1
      }
      i += 1
    }
    if depth != 0 { return nil }
    parts.append(Array(s[start..<s.endIndex]))
    return parts
  }

  // MARK: Results

  /// Reads what follows ` = ` (timing already removed). `kind` says which forms the call may
  /// have; text that fits none of them is kept `.raw` (unmodelled calls) or refused.
  static func result(_ text: ArraySlice<UInt8>) -> RecordedResult {
    let s = trimmed(text)
    if s.isEmpty { return .maps([]) }
    if s.first == UInt8(ascii: "?") {
      let rest = trimmed(s.dropFirst())
      return .unknown(rest.isEmpty ? nil : string(rest))
    }
    if let n = number(s) { return .value(n) }
    for o in AccessOutcome.allCases where s.elementsEqual(o.rawValue.utf8) { return .access(o) }
    // -1 ENAME (message)
    if s.starts(with: "-1 ".utf8) {
      let rest = trimmed(s.dropFirst(3))
      var i = rest.startIndex
      while i < rest.endIndex && isIdent(rest[i]) { i += 1 }
      let name = rest[rest.startIndex..<i]
      if let f = name.first, f == UInt8(ascii: "E"), name.count > 1 {
        let tail = trimmed(rest[i...])
        if tail.isEmpty { return .error(name: string(name), message: nil) }
        if tail.first == UInt8(ascii: "("), tail.last == UInt8(ascii: ")") {
          return .error(name: string(name), message: string(tail.dropFirst().dropLast()))
        }
      }
    }
    return .raw(string(s))
  }

  /// Removes a trailing `<0.000012>` (strace -T).
  static func stripTiming(_ s: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
    let t = trimmed(s)
    guard t.last == UInt8(ascii: ">"), let open = t.lastIndex(of: UInt8(ascii: "<")) else { return t }
    let inner = t[(open + 1)..<(t.endIndex - 1)]
    guard !inner.isEmpty, inner.allSatisfy({ isDigit($0) || $0 == UInt8(ascii: ".") }) else { return t }
    return trimmed(t[t.startIndex..<open])
  }
}
