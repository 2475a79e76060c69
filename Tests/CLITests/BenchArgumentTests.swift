import ArgumentParser
import Faultline
import Testing

@testable import FaultlineCLI

/// `faultline bench` argument parsing and validation (no benchmark is run).
@Suite struct BenchArgumentTests {
  @Test func defaultsSelectEveryDesignWorkloadAndOneAndTwoThreads() throws {
    let b = try Bench.parse([])
    #expect(try b.parsedDesigns() == FaultDesign.allCases)
    #expect(try b.parsedThreads() == [1, 2])
    #expect(b.workloads.split(separator: ",").map(String.init) == Bench.allWorkloads)
    #expect(b.host == false && b.json == nil && b.csv == nil && b.report == nil)
    #expect(b.fputMode == "synchronous")
  }

  @Test func listsAndOptionsParse() throws {
    let b = try Bench.parse([
      "--designs", "spf,vma_lock", "--threads", "1,2,4", "--seconds", "0.5", "--workloads", "ebizzy,pft-1vma",
      "--host", "--json", "/tmp/x.json", "--csv", "/tmp/x.csv", "--report", "/tmp/r", "--fput-mode", "deferred",
      "--memory-mib", "256", "--region-mib", "16",
    ])
    #expect(try b.parsedDesigns() == [.speculative, .perVMALock])
    #expect(try b.parsedThreads() == [1, 2, 4])
    #expect(b.seconds == 0.5 && b.host && b.json == "/tmp/x.json" && b.csv == "/tmp/x.csv" && b.report == "/tmp/r")
    #expect(b.fputMode == "deferred" && b.memoryMiB == 256 && b.regionMiB == 16)
  }

  @Test(arguments: [
    ["--designs", "bogus"],
    ["--threads", "0"],
    ["--threads", "1,x"],
    ["--threads", "100000"],
    ["--seconds", "0"],
    ["--seconds", "-1"],
    ["--rounds", "0"],
    ["--memory-mib", "8"],
    ["--region-mib", "0"],
    ["--memory-mib", "64", "--region-mib", "64"],
    ["--fput-mode", "sometimes"],
    ["--workloads", "page_fault9"],
    ["--no-such-option"],
  ])
  func badArgumentsAreRejectedWithAMessage(_ args: [String]) {
    do {
      _ = try Bench.parse(args)
      Issue.record("\(args) was accepted")
    } catch {
      #expect(!Bench.message(for: error).isEmpty)
    }
  }

  @Test func helpExplainsTheWorkloads() {
    let help = Bench.helpMessage()
    for w in ["page_fault1", "ebizzy", "page_fault2", "pft", "mmap1", "dontneed", "--host", "--report"] {
      #expect(help.contains(w), "help does not mention \(w)")
    }
  }

  @Test func toolLevelCommandDefaultsToBench() throws {
    let command = try FaultlineCommand.parseAsRoot([])
    #expect(command is Bench)
  }
}
