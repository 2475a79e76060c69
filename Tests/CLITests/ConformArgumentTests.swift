import ArgumentParser
import Testing

@testable import FaultlineCLI

/// `faultline conform` argument parsing and validation (nothing is run).
@Suite struct ConformArgumentTests {
  @Test func defaultsExcludeEveryKnownEngineBug() throws {
    let c = try Conform.parse([])
    #expect(c.sequences == 200 && c.length == 40 && c.seed == 1 && c.design == "mmap_lock")
    #expect(try c.excludedBugs().count == 3)
  }

  @Test func optionsParse() throws {
    let c = try Conform.parse([
      "--sequences", "5", "--length", "9", "--seed", "77", "--design", "spf", "--exclude", "none", "--verbose",
    ])
    #expect(c.sequences == 5 && c.length == 9 && c.seed == 77 && c.design == "spf" && c.verbose)
    #expect(try c.excludedBugs().isEmpty)
  }

  @Test(arguments: [["--design", "nope"], ["--length", "0"], ["--exclude", "no-such-bug"], ["--sequences", "-1"]])
  func badArgumentsAreRefused(_ args: [String]) {
    #expect(throws: (any Error).self) { try Conform.parse(args) }
  }
}
