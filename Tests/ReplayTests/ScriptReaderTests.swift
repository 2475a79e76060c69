import Faultline
import Foundation
import Testing

@testable import FaultlineReplay

/// Reading a log a line at a time gives the calls parsing it whole gives, and replays alike.
@Suite struct ScriptReaderTests {
  static let fixtures = [
    "python3-c-pass.strace", "python3-c-pass-files.strace", "pyenv-shim-python3-c-pass.strace", "python3-threads.strace",
    "ls-y-i-n-X-verbose-Y-k.strace", "sh-ls-pipe-cat-tt-T-yy-i-n-Y.strace", "python3-mmap-loop-attached-p.strace",
    "file-stand-ins.strace", "python3-mmap-setarch-L.strace",
  ]

  func path(_ name: String, filePath: String = #filePath) -> String {
    URL(fileURLWithPath: filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/\(name)").path
  }

  @Test(arguments: fixtures)
  func aFixtureReadLineByLineIsTheFixtureParsedWhole(_ name: String) throws {
    let whole = ScriptParser.parseCollectingErrors(try readFixture(name))
    let reader = try ScriptReader(path: path(name))
    var streamed: [ScriptEntry] = []
    while let e = reader.next() { streamed.append(e) }
    #expect(streamed.sorted { $0.line < $1.line } == whole.script.entries)
    #expect(reader.errors == whole.errors && reader.entryCount == streamed.count)
  }

  @Test(arguments: fixtures)
  func aFixtureReplayedFromItsFileReplaysAsFromItsText(_ name: String) throws {
    var options = ReplayOptions()
    options.memoryBytes = 64 << 20
    options.profile = .reference
    let streamed = try ReplayExecutor.replay(contentsOf: path(name), options: options)
    let whole = try ReplayExecutor.replay(try readFixture(name), options: options)
    #expect(streamed.summary == whole.summary && streamed.mismatches == whole.mismatches)
    #expect(streamed.skippedByReason == whole.skippedByReason)
  }

  /// Maps lines after `maps() = ` and a signal line after a load belong to the call before them,
  /// however the reader hands calls out.
  @Test func mapsLinesAndSignalLinesStayWithTheirCall() throws {
    let text = """
      mmap(0x10000, 4096, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0) = 0x10000
      load(0x10000, 1) = SIGSEGV
      --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_ACCERR, si_addr=0x10000} ---
      maps() = 
      00010000-00011000 ---p 00000000 00:00 0

      munmap(0x10000, 4096) = 0

      """
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("reader-\(getpid()).txt")
    try text.write(to: file, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(at: file) }
    let reader = try ScriptReader(path: file.path)
    var streamed: [ScriptEntry] = []
    while let e = reader.next() { streamed.append(e) }
    #expect(streamed == (try ScriptParser.parse(text)).entries)
    #expect(streamed[1].call.signal?.code == "SEGV_ACCERR")
    #expect(streamed[2].call.result == .maps(["00010000-00011000 ---p 00000000 00:00 0"]))
  }

  @Test func aMissingFileIsAnErrno() {
    #expect(throws: Errno.noSuchFileOrDirectory) { try ScriptReader(path: "/nonexistent/log.strace") }
  }
}
