import Faultline
import Testing

@testable import FaultlineReplay

/// The strace line syntax: what each form reads into, the noise that is skipped, round trips
/// through the printer, and an error with a line number for every malformed line.
@Suite struct ParserTests {
  @Test func readsAnStraceMmapLineIntoItsParts() throws {
    let s = try ScriptParser.parse(
      "mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7fc0000\n")
    #expect(s.entries.count == 1)
    #expect(s.entries[0].line == 1)
    #expect(
      s.entries[0].call
        == ScriptCall(
          name: "mmap",
          arguments: [
            .null, .number(Number(8192)), .flags([.name("PROT_READ"), .name("PROT_WRITE")]),
            .flags([.name("MAP_PRIVATE"), .name("MAP_ANONYMOUS")]), .number(Number(1, negative: true)),
            .number(Number(0)),
          ],
          result: .value(.hex(0x7fff_f7fc_0000))))
    #expect(
      try Operation.decode(s.entries[0].call)
        == .mmap(addr: 0, length: 8192, prot: 3, flags: 0x22, fd: -1, offset: 0))
  }

  @Test func readsErrorsUnknownResultsTimingsAndNumberStyles() throws {
    let s = try ScriptParser.parse(
      """
      munmap(0x7ffff7fc0000, 4096) = -1 EINVAL (Invalid argument)
      mprotect(0x1000, 010, PROT_READ|0x10) = 0 <0.000012>
      exit_group(0) = ?
      madvise(0x2000, 4096, MADV_DONTNEED) = ? ERESTARTNOINTR (To be restarted)
      """)
    let calls = s.calls
    #expect(calls[0].result == .error(name: "EINVAL", message: "Invalid argument"))
    #expect(calls[1].arguments[1] == .number(Number(8, style: .octal)))
    #expect(calls[1].arguments[2] == .flags([.name("PROT_READ"), .number(.hex(0x10))]))
    #expect(try Operation.decode(calls[1]) == .mprotect(addr: 0x1000, length: 8, prot: 0x11))
    #expect(calls[1].result == .value(Number(0)))
    #expect(calls[2].result == .unknown(nil))
    #expect(try Operation.decode(calls[2]) == nil)
    #expect(calls[3].result == .unknown("ERESTARTNOINTR (To be restarted)"))
  }

  @Test func skipsStraceNoiseAndTakesPidPrefixesAndTimestamps() throws {
    let s = try ScriptParser.parse(
      """
      # a comment
      strace: Process 42 attached
      [pid    42] brk(NULL) = 0x555555559000

      1234  12:00:01.000001 munmap(0x1000, 4096) = 0
      --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x10} ---
      +++ exited with 0 +++
      1700000000.123456 brk(NULL) = 0x1000
      """)
    #expect(s.entries.map(\.line) == [3, 5, 8])
    #expect(s.calls.map(\.pid) == [42, 1234, nil])
    #expect(s.calls.map(\.name) == ["brk", "munmap", "brk"])
  }

  @Test func joinsUnfinishedAndResumedHalvesAtTheResumedLine() throws {
    let s = try ScriptParser.parse(
      """
      [pid  7] mmap(NULL, 16384, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>
      [pid  8] madvise(0x7ffff69c4000, 8368128, MADV_DONTNEED <unfinished ...>
      [pid  7] <... mmap resumed>)         = 0x7ffff71c5000
      [pid  8] <... madvise resumed>)      = 0
      [pid  7] munmap(0x7ffff7aeb000, 16384 <unfinished ...>
      [pid  8] +++ exited with 0 +++
      <... munmap resumed>)                   = 0
      [pid  7] clone3({flags=CLONE_VM|CLONE_THREAD, stack_size=0x7fff80}strace: Process 9 attached
       => {parent_tid=[9]}, 88) = 9
      [pid  9] mlock(0x1000, 4096 <unfinished ...>
      """)
    #expect(s.entries.map(\.line) == [3, 4, 7, 8, 10])
    #expect(s.calls[0].arguments.count == 6 && s.calls[0].result == .value(.hex(0x7fff_f71c_5000)))
    #expect(s.calls[1].name == "madvise" && s.calls[1].pid == 8)
    #expect(s.calls[2].name == "munmap" && s.calls[2].pid == 7)
    #expect(s.calls[3].name == "clone3" && s.calls[3].result == .value(Number(9)))
    #expect(try Operation.decode(s.calls[3]) == .clone(sharesVM: true))
    #expect(s.calls[4].unfinished && s.calls[4].result == .none)
  }

  @Test func readsPseudoCallsAndMapsBlocks() throws {
    let s = try ScriptParser.parse(
      """
      load(0x1000, 4096) = SIGSEGV
      store(0x2000, 1) = ok
      open("/data/f", O_RDWR|O_CREAT, 0644) = 3
      ftruncate(3, 8192) = 0
      close(3) = 0
      maps() = 
      00400000-00401000 r--p 00000000 00:00 0
      7ffff7ff0000-7ffff7ff2000 rw-p 00000000 00:00 0                          [heap]

      load(0x3000, 2) = SIGBUS
      """)
    let ops = try s.calls.map { try Operation.decode($0) }
    #expect(
      ops == [
        .load(addr: 0x1000, length: 4096), .store(addr: 0x2000, length: 1), .open(path: "/data/f", flags: 0o102),
        .ftruncate(fd: 3, length: 8192), .close(fd: 3), .maps, .load(addr: 0x3000, length: 2),
      ])
    #expect(s.calls[0].result == .access(.sigsegv))
    #expect(s.calls[6].result == .access(.sigbus))
    #expect(
      s.calls[5].result
        == .maps([
          "00400000-00401000 r--p 00000000 00:00 0",
          "7ffff7ff0000-7ffff7ff2000 rw-p 00000000 00:00 0                          [heap]",
        ]))
    #expect(s.entries.map(\.line) == [1, 2, 3, 4, 5, 6, 10])
  }

  @Test func canonicalTextPrintsBackByteForByte() throws {
    let text = """
      [pid  1234] mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7fc0000
      munmap(0x7ffff7fc0000, 4096) = -1 EINVAL (Invalid argument)
      mremap(0x1000, 4096, 8192, MREMAP_MAYMOVE|MREMAP_FIXED, 0x200000) = 0x200000
      mincore(0x1000, 8192, [1, 0, ...]) = 0
      mlock2(0x1000, 4096, MLOCK_ONFAULT) = 0
      open("/a \\"b\\"\\n\\x01", O_RDONLY) = -1 ENOENT (No such file or directory)
      arch_prctl(0x3001 /* ARCH_??? */, 0x7fffffffe0a0) = -1 EINVAL (Invalid argument)
      execve("/bin/true", ["/bin/true"], 0x7ffe /* 35 vars */) = 0
      exit_group(0) = ?
      load(0x1000, 0100) = ok
      maps() = 
      00400000-00401000 r--p 00000000 00:00 0

      store(0x1000, 1) = SIGBUS
      --- SIGBUS {si_signo=SIGBUS, si_code=BUS_ADRERR, si_addr=0x1000} ---
      [pid    42] load(0x2000, 1) = SIGSEGV
      [pid    42] --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_PKUERR, si_addr=NULL} ---
      pkey_alloc(0, PKEY_DISABLE_ACCESS|PKEY_DISABLE_WRITE) = 1
      pkey_mprotect(0x1000, 4096, PROT_READ, 1) = 0
      pkey_free(1) = -1 EINVAL (Invalid argument)
      wrpkru(0x55555554) = 0
      madvise(0x1000, 4096, 4) = 0
      mmap(0x1000, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>

      """
    let s = try ScriptParser.parse(text)
    #expect(ScriptPrinter.print(s) == text)
  }

  @Test(arguments: [
    "python3-c-pass.strace", "pyenv-shim-python3-c-pass.strace", "python3-threads.strace",
    "ls-y-i-n-X-verbose-Y-k.strace", "sh-ls-pipe-cat-tt-T-yy-i-n-Y.strace",
  ])
  func realLogsRoundTripThroughThePrinter(_ fixture: String) throws {
    let s = try ScriptParser.parse(try readFixture(fixture))
    let again = try ScriptParser.parse(ScriptPrinter.print(s))
    #expect(again.calls == s.calls)
    #expect(s.calls.count > 40)
  }

  /// A signal line right after a load or store that ended with that signal is its si_code and
  /// si_addr; any other (after another call, another pid, another signal, or without the
  /// fields) stays noise.
  @Test func aSignalLineBelongsToTheAccessBeforeIt() throws {
    let s = try ScriptParser.parse(
      """
      load(0x1000, 8) = SIGSEGV
      --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_PKUERR, si_addr=0x1004, si_pkey=1} ---
      --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x2000} ---
      store(0x2000, 1) = SIGBUS
      --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x2000} ---
      [pid 7] store(0x3000, 1) = SIGSEGV
      --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x3000} ---
      load(0x4000, 1) = ok
      --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x4000} ---
      munmap(0x5000, 4096) = 0
      --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x5000} ---
      load(0x6000, 1) = SIGSEGV
      --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR} ---
      load(0x7000, 1) = SIGSEGV
      --- SIGSEGV {si_signo=SIGSEGV, si_code=5, si_addr=NULL} ---
      """)
    #expect(s.calls.map(\.signal) == [
      SignalRecord(signal: "SIGSEGV", code: "SEGV_PKUERR", address: 0x1004), nil, nil, nil, nil, nil,
      SignalRecord(signal: "SIGSEGV", code: "5", address: 0),
    ])
    #expect(s.entries.map(\.line) == [1, 4, 6, 8, 10, 12, 14])
    let again = try ScriptParser.parse(ScriptPrinter.print(s))
    #expect(again.calls == s.calls)
  }

  /// Every malformed line is an error naming its line; parsing never traps.
  @Test(arguments: [
    ("brk(NULL) = 0x1000\nmmap(NULL, 4096 = 0x1000\n", 2, "missing ')'"),
    ("munmap(0x1000, 4096)\n", 1, "expected '= result'"),
    ("\n\nmunmap(0x1000, 4096) =\n", 3, "missing result"),
    ("mmap(NULL, 4096, PROT_BOGUS, MAP_PRIVATE, -1, 0) = 0\n", 1, "unknown flag PROT_BOGUS"),
    ("mprotect(0x1000, 4096) = 0\n", 1, "mprotect takes 3 arguments, not 2"),
    ("munmap(0x1ffffffffffffffff, 4096) = 0\n", 1, "argument 1 must be an address"),
    ("munmap(0x1000, \"x\") = 0\n", 1, "argument 2 must be a number"),
    ("load(0x1000, 1) = 0\n", 1, "must be ok, SIGSEGV or SIGBUS"),
    ("munmap(0x1000, 1) = SIGSEGV\n", 1, "the result must be a number"),
    ("munmap(0x1000, 1) = -1 EBOGUS (Nope)\n", 1, "unknown errno EBOGUS"),
    ("# c\n<... mmap resumed>) = 0\n", 2, "no unfinished mmap"),
    ("[pid 1] mmap(NULL <unfinished ...>\n[pid 1] <... munmap resumed>) = 0\n", 2, "resumes an unfinished mmap"),
    ("maps() = \nnot a maps line\n", 2, "not a /proc/self/maps line"),
    ("maps() = 0\n", 1, "maps() takes no result"),
    ("[pid x] brk(NULL) = 0\n", 1, "malformed '[pid N]'"),
    ("open(\"/a, O_RDONLY) = 3\n", 1, "unterminated string"),
    ("open(/a, O_RDONLY) = 3\n", 1, "complete quoted path"),
    ("f(a)) = 0\n", 1, "expected '= result'"),
    ("f(a]) = 0\n", 1, "unbalanced"),
    ("= 0\n", 1, "expected a call name"),
    ("mmap\n", 1, "expected '('"),
  ])
  func malformedLinesAreErrorsWithTheirLineNumber(_ text: String, _ line: Int, _ message: String) {
    let (_, errors) = ScriptParser.parseCollectingErrors(text)
    #expect(errors.count == 1)
    #expect(errors.first?.line == line)
    #expect(errors.first?.message.contains(message) == true, "\(errors)")
    #expect(throws: ReplayParseError.self) { try ScriptParser.parse(text) }
  }

  /// A fuzzer finding: `=<unfinished ...>` without the space read as a result, which printed
  /// back with the space and then read as an unfinished call.
  @Test func whatParsesPrintsToTextThatParsesTheSame() throws {
    let text = try readFixture("fuzz-unfinished-without-space.txt")
    let (s, errors) = ScriptParser.parseCollectingErrors(text)
    #expect(errors.contains { $0.line == 7 && $0.message.contains("resumes an unfinished clone3") }, "\(errors)")
    let (again, errors2) = ScriptParser.parseCollectingErrors(ScriptPrinter.print(s))
    #expect(errors2.isEmpty && again.calls == s.calls)
  }

  @Test func collectsEveryErrorAndKeepsTheGoodLines() {
    let (script, errors) = ScriptParser.parseCollectingErrors("brk(NULL) = 0x1000\nbad\nmunmap(0x1000) = 0\nbrk(NULL) = 0x1000\n")
    #expect(errors.map(\.line) == [2, 3])
    #expect(script.entries.map(\.line) == [1, 4])
  }
}
