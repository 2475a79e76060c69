import Faultline
import FaultlineReplay

/// libFuzzer's entry point: the input is a replay script. It is parsed (every error must be a
/// value), printed and parsed again (the round trip must give the same calls), then run on a
/// small engine. A trap anywhere, parser or engine, is a finding.
///
/// Work is bounded so that one input stays cheap: a 64 MiB frame arena, at most 256 calls,
/// loads and stores of at most 1 MiB, and no populating (`MAP_POPULATE`, `MAP_LOCKED`,
/// `MADV_POPULATE_*`, `mlock`) or `mincore` vector of more than 16 MiB. Errnos and signals are fine; the arena running out is
/// fine (an errno or `Signal.outOfMemory`).
@_cdecl("LLVMFuzzerTestOneInput")
public func replayFuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
  let (script, _) = ScriptParser.parseCollectingErrors(text)

  let printed = ScriptPrinter.print(script)
  let (again, errors) = ScriptParser.parseCollectingErrors(printed)
  if !errors.isEmpty || again.calls != script.calls {
    fatalError("round trip changed the script:\n\(printed)\nerrors: \(errors)")
  }

  var bounded = script
  bounded.entries = Array(bounded.entries.prefix(256)).map(bound)
  var options = ReplayOptions()
  options.memoryBytes = 64 << 20
  options.maxAccessBytes = 1 << 20
  guard let executor = try? ReplayExecutor(options: options) else { return 0 }
  _ = executor.run(bounded)
  return 0
}

private let populateLimit: UInt64 = 16 << 20

/// Drops populate requests over `populateLimit` (the call still runs, unpopulated).
private func bound(_ entry: ScriptEntry) -> ScriptEntry {
  guard let op = try? Operation.decode(entry.call) else { return entry }
  var e = entry
  switch op {
  case .mmap(_, let len, _, let flags, _, _) where len > populateLimit:
    let populating = MapFlags.populate | MapFlags.locked
    if flags & populating != 0 {
      e.call.arguments[3] = .number(.hex(UInt64(UInt32(bitPattern: flags & ~populating))))
    }
  case .madvise(_, let len, let advice) where len > populateLimit:
    if advice == Advice.populateRead || advice == Advice.populateWrite || advice == Advice.willNeed {
      e.call.arguments[1] = .number(Number(populateLimit))
    }
  case .mlock(_, let len, _) where len > populateLimit:
    e.call.arguments[1] = .number(Number(populateLimit))
  case .mincore(_, let len, _) where len > populateLimit:
    // A vector of one byte per page: bounded like populate.
    e.call.arguments[1] = .number(Number(populateLimit))
  default:
    break
  }
  return e
}

/// libFuzzer's driver (`FuzzerDriver.cpp`), for a `main` of our own.
@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
  _ argc: UnsafeMutablePointer<CInt>,
  _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
  _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

/// SwiftPM links an executable target with `main` renamed to `<Target>_main` (so that tests can
/// link it); with `-parse-as-library` there is no Swift `main`, so this is it: it hands the
/// command line to libFuzzer.
@_cdecl("ReplayFuzzer_main")
public func replayFuzzerMain(
  _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
  var argc = argc
  var argv = argv
  return LLVMFuzzerRunDriver(&argc, &argv) { data, size in replayFuzzerTestOneInput(data, size) }
}
