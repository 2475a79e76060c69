import ArgumentParser
import Testing

@testable import FaultlineCLI

/// `faultline conform` argument parsing and validation (nothing is run).
@Suite struct ConformArgumentTests {
  @Test func defaults() throws {
    let c = try Conform.parse([])
    #expect(c.sequences == 200 && c.length == 40 && c.seed == 1 && c.design == "mmap_lock")
    #expect(c.window == "small")
    #expect(try Conform.parse(["--window", "thp"]).window == "thp")
  }

  @Test func optionsParse() throws {
    let c = try Conform.parse([
      "--sequences", "5", "--length", "9", "--seed", "77", "--design", "spf", "--verbose",
    ])
    #expect(c.sequences == 5 && c.length == 9 && c.seed == 77 && c.design == "spf" && c.verbose)
  }

  @Test(arguments: [["--design", "nope"], ["--length", "0"], ["--max-reports", "-1"], ["--sequences", "-1"], ["--window", "huge"]])
  func badArgumentsAreRefused(_ args: [String]) {
    #expect(throws: (any Error).self) { try Conform.parse(args) }
  }
}
