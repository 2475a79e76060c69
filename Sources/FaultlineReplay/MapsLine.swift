/// One `/proc/self/maps` line, read into its fields, and the comparison `maps()` makes.
///
/// The comparison leaves out memory the engine does not model, on both sides:
/// - recorded lines for the kernel's own mappings (a `[name]` other than `[heap]`: `[vdso]`,
///   `[vvar]`, `[stack]`, `[vsyscall]`…) and for files the script did not `open` (a program's
///   ELF, its libraries);
/// - the engine's stand-ins for those (`ReplayProcess.foreign`).
/// Both sides are clipped to the rest, then compared line for line: range, permissions, offset,
/// inode and name exactly, and the device for anonymous lines only (the engine numbers its tmpfs
/// instances per process, so a file's device differs from run to run).
public struct MapsLine: Equatable, Sendable, CustomStringConvertible {
  public var start: UInt64
  public var end: UInt64
  public var perms: String
  public var offset: UInt64
  public var device: String
  public var inode: UInt64
  public var path: String

  /// Reads `start-end perms offset dev inode [path]`; `nil` when the line is not in that form.
  public init?(_ line: String) {
    let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
    guard fields.count >= 5 else { return nil }
    let range = fields[0].split(separator: "-", omittingEmptySubsequences: false)
    guard range.count == 2, let s = UInt64(range[0], radix: 16), let e = UInt64(range[1], radix: 16), s <= e,
      fields[1].count == 4, let off = UInt64(fields[2], radix: 16), fields[3].contains(":"),
      let ino = UInt64(fields[4])
    else { return nil }
    start = s
    end = e
    perms = String(fields[1])
    offset = off
    device = String(fields[3])
    inode = ino
    path = fields.count > 5 ? String(fields[5].drop(while: { $0 == " " })) : ""
  }

  init(start: UInt64, end: UInt64, perms: String, offset: UInt64, device: String, inode: UInt64, path: String) {
    self.start = start
    self.end = end
    self.perms = perms
    self.offset = offset
    self.device = device
    self.inode = inode
    self.path = path
  }

  /// The fields with single spaces (no padding before the name).
  public var description: String {
    "\(hex(start))-\(hex(end)) \(perms) \(hex(offset)) \(device) \(inode)" + (path.isEmpty ? "" : " " + path)
  }

  private func hex(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return s.count >= 8 ? s : String(repeating: "0", count: 8 - s.count) + s
  }

  /// Equal for the replay: the device is compared only for anonymous memory.
  func matches(_ other: MapsLine) -> Bool {
    start == other.start && end == other.end && perms == other.perms && offset == other.offset
      && inode == other.inode && path == other.path && (inode != 0 || device == other.device)
  }

  /// Whether the engine models this line's memory, given the paths the script opened.
  func isModelled(openedPaths: Set<String>) -> Bool {
    if path.hasPrefix("[") { return path == "[heap]" }
    if path.hasPrefix("/") {
      return path == "/dev/zero (deleted)" || path == "/anon_hugepage (deleted)" || openedPaths.contains(path)
    }
    return true
  }

  /// The parts of this line outside `excluded`, with the offset of file-backed parts moved along.
  func clipped(removing excluded: AddressRanges) -> [MapsLine] {
    var set = AddressRanges()
    set.insert(start..<end)
    for r in excluded.overlaps(in: start..<end) { set.remove(r) }
    return set.ranges.map { r in
      var l = self
      l.start = r.lowerBound
      l.end = r.upperBound
      if inode != 0 { l.offset = offset &+ (r.lowerBound - start) }
      return l
    }
  }
}

/// The first difference between recorded and engine maps after clipping, or `nil` when equal.
func mapsDifference(
  recorded: [MapsLine], engine: [MapsLine], foreign: AddressRanges, openedPaths: Set<String>
) -> (expected: String, got: String)? {
  var excluded = foreign
  for l in recorded where !l.isModelled(openedPaths: openedPaths) { excluded.insert(l.start..<l.end) }
  let want = recorded.filter { $0.isModelled(openedPaths: openedPaths) }.flatMap { $0.clipped(removing: excluded) }
  let have = engine.flatMap { $0.clipped(removing: excluded) }
  for i in 0..<max(want.count, have.count) {
    let w = i < want.count ? want[i] : nil
    let h = i < have.count ? have[i] : nil
    if let w, let h, w.matches(h) { continue }
    return (
      w.map { "maps line \"\($0)\"" } ?? "no more maps lines",
      h.map { "\"\($0)\"" } ?? "none"
    )
  }
  return nil
}
