#if canImport(Glibc)
import Glibc
#endif
import Faultline
import Testing

// Helpers for the Files tests: a frame arena checked for leaks, a scratch host directory, and
// host file access through plain Glibc (so the check does not go through the code under test).

/// Runs `body` with a fresh 4 MiB arena, then expects every frame free: whatever the body made
/// (file systems, inodes, page caches, open files) is gone by then.
func withMemory(
  sourceLocation: SourceLocation = #_sourceLocation, _ body: (PhysicalMemory) throws -> Void
) throws {
  let memory = try PhysicalMemory(bytes: 4 << 20)
  try body(memory)
  #expect(memory.framesInUse == 0, "frames leaked", sourceLocation: sourceLocation)
}

/// Runs `body` with a fresh directory under /tmp (mkdtemp), removed afterwards.
func withTempDirectory(_ body: (String) throws -> Void) throws {
  var template = Array("/tmp/faultline-files-XXXXXX".utf8CString)
  let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
  let dir = String(cString: try #require(made))
  defer { removeTree(dir) }
  try body(dir)
}

/// `rm -rf dir`: children first, not following links.
func removeTree(_ dir: String) {
  if let d = opendir(dir) {
    while let e = readdir(d) {
      let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
      if name == "." || name == ".." { continue }
      let path = dir + "/" + name
      var st = stat()
      if lstat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR { removeTree(path) } else { unlink(path) }
    }
    closedir(d)
  }
  rmdir(dir)
}

/// Writes `bytes` to a new host file at `path`.
func hostWrite(_ path: String, _ bytes: [UInt8]) throws {
  let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
  try #require(fd >= 0)
  defer { Glibc.close(fd) }
  let n = bytes.withUnsafeBytes { Glibc.pwrite(fd, $0.baseAddress, $0.count, 0) }
  #expect(n == bytes.count)
}

/// The whole host file at `path`, read with plain `pread`.
func hostRead(_ path: String) throws -> [UInt8] {
  let fd = Glibc.open(path, O_RDONLY)
  try #require(fd >= 0)
  defer { Glibc.close(fd) }
  var st = stat()
  try #require(fstat(fd, &st) == 0)
  var out = [UInt8](repeating: 0, count: Int(st.st_size))
  let n = out.withUnsafeMutableBytes { Glibc.pread(fd, $0.baseAddress, $0.count, 0) }
  #expect(n == out.count)
  return out
}

/// A byte pattern that differs per offset and per `seed`.
func pattern(_ count: Int, seed: UInt8 = 1) -> [UInt8] {
  (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed) &* 7 &+ 1) }
}

/// The bytes of a frame.
func frameBytes(_ memory: PhysicalMemory, _ pfn: PFN) -> UnsafeMutableRawBufferPointer {
  UnsafeMutableRawBufferPointer(start: memory.address(of: pfn), count: Page.byteCount)
}
