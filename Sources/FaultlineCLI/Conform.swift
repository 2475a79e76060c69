import ArgumentParser
import Faultline
import FaultlineConform
import FaultlineReplay
import Foundation

/// `faultline conform`: the differential check of the engine against the host kernel.
public struct Conform: ParsableCommand {
  public init() {}
  public static let configuration = CommandConfiguration(
    abstract: "Differential check: random mm call sequences on the host kernel and on the engine, compared.",
    discussion: """
      Each sequence is a seeded random list of mmap (MAP_FIXED and MAP_FIXED_NOREPLACE in the \
      window, hints, NULL, now and then MAP_32BIT; private and shared anonymous; every prot; now and \
      then MAP_HUGETLB with and without a MAP_HUGE_* size, where the host has no huge pages, so \
      that every such call fails before it maps anything; now and then a bad argument: \
      unaligned, zero or wrapping length, bad type or prot bits, below mmap_min_addr, past \
      TASK_SIZE), munmap, mprotect, madvise (every advice but MERGEABLE/UNMERGEABLE, COLLAPSE and \
      HWPOISON/SOFT_OFFLINE, plus invalid values), mremap (in place, MAYMOVE, MAYMOVE|FIXED into \
      the window, DONTUNMAP, bad flags), mlock/mlock2/munlock, mlockall (MCL_FUTURE, MCL_ONFAULT, \
      MCL_CURRENT, bad flags) and munlockall, mseal, System V shared memory, brk and munmap of the \
      heap it grew (relative to the initial break on each side; scripts print the engine's \
      addresses), mincore, loads and stores at any byte in and around the window, and maps. On a host with protection keys (ospke in \
      /proc/cpuinfo) also pkey_alloc (valid and invalid flags and rights), pkey_free and \
      pkey_mprotect (keys allocated earlier, and -2, 16, never allocated, the execute-only \
      key), and the wrpkru pseudo-op (AD/WD bits of the allocated keys); elsewhere only \
      pkey_mprotect with key -1. PROT_EXEC alone is frequent, for execute-only memory. The \
      window is \(ConformWindow().pages) pages at 0x\(String(ConformWindow().start, radix: 16)).

      --window thp runs another mode, for transparent huge pages: the window is \
      \(ConformWindow.thp.length >> 20) MiB at 0x\(String(ConformWindow.thp.start, radix: 16)) \
      (2 MiB-aligned: \(ConformWindow.thp.hugeRanges) ranges of 2 MiB), and most ops aim at those ranges: \
      MAP_FIXED private anonymous mappings of whole ranges (now and then a few pages off, \
      populated, locked, MAP_STACK, shared), MADV_HUGEPAGE, MADV_NOHUGEPAGE and MADV_COLLAPSE of \
      whole and partial ranges, loads and stores at a range's start and anywhere in it, mincore of whole \
      ranges (where a huge page shows: one write makes all 512 entries 1), munmap, mprotect, \
      madvise (DONTNEED, FREE, COLD, PAGEOUT, POPULATE_*, guards, ...) and mlock of 4 KiB pages \
      inside a range (which split a huge PMD), and mremap of aligned ranges to other aligned \
      addresses (MAYMOVE|FIXED, DONTUNMAP) and of unaligned ones; a tenth of the ops are the \
      default mode's. Both sides follow the host's THP settings (`faultline profile`: \
      transparent_hugepage.enabled and hugepages-2048kB.enabled).

      The host side runs in a forked child (a small C target: raw system calls, a SIGSEGV/SIGBUS \
      handler with sigsetjmp) that has dropped its capabilities, as an unprivileged process, with \
      an RLIMIT_MEMLOCK of 128 KiB, which the engine uses too. The \
      engine side runs on a fresh Machine and AddressSpace with this machine's profile (see \
      `faultline profile`; --profile accepts only host) and the chosen --design, every op on one \
      CPU, as the child is one thread.

      Compared: every return value and errno; every load and store outcome (ok, SIGSEGV with \
      SEGV_MAPERR, SEGV_ACCERR or SEGV_PKUERR, SIGBUS; the faulting address; the bytes a load read, stores \
      writing a known pattern); mincore's vector; and the maps lines overlapping the window \
      (start-end, perms, offset, dev, inode, name), with inode numbers renumbered in order of \
      appearance. Allowances: mmap without MAP_FIXED/MAP_FIXED_NOREPLACE (and mremap MAYMOVE \
      without FIXED) is compared modulo placement: results that both land outside the window \
      agree, and each side unmaps its own at once; after MADV_FREE a load may read 0 on the \
      engine where the host still has the old bytes (Linux frees lazily). A sequence that \
      disagrees runs on the host up to twice more while the host answers differently each time \
      (khugepaged may collapse a range in the background; a huge page may fall back to 4 KiB \
      pages): it agrees when the engine matches any of the host's answers.

      On a disagreement the sequence is minimised (delta debugging, both sides re-run for each \
      candidate) and printed in the replay format (strace syntax with the host's results), with \
      the engine's differing answer. Exits non-zero on any disagreement.
      """
  )

  @Option(help: "Number of sequences.")
  var sequences = 200

  @Option(help: "Ops per sequence (the last is always maps).")
  var length = 40

  @Option(help: "Seed: sequence i of seed S is always the same.")
  var seed: UInt64 = 1

  @Option(help: "Fault design of the engine: \(FaultDesign.allCases.map(\.rawValue).joined(separator: ", ")).")
  var design = FaultDesign.mmapLock.rawValue

  @Option(help: "The window mode: small (64 pages, the default) or thp (8 MiB of 2 MiB-aligned ranges, huge-page ops).")
  var window = "small"

  @Option(help: "Run only this sequence index (to reproduce a reported one).")
  var only: Int?

  @Option(help: "Most disagreeing sequences to minimise and print.")
  var maxReports = 3

  /// Only `host` is accepted: the comparison is with this machine's kernel.
  @OptionGroup var profileOptions: ProfileOptions

  @Flag(help: "Run the sequences on the host only and print their scripts (no engine, no comparison).")
  var hostOnly = false

  @Flag(help: "Print every sequence's script with the host's results.")
  var verbose = false

  public mutating func validate() throws {
    guard FaultDesign(rawValue: design) != nil else { throw ValidationError("unknown design '\(design)'") }
    guard sequences >= 0, length >= 1, length <= 100_000 else { throw ValidationError("bad --sequences or --length") }
    guard maxReports >= 0 else { throw ValidationError("bad --max-reports") }
    guard ["small", "thp"].contains(window) else { throw ValidationError("unknown window mode '\(window)': small or thp") }
    guard profileOptions.profile == "host" else {
      throw ValidationError(
        "--profile \(profileOptions.profile): conform compares the engine with this machine's kernel, "
          + "so the engine always uses the host profile; leave --profile out or give host")
    }
  }

  public mutating func run() throws {
    let huge = self.window == "thp"
    let window = huge ? ConformWindow.thp : ConformWindow()
    guard HostProbe.usable else { throw ValidationError("this build uses ThreadSanitizer, which refuses the host probe's mappings") }
    let probe: HostProbe
    do {
      probe = try HostProbe(window: window)
    } catch {
      throw ValidationError("cannot reserve the window at 0x\(String(window.start, radix: 16)): \(error)")
    }
    // The engine models this machine, whatever the default: the other side is its kernel.
    // The huge-page window needs room for 2 MiB-aligned runs of frames besides its own 8 MiB.
    let engine = EngineRunner(
      window: window, design: FaultDesign(rawValue: design)!, memoryBytes: huge ? 64 << 20 : 32 << 20, profile: .host)
    let runner = ConformRunner(probe: probe, engine: engine)
    var options = GeneratorOptions()
    options.hugePages = huge
    let generator = ConformGenerator(window: window, options: options)
    let started = Date()
    if hostOnly {
      for i in only.map({ [$0] }) ?? Array(0..<sequences) {
        let ops = generator.sequence(seed: seed, index: i, length: length)
        print("# sequence \(i) of seed \(seed)")
        do {
          print(ScriptPrinter.script(ops, try probe.run(ops)))
        } catch {
          print("# \(error)")
        }
      }
      return
    }
    let verbose = verbose
    let indices = only.map { [$0] } ?? Array(0..<sequences)
    let total = indices.count
    let seed = seed
    let summary = runner.runSequences(seed: seed, indices: indices, length: length, generator: generator) {
      done, summary, outcome in
      if verbose, let outcome {
        print("# sequence \(indices[done - 1]) of seed \(seed)")
        print(ScriptPrinter.script(outcome.ops, outcome.host))
      }
      if done % 100 == 0 || done == total {
        let line = "\r\(done)/\(total) sequences, \(summary.disagreements) disagreements"
        FileHandle.standardError.write(line.data(using: .utf8)!)
      }
    }
    FileHandle.standardError.write("\n".data(using: .utf8)!)
    for (i, why) in summary.hostFailures { print("sequence \(i): \(why)") }
    for (i, outcome) in summary.failing.prefix(maxReports) {
      print("== disagreement in sequence \(i) (--seed \(seed) --only \(i)\(huge ? " --window thp" : "")), design \(design)")
      for d in outcome.disagreements.prefix(3) { print(d) }
      let (small, tests) = runner.minimize(outcome)
      print("-- minimised to \(small.ops.count) ops (\(tests) candidates); host results:")
      print(ScriptPrinter.script(small.ops, small.host), terminator: "")
      for d in small.disagreements { print("-- engine: \(d)") }
      print()
    }
    let seconds = Date().timeIntervalSince(started)
    print(
      "sequences \(summary.sequences), ops \(summary.ops), agreements \(summary.agreements), "
        + "disagreements \(summary.disagreements) (in \(summary.failing.count) sequences), "
        + "host failures \(summary.hostFailures.count), "
        + (summary.hostVaried > 0 ? "host answers that varied on a re-run \(summary.hostVaried), " : "")
        + "\(String(format: "%.1f", seconds)) s")
    if summary.disagreements > 0 || !summary.hostFailures.isEmpty { throw ExitCode(1) }
  }
}
