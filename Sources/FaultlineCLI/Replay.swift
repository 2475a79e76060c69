import ArgumentParser
import Faultline
import FaultlineReplay
import Foundation

/// `faultline replay FILE`: runs an strace log or op script on the engine and checks every
/// recorded result.
public struct Replay: ParsableCommand {
  public init() {}
  public static let configuration = CommandConfiguration(
    abstract: "Replay an strace log or op script on the engine and compare every result.",
    discussion: """
      FORMAT. One call per line in strace's syntax, so `strace -f -e trace=memory,process -o \
      FILE PROG` logs replay unchanged (trace=process keeps clone, fork and execve, which tell \
      programs, threads and children apart; with trace=memory alone a child's calls run in its \
      parent's address space, and the summary says so when the log has several pids): `mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, \
      -1, 0) = 0x7ffff7fc0000`, `munmap(0x7ffff7fc0000, 4096) = -1 EINVAL (Invalid argument)`. \
      Modelled: mmap, munmap, mprotect, madvise, msync, brk, mremap, mlock, mlock2, munlock, \
      mincore, pkey_alloc, pkey_free, pkey_mprotect, and the pseudo-calls \
      `load(ADDR, LEN) = ok|SIGSEGV|SIGBUS` (`= ok 5a5a00`: the bytes read from ADDR on, in hex, \
      are compared too), `store(ADDR, LEN) = ok|SIGSEGV|SIGBUS` (it writes 0x5a bytes), \
      `maps() = ` followed by /proc/self/maps lines up to a blank line, `open(PATH, FLAGS) = FD` \
      (and openat), \
      `ftruncate(FD, LEN) = 0`, `close(FD) = 0` (files live in an in-memory tmpfs at /) and \
      `wrpkru(VALUE) = 0` (sets the thread's PKRU; -1 EOPNOTSUPP on a profile without \
      protection keys). A `--- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_PKUERR, si_addr=0x...} ---` \
      line right after a load or store that ended with that signal is compared too (si_code and \
      si_addr). Traced execve, clone, clone3, fork and vfork \
      tell programs, threads and forked children apart. Flags may be \
      symbolic (PROT_*, MAP_*, MADV_*, MS_*, MREMAP_*, MLOCK_*, PKEY_*, O_*) or numbers (hex, \
      decimal, octal); a number with strace's comment (-X verbose's `0x3 /* PROT_READ|PROT_WRITE \
      */`, an unnamed flag's `0x8 /* MAP_??? */|MAP_ANONYMOUS`) is its number. Every strace \
      output option is understood: pid prefixes (`[pid  N] `, `N  `, with -Y's `N<comm>`), \
      timestamps (-t, -tt, -ttt, -r), -n's `[   9] `, -i's `[00007ffff7feaca3] `, -y/-yy's fd \
      paths (`3</usr/lib/libc.so.6>`, `3<TCP:[1521176]>`: the fd is the number), -k's stack \
      lines, `<unfinished ...>`/`<... resumed>` pairs (joined, at the resumed line), \
      `<detached ...>` (strace -p), `+++ exited +++`, other `--- SIG... ---` lines, `= ?`, \
      `<0.000012>` timings (-T) and `#` comments.

      SKIPPING AND STAND-INS. Calls the engine does not model (arch_prctl, set_tid_address, \
      shmat, ...) are skipped and counted. A traced program's files are its machine's: open and \
      openat take the recorded result, with an empty sparse stand-in file under the recorded fd \
      (a failed open is skipped as recorded), so mmap, madvise and close of it replay. A file \
      mmap on an fd the log never opened (a library opened by an untraced openat, a memfd) gets \
      a stand-in too. Stand-ins follow the mapping (MAP_SHARED is shared file memory: \
      MADV_REMOVE punches holes, a fork shares it; MAP_PRIVATE is copy-on-write) and the file \
      system -y's path names: /dev/shm, /run, memfd and System V files are tmpfs (not aligned), \
      /dev/zero is anonymous memory, any other path or none is ext4-like (2 MiB-aligned where a \
      mapping covers a 2 MiB extent of the file, mremap growth included). A call the kernel \
      completed on a range the script never mapped nor unmapped (ld.so's RELRO mprotect: the \
      kernel mapped the ELF, ld.so and the stack before the log starts) first gets that range \
      mapped, anonymous read-write (grows-down, as the stack is, for an mprotect with \
      PROT_GROWSDOWN). Op scripts (any load, store, maps or wrpkru) replay strictly: nothing \
      is inferred and open runs on the engine's tmpfs (--strict / --no-strict override). Each \
      program in a log gets its own address space \
      (a new pid starting with brk(NULL), a pid after execve, or a brk(NULL) returning a break \
      the program never had); a child of fork runs in a copy of its parent's (AddressSpace.fork); \
      other new pids are threads of the most recent address space. mincore's vector is compared \
      only in scripts with load/store calls (a traced program's own accesses are not in its log).

      STATE THE LOG LACKS. --privileged (recorded as root: no RLIMIT_MEMLOCK bound, MAP_FIXED \
      below mmap_min_addr), --rlimit NAME=VALUE (MEMLOCK, AS, DATA, STACK; STACK=unlimited \
      selects the legacy layout, as on Linux), --memory BYTES (the frame arena: 1G, or what the \
      log's MAP_POPULATE, MAP_LOCKED, mlock and MADV_POPULATE_* calls add up to, at most 32G), \
      --legacy-layout / --no-legacy-layout (setarch -L; by default a program whose first \
      hint-less mmap lies just above TASK_UNMAPPED_BASE ran with it). A mismatch such state \
      could explain names the flag after its message.

      ONE DIVERGENCE, ONE REPORT. A hint-less mmap the engine placed elsewhere than Linux (or \
      refused) is moved to the recorded address, so later calls are compared against the \
      layout the program had. A later mismatch of a call on that range (or, when the recorded \
      place was taken on the engine, any later mismatch of that address space) is printed with \
      "(a consequence of line N)", and the summary counts roots and consequences apart.

      LAYOUT. start_brk comes from the program's first brk(NULL). Hint-less mmaps are placed by \
      the engine from mmap_base: --maps-base, or else the end of the program's first hint-less \
      mmap, right below the mappings the kernel made itself (ld.so, the vdso). maps() compares \
      every line except the kernel's own mappings ([vdso], [vvar], [stack], ...), files the \
      script did not open, and the stand-ins above.

      A line that cannot be read (a modelled call with the wrong arguments, text that is not a \
      call) is skipped and reported on stderr as FILE:LINE: skipped: REASON, and counted in the \
      summary; the replay goes on without it.

      Prints each mismatch as `LINE: expected X, got Y in CALL` (the result of mmap, \
      mremap and brk in hex; then `(a consequence of line N)` and the flag for missing state, \
      if any), then a summary. Exits 1 on any \
      mismatch, 2 when no line reads as a call (the file is not an strace log or op script: its \
      errors are printed as FILE:LINE: message), 0 otherwise.
      """
  )

  @Argument(help: "The script or strace log.")
  var file: String

  @Option(name: .customLong("maps-base"), help: "mmap_base (hex or decimal); by default, from the script.")
  var mapsBase: String?

  @Option(help: "Fault design: \(FaultDesign.allCases.map(\.rawValue).joined(separator: ", ")).")
  var design: String = FaultDesign.mmapLock.rawValue

  @Flag(help: "The log was recorded as root: no RLIMIT_MEMLOCK bound (CAP_IPC_LOCK), MAP_FIXED below mmap_min_addr (CAP_SYS_RAWIO).")
  var privileged = false

  @Option(
    help: ArgumentHelp(
      "A resource limit the log was recorded under (repeatable): MEMLOCK, AS, DATA or STACK, in bytes with an optional K/M/G, or unlimited.",
      valueName: "NAME=VALUE"))
  var rlimit: [String] = []

  @Option(help: ArgumentHelp("The engine's frame arena in bytes (K/M/G); by default 1G, or what the log's populating calls need.", valueName: "BYTES"))
  var memory: String?

  @Flag(
    inversion: .prefixedNo,
    help: "The legacy bottom-up layout (setarch -L); by default inferred from the first hint-less mmap.")
  var legacyLayout: Bool?

  @Flag(
    inversion: .prefixedNo,
    help: "Infer nothing the script does not say (no kernel-made memory, no stand-in files); by default strict for op scripts only.")
  var strict: Bool?

  @OptionGroup var profileOptions: ProfileOptions

  @Flag(help: "Print every call with its outcome.")
  var verbose = false

  public mutating func validate() throws {
    _ = try parsedOptions()
  }

  /// The options the command line asks for.
  func parsedOptions() throws -> ReplayOptions {
    guard let d = FaultDesign(rawValue: design) else {
      throw ValidationError("--design must be one of \(FaultDesign.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    var options = ReplayOptions(design: d)
    options.profile = try profileOptions.resolve()
    if let mapsBase {
      let text = mapsBase.lowercased()
      let value = text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
      guard let value, Page.isAligned(value), value > 0, value <= AddressSpaceConfig(profile: options.profile).taskSize else {
        throw ValidationError("--maps-base must be a page-aligned address below TASK_SIZE")
      }
      options.mapsBase = value
    }
    options.privileged = privileged
    for text in rlimit {
      guard let (name, value) = ReplayRlimit.parse(text) else {
        throw ValidationError(
          "--rlimit must be NAME=VALUE, NAME one of \(ReplayRlimit.allCases.map(\.rawValue).joined(separator: ", ")), VALUE bytes (K/M/G) or unlimited")
      }
      options.rlimits[name] = value
    }
    if let memory {
      guard let (_, bytes) = ReplayRlimit.parse("AS=" + memory), bytes >= 1 << 20, bytes <= UInt64(Int.max) else {
        throw ValidationError("--memory must be a size in bytes (K/M/G) of at least 1M")
      }
      options.memoryBytes = Int(bytes)
    }
    options.legacyLayout = legacyLayout
    options.strict = strict
    if verbose { options.log = { print($0) } }
    return options
  }

  public mutating func run() throws {
    let options = try parsedOptions()
    let report: ReplayReport
    do {
      // Streamed: the log is read twice, a line at a time, and never held whole.
      report = try ReplayExecutor.replay(contentsOf: file, options: options)
    } catch is ReplayParseError {
      // Not a script at all: every error, from the whole text.
      let text = String(decoding: (try? Data(contentsOf: URL(fileURLWithPath: file))) ?? Data(), as: UTF8.self)
      for e in ScriptParser.parseCollectingErrors(text).errors { printError("\(file):\(e.line): \(e.message)") }
      throw ExitCode(2)
    } catch let error as Errno {
      throw ValidationError("cannot read \(file): \(error)")
    }
    for e in report.unreadableLines { printError("\(file):\(e.line): skipped: \(e.message)") }
    for m in report.mismatches { print(m.description) }
    print(report.summary)
    if verbose {
      for (reason, n) in report.skippedByReason.sorted(by: { $0.key < $1.key }) { print("  skipped \(n): \(reason)") }
    }
    if !report.mismatches.isEmpty { throw ExitCode(1) }
  }

  private func printError(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
  }
}
