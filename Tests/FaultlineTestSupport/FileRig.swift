import Faultline
import Glibc
import Testing

// The file rig the file-mapping and file-errno tests share: a rig with a TmpFS or a HostFS (over
// a fresh host directory) mounted at /mnt, and helpers to make files and read them back from
// both sides.

/// A fresh host directory for one test, removed by the caller (`rm -rf`).
public func makeHostTempDir(_ tag: String) -> String {
  var template = Array("/tmp/faultline-\(tag)-XXXXXX".utf8CString)
  return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
}

/// The file systems a file test runs on.
public enum TestFS: String, CaseIterable, Sendable, CustomTestStringConvertible {
  case hostfs, tmpfs
  public var testDescription: String { rawValue }
}

/// A file system mounted at `/mnt` in a rig, with helpers to make and inspect files.
public final class FileEnv {
  public let r: Rig
  public let kind: TestFS
  public let fs: any FileSystem
  /// The host directory behind a HostFS mount.
  public let hostDir: String?
  public let mountPoint = "/mnt"
  public private(set) var mounted = true

  init(_ r: Rig, kind: TestFS, hostDir: String?) throws {
    self.r = r
    self.kind = kind
    self.hostDir = hostDir
    fs = kind == .hostfs ? try HostFS(root: hostDir!, machine: r.machine) : TmpFS(memory: r.machine.memory)
    r.machine.mount(fs, at: mountPoint)
  }

  public func path(_ name: String) -> String { mountPoint + "/" + name }

  /// The byte the test files hold at `offset`: page i is filled with `"A" + i`.
  public static func pattern(_ offset: UInt64) -> UInt8 {
    UInt8(ascii: "A") &+ UInt8(truncatingIfNeeded: offset >> Page.shift)
  }

  /// Creates `name` with `pages` pages of the pattern (written back), and returns an `O_RDWR` fd.
  public func create(_ name: String, pages: Int) throws -> Int32 {
    let fd = try r.cpu.open(path(name), flags: OpenFlags.readWrite | OpenFlags.create)
    let bytes = (0..<UInt64(pages) * Page.size).map(Self.pattern)
    let n = try bytes.withUnsafeBytes { try r.mm.files.pwrite(fd, $0, at: 0) }
    #expect(n == bytes.count)
    try r.mm.files.fsync(fd)
    return fd
  }

  /// `count` bytes of the host file at `offset`, read with a plain `pread` (HostFS only).
  public func hostBytes(_ name: String, at offset: UInt64, count: Int) -> [UInt8] {
    let h = Glibc.open(hostDir! + "/" + name, O_RDONLY)
    precondition(h >= 0)
    defer { Glibc.close(h) }
    var buf = [UInt8](repeating: 0, count: count)
    let n = buf.withUnsafeMutableBytes { Glibc.pread(h, $0.baseAddress, count, off_t(offset)) }
    return Array(buf.prefix(max(n, 0)))
  }

  /// The host file's size (HostFS only).
  public func hostSize(_ name: String) -> Int {
    var st = stat()
    precondition(stat(hostDir! + "/" + name, &st) == 0)
    return Int(st.st_size)
  }

  /// `count` bytes of the file at `offset` as `pread(2)` through the engine sees them (the page
  /// cache), from a fresh read-only fd.
  public func fileBytes(_ name: String, at offset: UInt64, count: Int) throws -> [UInt8] {
    let fd = try r.cpu.open(path(name), flags: OpenFlags.readOnly)
    defer { try? r.cpu.close(fd) }
    var buf = [UInt8](repeating: 0, count: count)
    let n = try buf.withUnsafeMutableBytes { try r.mm.files.pread(fd, into: $0, at: offset) }
    return Array(buf.prefix(n))
  }

  public func umount() throws(Errno) {
    try r.machine.umount(mountPoint)
    mounted = false
  }
}

/// A rig with `kind` mounted at `/mnt` (a fresh temporary host directory for HostFS). The mount
/// is taken down at the end if the body left it, so the file system and its page caches go
/// before the rig counts frames.
public func withFileRig(
  _ kind: TestFS, config: AddressSpaceConfig = AddressSpaceConfig(profile: .reference),
  sourceLocation: SourceLocation = #_sourceLocation, _ body: (Rig, FileEnv) throws -> Void
) throws {
  let dir = kind == .hostfs ? makeHostTempDir("file") : nil
  defer { if let dir { _ = system("rm -rf '\(dir)'") } }
  try withRig(config: config, sourceLocation: sourceLocation) { r in
    let env = try FileEnv(r, kind: kind, hostDir: dir)
    defer { if env.mounted { try? env.umount() } }
    try body(r, env)
  }
}
