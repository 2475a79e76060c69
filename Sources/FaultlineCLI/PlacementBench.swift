import ArgumentParser
import Faultline
import FaultlineReplay
import Foundation

/// `faultline placement-bench`: how placement (`get_unmapped_area`), VMA lookup (`find_vma`) and
/// replay scale with the number of mappings.
public struct PlacementBench: ParsableCommand {
  public init() {}
  public static let configuration = CommandConfiguration(
    commandName: "placement-bench",
    abstract: "Time placement, VMA lookup and replay against the number of live mappings.",
    discussion: """
      PLACEMENT. Creates --mappings one-page mappings with hint-less mmap calls, alternating \
      PROT_READ and PROT_READ|PROT_WRITE so that neighbours never merge, once in the default \
      top-down layout and once in the legacy bottom-up layout (vm.legacy_va_layout=1). Each \
      mapping lands next to the previous one, so a search that walks the VMAs costs O(n) per \
      call and one that uses the tree's subtree gaps O(log n). At each checkpoint (--at) it \
      prints the total time so far, the mean time per mmap of the last --window calls (which \
      includes allocating the VMA, the tree's copy-on-write and the RCU frees that come in \
      batches), and the mean time of the search alone (`vm_unmapped_area` for one more page, \
      repeated --window times without mapping).

      LOOKUP. find_vma on spaces of --lookup-vmas one-page VMAs (the `VMA lookup` \
      microbenchmark of Benchmarks/): the median over --rounds rounds of ns per lookup, \
      addresses visited in a scattered order.

      REPLAY. Generates an strace-style log of a program with --threads threads (a 8 MiB + 4 KiB \
      stack with a PROT_NONE guard page per thread, as glibc's allocate_stack makes them: two \
      VMAs each; then every thread exits and a new one reuses its stack, and each thread maps \
      and unmaps a 132 KiB malloc chunk below all the stacks) and replays it, printing calls \
      per second. --write-script saves the log for `faultline replay`.

      Run it as `swift run -c release faultline placement-bench`; the figures are wall-clock \
      times on a shared machine, so compare runs made side by side.
      """
  )

  @Option(help: "Mappings to create in the placement test.")
  var mappings = 60_000

  @Option(help: "Checkpoints (mapping counts) to report, comma-separated.")
  var at = "1000,10000,60000"

  @Option(help: "mmap calls (and searches) averaged for the per-call times at each checkpoint.")
  var window = 1000

  @Option(name: .customLong("lookup-vmas"), help: "VMA counts of the lookup test, comma-separated (empty: skip it).")
  var lookupVMAs = "10,65530"

  @Option(help: "Lookups per round of the lookup test.")
  var lookups = 1_000_000

  @Option(help: "Rounds of the lookup test (the median is printed).")
  var rounds = 7

  @Option(help: "Threads in the generated replay log (0: skip the replay test).")
  var threads = 10_000

  @Option(name: .customLong("write-script"), help: "Also write the generated replay log to this file.")
  var writeScript: String?

  @Option(help: "Which tests to run: placement, lookup, replay (comma-separated).")
  var only = "placement,lookup,replay"

  public mutating func validate() throws {
    guard mappings > 0, window > 0, lookups > 0, rounds > 0, threads >= 0 else {
      throw ValidationError("counts must be positive")
    }
    guard !checkpoints.isEmpty else { throw ValidationError("--at needs at least one count") }
  }

  var checkpoints: [Int] { at.split(separator: ",").compactMap { Int($0) }.filter { $0 > 0 && $0 <= mappings } }

  public mutating func run() throws {
    let tests = Set(only.split(separator: ",").map(String.init))
    if tests.contains("placement") {
      for legacy in [false, true] { try placement(legacy: legacy) }
    }
    if tests.contains("lookup") {
      for count in lookupVMAs.split(separator: ",").compactMap({ Int($0) }) { try lookup(count) }
    }
    if tests.contains("replay") && threads > 0 { try replay() }
  }

  private func placement(legacy: Bool) throws {
    let machine = try Machine(memoryBytes: 64 << 20)
    var config = AddressSpaceConfig()
    config.maxMapCount = mappings + 10
    config.legacyVALayout = legacy
    let mm = try AddressSpace(machine: machine, config: config)
    let cpu = try CPU(mm: mm)
    print("placement, \(legacy ? "bottom-up (legacy layout)" : "top-down"): \(mappings) one-page mappings")
    print("  mappings      total s   ns/mmap (last \(window))   ns/search")
    let marks = Set(checkpoints)
    let start = DispatchTime.now().uptimeNanoseconds
    var windowStart = start
    for i in 1...mappings {
      if i % window == 1 || window == 1 { windowStart = DispatchTime.now().uptimeNanoseconds }
      let prot = i % 2 == 0 ? Prot.read : Prot.read | Prot.write
      _ = try cpu.mmap(0, Page.size, prot: prot, flags: MapFlags.private | MapFlags.anonymous)
      if marks.contains(i) {
        let now = DispatchTime.now().uptimeNanoseconds
        let inWindow = (i - 1) % window + 1
        let perCall = Double(now - windowStart) / Double(inWindow)
        let search = searchTime(mm, topDown: !legacy)
        print(String(format: "  %8d  %11.3f  %22.0f  %10.0f", i, Double(now - start) / 1e9, perCall, search))
      }
    }
    precondition(mm.mapCount == mappings, "mappings merged")
  }

  /// Mean ns of the search a hint-less one-page mmap makes, without the mapping.
  private func searchTime(_ mm: AddressSpace, topDown: Bool) -> Double {
    let low = topDown ? max(Page.size, mm.config.mmapMinAddr) : mm.config.taskUnmappedBase
    let high = topDown ? mm.config.mmapBase : mm.config.taskSize
    var sum: UInt64 = 0
    let t0 = DispatchTime.now().uptimeNanoseconds
    for _ in 0..<window { sum &+= mm.vmUnmappedArea(Page.size, low: low, high: high, topDown: topDown) ?? 0 }
    let ns = Double(DispatchTime.now().uptimeNanoseconds - t0) / Double(window)
    precondition(sum != 0)
    return ns
  }

  private func lookup(_ count: Int) throws {
    let machine = try Machine(memoryBytes: 64 << 20)
    var config = AddressSpaceConfig()
    config.maxMapCount = max(65_530, count + 10)
    let mm = try AddressSpace(machine: machine, config: config)
    let cpu = try CPU(mm: mm)
    var addrs: [UInt64] = []
    let base: UInt64 = 0x1000_0000
    for i in 0..<count {
      let a = base + UInt64(i) * Page.size
      let prot = i % 2 == 0 ? Prot.read : Prot.read | Prot.write
      _ = try cpu.mmap(a, Page.size, prot: prot, flags: MapFlags.private | MapFlags.anonymous | MapFlags.fixed)
      addrs.append(a)
    }
    var times: [Double] = []
    var found = 0
    for _ in 0..<rounds {
      let t0 = DispatchTime.now().uptimeNanoseconds
      for i in 0..<lookups where mm.tree.find(addrs[(i &* 7919) % addrs.count]) != nil { found &+= 1 }
      times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / Double(lookups))
    }
    precondition(found == lookups * rounds)
    times.sort()
    print(String(format: "lookup, %d VMAs (tree height %d): median %.1f ns, min %.1f ns", count, mm.tree.height, times[times.count / 2], times[0]))
  }

  private func replay() throws {
    let text = Self.threadsLog(threads: threads)
    if let writeScript { try text.write(toFile: writeScript, atomically: true, encoding: .utf8) }
    let (script, unreadable) = try ScriptParser.parseSkippingUnreadable(text)
    let t0 = DispatchTime.now().uptimeNanoseconds
    let report = try ReplayExecutor(options: ReplayOptions(design: .mmapLock)).run(script, unreadableLines: unreadable)
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    let calls = text.split(separator: "\n").count
    print(String(format: "replay, %d threads (%d lines): %.3f s, %.0f calls/s, %d mismatches", threads, calls, seconds, Double(calls) / seconds, report.mismatches.count))
    for m in report.mismatches.prefix(3) { print("  \(m.description)") }
  }

  /// An strace log of a program with `threads` threads, placed as Linux's top-down layout
  /// places them below `base` (glibc's default 8 MiB stack plus a guard page).
  static func threadsLog(threads: Int, base: UInt64 = 0x7FFF_F7D0_0000) -> String {
    let stack: UInt64 = 8_392_704
    let chunk: UInt64 = 135_168
    let mainPid = 1000
    var lines: [String] = []
    lines.reserveCapacity(threads * 8)
    func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
    func stackAt(_ k: Int) -> UInt64 { base - UInt64(k + 1) * stack }
    func createStack(_ k: Int) {
      let a = stackAt(k)
      lines.append("[pid \(mainPid)] mmap(NULL, \(stack), PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_STACK, -1, 0) = \(hex(a))")
      lines.append("[pid \(mainPid)] mprotect(\(hex(a + Page.size)), \(stack - Page.size), PROT_READ|PROT_WRITE) = 0")
    }
    let bottom = stackAt(threads - 1)
    func malloc(_ pid: Int) {
      let a = bottom - chunk
      lines.append("[pid \(pid)] mmap(NULL, \(chunk), PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = \(hex(a))")
      lines.append("[pid \(pid)] munmap(\(hex(a)), \(chunk)) = 0")
    }
    lines.append("[pid \(mainPid)] brk(NULL) = 0x555555559000")
    for k in 0..<threads { createStack(k) }
    for k in 0..<threads { malloc(mainPid + 1 + k) }
    for k in 0..<threads {
      lines.append("[pid \(mainPid)] munmap(\(hex(stackAt(k))), \(stack)) = 0")
      createStack(k)
    }
    return lines.joined(separator: "\n") + "\n"
  }
}
