import Faultline
import Testing

@testable import FaultlineReplay

/// Every output option strace has reads: the lines below are strace 6.1's own (the fixtures'
/// README says how they were recorded), one option at a time, then whole logs with all of them.
@Suite struct StraceOutputOptionTests {
  /// The one call `line` holds, failing the test when it holds none or an error.
  func only(_ line: String) throws -> ScriptCall {
    let (script, errors) = ScriptParser.parseCollectingErrors(line + "\n")
    #expect(errors.isEmpty, "\(errors)")
    #expect(script.entries.count == 1)
    return try #require(script.entries.first).call
  }

  // MARK: -y, -yy, --decode-fds

  @Test func anFDArgumentWithItsPathIsTheNumberAndThePathIsKept() throws {
    let c = try only(
      "mmap(NULL, 186064, PROT_READ, MAP_PRIVATE|MAP_DENYWRITE, 3</usr/lib/x86_64-linux-gnu/libselinux.so.1>, 0) = 0x7ffff7f88000"
    )
    #expect(c.arguments[4] == .number(Number(3)))
    #expect(c.fdPaths == [4: "/usr/lib/x86_64-linux-gnu/libselinux.so.1"])
    #expect(try Operation.decode(c) == .mmap(addr: 0, length: 186064, prot: 1, flags: 0x802, fd: 3, offset: 0))
  }

  @Test(arguments: [
    ("close(3<TCP:[1521176]>) = 0", "TCP:[1521176]"),
    ("close(3<TCP:[127.0.0.1:41234->127.0.0.1:80]>) = 0", "TCP:[127.0.0.1:41234->127.0.0.1:80]"),
    ("close(4<anon_inode:[eventfd]>) = 0", "anon_inode:[eventfd]"),
    ("close(3<pipe:[1526294]>) = 0", "pipe:[1526294]"),
    ("close(5<UNIX-STREAM:[1526294,\"/run/a, b.sock\"]>) = 0", "UNIX-STREAM:[1526294,\"/run/a, b.sock\"]"),
    ("close(1</dev/pts/0<char 136:0>>) = 0", "/dev/pts/0<char 136:0>"),
    // strace 6.1 prints a deleted file's mark after the brackets; later ones inside.
    ("close(5</memfd:name>(deleted)) = 0", "/memfd:name (deleted)"),
    ("close(3</memfd:name (deleted)>) = 0", "/memfd:name (deleted)"),
    ("close(3</tmp/a, (b \\x3e c>) = 0", "/tmp/a, (b \\x3e c"),
  ])
  func everyKindOfFDTextIsKeptWhole(_ line: String, _ text: String) throws {
    let c = try only(line)
    #expect(c.arguments.count == 1 && c.fdPaths == [0: text])
    let fd = Int32(String(line.dropFirst(6).prefix { $0.isNumber }))
    #expect(try Operation.decode(c) == .close(fd: try #require(fd)))
  }

  @Test func aResultFDWithItsPathAndADirFDNameWithItsPath() throws {
    let c = try only(
      "openat(AT_FDCWD</tmp>, \"/etc/ld.so.cache\", O_RDONLY|O_CLOEXEC) = 3</etc/ld.so.cache> <0.000016>")
    #expect(c.arguments[0] == .flags([.name("AT_FDCWD")]) && c.fdPaths == [0: "/tmp"])
    #expect(c.result == .value(Number(3)) && c.resultAnnotation == "/etc/ld.so.cache")
    let memfd = try only("memfd_create(\"name\", 0x1 /* MFD_CLOEXEC */) = 5</memfd:name>(deleted) <0.000062>")
    #expect(memfd.result == .value(Number(5)) && memfd.resultAnnotation == "/memfd:name (deleted)")
  }

  // MARK: -i, -n, with the pid, -Y and timestamps

  /// strace prints the pid (with -Y's command), then the timestamp, then -n's number, then -i's
  /// instruction pointer (`printleader`).
  @Test(arguments: [
    ("[pid 30980<ls>] 13:45:06.628162 [  12] [00007ffff7fe9c47] brk(NULL) = 0x55555557a000 <0.000096>", 30980, "ls"),
    ("30971<ls> [  12] [00007ffff7fe9c47] brk(NULL) = 0x55555557a000", 30971, "ls"),
    ("19577<ls> brk(NULL) = 0x55555557a000", 19577, "ls"),
    ("[pid   577] 1796305482.210297 [  12] brk(NULL) = 0x55555557a000", 577, nil),
    ("577   [00007ffff7fe9c47] brk(NULL) = 0x55555557a000", 577, nil),
    ("[  12] [00007ffff7fe9c47] brk(NULL) = 0x55555557a000", nil, nil),
    ("13:45:06.628162 [00007ffff7fe9c47] brk(NULL) = 0x55555557a000", nil, nil),
    ("[x32:  45] [00007ffff7fe9c47] brk(NULL) = 0x55555557a000", nil, nil),
  ] as [(String, Int32?, String?)])
  func theLinePrefixesComeOffInStracesOrder(_ line: String, _ pid: Int32?, _ comm: String?) throws {
    let c = try only(line)
    #expect(c.pid == pid && c.comm == comm)
    #expect(try Operation.decode(c) == .brk(0))
    #expect(c.result == .value(.hex(0x5555_5557_a000)))
  }

  @Test func aCloneResultWithTheChildsCommandIsThePid() throws {
    let c = try only(
      "13:45:06.627069 [  56] [00007ffff7ea8353] clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7ffff7dd1a10) = 30980<sh> <0.000092>"
    )
    #expect(c.result == .value(Number(30980)) && c.resultAnnotation == "sh")
    #expect(try Operation.decode(c) == .clone(sharesVM: false))
  }

  // MARK: -X verbose and unnamed flags

  @Test func verboseNumbersAreTheirValues() throws {
    let c = try only(
      "mmap(NULL, 8192, 0x3 /* PROT_READ|PROT_WRITE */, 0x22 /* MAP_PRIVATE|MAP_ANONYMOUS */, -1, 0) = 0x7ffff7fc0000")
    #expect(try Operation.decode(c) == .mmap(addr: 0, length: 8192, prot: 3, flags: 0x22, fd: -1, offset: 0))
  }

  /// strace 6.1 has no name for MAP_DROPPABLE (0x08) nor for advice 0x63.
  @Test func aFlagStraceCannotNameIsItsNumber() throws {
    let m = try only("mmap(NULL, 4096, PROT_READ|PROT_WRITE, 0x8 /* MAP_??? */|MAP_ANONYMOUS, -1, 0) = 0x7ffff7fbf000")
    #expect(try Operation.decode(m) == .mmap(addr: 0, length: 4096, prot: 3, flags: 0x28, fd: -1, offset: 0))
    let a = try only("madvise(0x7ffff7fc0000, 4096, 0x63 /* MADV_??? */) = -1 EINVAL (Invalid argument)")
    #expect(try Operation.decode(a) == .madvise(addr: 0x7fff_f7fc_0000, length: 4096, advice: 0x63))
    // Each part of a set may carry its own comment; the text is kept as written (it prints back
    // byte for byte) and reads as the numbers.
    let s = try only("socket(0x2 /* AF_INET */, 0x1 /* SOCK_STREAM */|0x80000 /* SOCK_CLOEXEC */, 0 /* IPPROTO_IP */) = 3")
    #expect(s.arguments[1] == .raw("0x1 /* SOCK_STREAM */|0x80000 /* SOCK_CLOEXEC */"))
    #expect(CallSyntax.uncommented("0x1 /* SOCK_STREAM */|0x80000 /* SOCK_CLOEXEC */") == .flags([.number(.hex(1)), .number(.hex(0x80000))]))
    #expect(CallSyntax.uncommented("0 /* IPPROTO_IP */") == .number(Number(0)))
    #expect(CallSyntax.uncommented("{st_mode=S_IFREG|0644, ...}") == nil)
  }

  // MARK: -k, strace -p, exits and signals

  @Test func stackTraceLinesAreSkipped() throws {
    let (script, errors) = ScriptParser.parseCollectingErrors(
      """
      30971<ls> [   9] [00007ffff7feaca3] mmap(NULL, 8192, 0x3 /* PROT_READ|PROT_WRITE */, 0x22 /* MAP_PRIVATE|MAP_ANONYMOUS */, -1, 0) = 0x7ffff7fc0000
       > /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2(_dl_catch_error+0x8823) [0x20ca3]
       > /lib/x86_64-linux-gnu/libc.so.6(mmap64+0x2a) [0x11ba2a]
      30971<ls> [  11] [00007ffff7feace7] munmap(0x7ffff7fc0000, 8192) = 0
       > /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2(_dl_catch_error+0x8867) [0x20ce7]

      """)
    #expect(errors.isEmpty, "\(errors)")
    #expect(script.entries.map(\.line) == [1, 4])
  }

  @Test func aCallCutShortByDetachingStaysUnfinished() throws {
    let (script, errors) = ScriptParser.parseCollectingErrors(
      """
      [  11] [00007ffff7b1fa07] munmap(0x7ffff7688000, 65536) = 0
      [ 270] [00007ffff7b1c954] pselect6(0, NULL, NULL, NULL, {tv_sec=0, tv_nsec=50000000}, NULL <detached ...>
      [pid  7] mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>
      [pid  7] <... mmap resumed> <detached ...>
       <detached ...>

      """)
    #expect(errors.isEmpty, "\(errors)")
    #expect(script.calls.map(\.name) == ["munmap", "pselect6", "mmap"])
    #expect(script.calls.map(\.unfinished) == [false, true, true])
  }

  @Test func exitAndSignalLinesWithEveryPrefixAreSkipped() throws {
    let (script, errors) = ScriptParser.parseCollectingErrors(
      """
      30971<ls> [ 231] [00007ffff7e7a409] exit_group(0) = ?
      30971<ls> [ 231] [????????????????] +++ exited with 0 +++
      13:44:53.737849 [   0] [00007f4d2be9a2ad] --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=30692<bash>, si_uid=0, si_status=0, si_utime=0, si_stime=0} ---
      [pid 30692<bash>] 13:44:53.737835 [ 231] [????????????????] +++ killed by SIGKILL +++

      """)
    #expect(errors.isEmpty, "\(errors)")
    #expect(script.calls.map(\.name) == ["exit_group"])
  }

  // MARK: Lines that do not read

  @Test func aGarbageLineInTheMiddleIsSkippedWithItsReasonAndTheRestReplays() throws {
    let r = try replay(
      """
      mmap(NULL, 8192, 0x3 /* PROT_READ|PROT_WRITE */, 0x22 /* MAP_PRIVATE|MAP_ANONYMOUS */, -1, 0) = 0x7ffff7fc0000
      this is not a call
      munmap(0x7ffff7fc0000) = 0
      munmap(0x7ffff7fc0000, 8192) = 0

      """, mapsBase: 0x7fff_f7fc_2000)
    #expect(r.mismatches.isEmpty, "\(r.mismatches)")
    #expect(r.executed == 2 && r.matched == 2)
    #expect(r.unreadableLines.map(\.line) == [2, 3])
    #expect(r.unreadableLines[0].message.contains("expected '('"))
    #expect(r.unreadableLines[1].message.contains("munmap takes 2 arguments, not 1"))
    #expect(r.summary.contains("2 unreadable lines skipped"), "\(r.summary)")
  }

  @Test func textWithNoCallAtAllIsRefused() {
    #expect(throws: ReplayParseError.self) { try replay("this is not a call\nnor = this\n") }
    #expect(throws: ReplayParseError.self) { try ScriptParser.parseSkippingUnreadable("<html>\n") }
  }

  // MARK: Whole logs

  /// `ls /` under `-f -y -i -n -X verbose -Y -k` (to a file: `N<comm> ` prefixes), and
  /// `sh -c 'ls / | cat'` under `-f -tt -T -yy -i -n -Y` (on stderr: `[pid N<comm>] `), whose
  /// 40 opens run as stand-in files and whose closes of them run too.
  @Test(arguments: [
    ("ls-y-i-n-X-verbose-Y-k.strace", 39, 1), ("sh-ls-pipe-cat-tt-T-yy-i-n-Y.strace", 125, 5),
  ], FaultDesign.allCases)
  func logsWithEveryOutputOptionReplayUnderEveryDesign(_ log: (String, Int, Int), _ design: FaultDesign) throws {
    let r = try replay(try readFixture(log.0), design: design)
    #expect(r.mismatches.isEmpty, "\(r.mismatches)")
    #expect(r.unreadableLines.isEmpty, "\(r.unreadableLines)")
    #expect(r.executed == log.1 && r.matched == log.1 && r.processes == log.2)
  }

  @Test func anAttachedLogEndsWithADetachedCall() throws {
    let text = try readFixture("python3-mmap-loop-attached-p.strace")
    let s = try ScriptParser.parse(text)
    #expect(try ScriptParser.parse(ScriptPrinter.print(s)).calls == s.calls)
    let r = try replay(text)
    #expect(r.mismatches.isEmpty && r.unreadableLines.isEmpty)
    #expect(r.executed == 12 && r.skippedByReason["pselect6: unfinished in the log"] == 1)
  }
}
