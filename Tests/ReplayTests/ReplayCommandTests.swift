import ArgumentParser
import Faultline
import Foundation
import Testing

@testable import FaultlineCLI

/// `faultline replay` argument parsing and exit codes.
@Suite struct ReplayCommandTests {
  @Test func optionsParse() throws {
    let c = try Replay.parse(["f.strace", "--design", "spf", "--maps-base", "0x7ffff7fff000", "--verbose"])
    let o = try c.parsedOptions()
    #expect(o.design == .speculative && o.mapsBase == 0x7fff_f7ff_f000 && o.log != nil)
    let d = try Replay.parse(["f.strace"]).parsedOptions()
    #expect(d.design == .mmapLock && d.mapsBase == nil && d.log == nil)
  }

  @Test func theFlagsForStateTheLogLacksParse() throws {
    let o = try Replay.parse([
      "f", "--privileged", "--rlimit", "MEMLOCK=64M", "--rlimit", "RLIMIT_STACK=unlimited", "--rlimit", "as=4096",
      "--memory", "2G", "--legacy-layout", "--no-strict",
    ]).parsedOptions()
    #expect(o.privileged && o.rlimits == [.memlock: 64 << 20, .stack: .max, .addressSpace: 4096])
    #expect(o.memoryBytes == 2 << 30 && o.legacyLayout == true && o.strict == false)
    let d = try Replay.parse(["f", "--no-legacy-layout"]).parsedOptions()
    #expect(!d.privileged && d.rlimits.isEmpty && d.memoryBytes == 1 << 30 && d.legacyLayout == false && d.strict == nil)
  }

  @Test(arguments: [
    ["f", "--design", "rcu"], ["f", "--maps-base", "0x1001"], ["f", "--maps-base", "zz"], [],
    ["f", "--rlimit", "NOFILE=10"], ["f", "--rlimit", "MEMLOCK"], ["f", "--rlimit", "MEMLOCK=1T"], ["f", "--memory", "4K"],
  ])
  func badOptionsAreRefused(_ args: [String]) {
    #expect(throws: (any Error).self) { try Replay.parse(args) }
  }

  @Test func exitsOneOnAMismatchTwoWhenNoLineReadsAndZeroOtherwise() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("replay-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    func run(_ text: String) throws -> Int32 {
      let path = dir.appendingPathComponent("s.strace").path
      try text.write(toFile: path, atomically: true, encoding: .utf8)
      var c = try Replay.parse([path])
      do {
        try c.run()
        return 0
      } catch let e as ExitCode {
        return e.rawValue
      }
    }
    #expect(try run("munmap(0x1000, 4096) = 0\n") == 0)
    #expect(try run("munmap(0x1000, 0) = 0\n") == 1)
    #expect(try run("munmap(0x1000) = 0\n") == 2)
    #expect(try run("garbage\n\n# nothing else\n") == 2)
    // An unreadable line among calls is skipped and reported; the calls replay.
    #expect(try run("munmap(0x1000, 4096) = 0\nmunmap(0x1000) = 0\nmunmap(0x1000, 4096) = 0\n") == 0)
    #expect(try run("munmap(0x1000) = 0\nmunmap(0x1000, 0) = 0\n") == 1)
  }
}

/// The review's crash (issue 13): a negative shmflg, which the host takes (it ignores unknown
/// bits; Tests/Probes/sysv_shm_review.c), replays as recorded instead of trapping.
@Suite struct ReplayNegativeShmflgTests {
  @Test func aNegativeShmflgReplaysAsRecorded() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("replay-shmflg-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let path = dir.appendingPathComponent("s.strace").path
    try "shmget(IPC_PRIVATE, 4096, IPC_CREAT|0x80000000|0600) = 0\n".write(toFile: path, atomically: true, encoding: .utf8)
    var c = try Replay.parse([path])
    try c.run()
  }
}
