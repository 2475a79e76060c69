import ArgumentParser
import Faultline
import FaultlineWorkloads

/// `faultline bench`: the anonymous fault cost under the mmap_lock design, next to the cost of
/// zeroing a 4 KiB frame in the same run.
struct Bench: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Measure anonymous page faults (page_fault1 shape) against a 4 KiB zeroing canary.",
    discussion: """
      Each round maps --region-mib of private anonymous memory, writes one byte per page and
      unmaps it, as will-it-scale's page_fault1 does. The zeroing canary memsets the same number
      of arena frames, so the fault cost can be read against what the machine spends on the
      zeroing that every fault includes. The figures are ns per page; ratios within one run are
      what to compare, as these machines are noisy.
      """
  )

  @Option(help: "Frame arena size in MiB (pre-faulted).")
  var memoryMiB = 1024

  @Option(help: "Region mapped per round, in MiB.")
  var regionMiB = 128

  @Option(help: "Measured rounds (one untimed warm-up round runs first).")
  var rounds = 5

  mutating func validate() throws {
    guard memoryMiB >= 16 else { throw ValidationError("--memory-mib must be at least 16") }
    guard regionMiB >= 1 else { throw ValidationError("--region-mib must be at least 1") }
    guard regionMiB * 256 + 1024 < memoryMiB * 256 else {
      throw ValidationError("--region-mib must leave room for page tables in --memory-mib")
    }
    guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1") }
  }

  mutating func run() throws {
    printErr("faultline bench: pre-faulting a \(memoryMiB) MiB arena…")
    let machine = try Machine(memoryBytes: memoryMiB << 20, prefault: true)
    let mm = try AddressSpace(machine: machine)
    let cpu = try CPU(mm: mm)
    let region = UInt64(regionMiB) << 20
    let pages = Int(region / 4096)

    printErr("warm-up round…")
    _ = try anonymousFaultLoop(cpu: cpu, regionBytes: region, rounds: 1)
    machine.drainDeferredFrees()
    printErr("zeroing canary…")
    let zero = zeroCanary(memory: machine.memory, pages: pages, rounds: rounds)
    printErr("page_fault1, 1 thread, mmap_lock, \(rounds) rounds of \(regionMiB) MiB…")
    let r = try anonymousFaultLoop(cpu: cpu, regionBytes: region, rounds: rounds)

    let faults = machine.vmstat[.pgfault]
    print("workload      design     threads  ns/fault  ns/page(all-in)  faults/s    zero-4KiB-ns  fault/zero")
    print(
      "page_fault1   mmap_lock  1        \(fmt(r.touchNanosecondsPerPage, 8))  \(fmt(r.totalNanosecondsPerPage, 15))"
        + "  \(fmt(1e9 / r.touchNanosecondsPerPage, 10, 0))  \(fmt(zero, 12))  \(fmt(r.touchNanosecondsPerPage / zero, 10, 2))"
    )
    print("")
    print("pgfault \(faults) (including the warm-up round), pages touched \(r.pages) measured")
  }
}

func fmt(_ v: Double, _ width: Int, _ decimals: Int = 1) -> String {
  let s = decimals == 0 ? String(Int(v.rounded())) : String(format: "%.\(decimals)f", v)
  return s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
}

func printErr(_ s: String) {
  var e = StandardError()
  print(s, to: &e)
}

struct StandardError: TextOutputStream {
  mutating func write(_ s: String) {
    var s = s
    s.withUTF8 { b in _ = Glibc.write(2, b.baseAddress, b.count) }
  }
}

import Foundation
import Glibc
