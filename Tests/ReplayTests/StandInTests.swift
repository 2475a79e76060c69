import Faultline
import Foundation
import Testing

@testable import FaultlineReplay

/// Files a traced program opens and maps, which the replay has only stand-ins for
/// (`StandInFile`): opens take the recorded result, mappings follow their type and their file
/// system. The fixture `file-stand-ins.strace` is `file-stand-ins.c.txt` recorded on Linux 6.18
/// (ext4 at /tmp, `shmem_enabled=never`, ASLR off) with `strace -f -y -e
/// trace=memory,process,openat,open,close,memfd_create`.
@Suite struct StandInTests {
  @Test(arguments: FaultDesign.allCases)
  func filesOfEveryKindReplayAsTheHostPlacedThem(_ design: FaultDesign) throws {
    let r = try replay(try readFixture("file-stand-ins.strace"), design: design)
    #expect(r.mismatches.isEmpty, "\(r.mismatches)")
    // ld.so.cache, libc, /proc/sys/vm/overcommit_memory, the ext4 file, the /dev/shm file and
    // /dev/zero: opened as recorded (the engine's tmpfs has none of them); the memfd is an fd
    // the log never opened (memfd_create is not modelled), named by -y.
    #expect(r.standInFiles == 6 && r.standIns == 14)
    #expect(r.skippedByReason["openat: failed as recorded (a file of the traced machine)"] == 1)
    #expect(r.skippedByReason.keys.allSatisfy { !$0.hasPrefix("close") }, "\(r.skippedByReason)")
  }

  /// A traced program's opens take the recorded result: before stand-ins, the open failed on
  /// the engine's empty tmpfs (ENOENT against 3) and the close after it was skipped. Failed
  /// opens are skipped, as recorded.
  @Test func anOpenOfAFileOutsideTheScriptTakesTheRecordedFD() throws {
    let r = try replay(
      """
      brk(NULL) = 0x555555559000
      open("/proc/sys/vm/overcommit_memory", O_RDONLY|O_CLOEXEC) = 3
      mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, 3, 0) = 0x7ffff7fbf000
      munmap(0x7ffff7fbf000, 4096) = 0
      close(3) = 0
      close(3) = -1 EBADF (Bad file descriptor)
      openat(AT_FDCWD, "/root/secret", O_RDONLY) = -1 EACCES (Permission denied)
      openat(AT_FDCWD, "/nonexistent", O_RDONLY) = -1 ENOENT (No such file or directory)
      """)
    #expect(r.mismatches.isEmpty, "\(r.mismatches)")
    #expect(r.standInFiles == 1 && r.standIns == 1)
    #expect(r.executed == 5 && r.matched == 5)
    #expect(r.skippedByReason == ["openat: failed as recorded (a file of the traced machine)": 2])
  }

  /// `MAP_SHARED` on an fd the log never opened is shared file memory: `MADV_REMOVE` punches a
  /// hole (Linux: 0), where an anonymous stand-in said EINVAL. A private file mapping refuses
  /// `MADV_FREE` (anonymous memory only: EINVAL) and `MADV_REMOVE` (EACCES), as Linux 6.18 does.
  @Test func aSharedMappingOfAnUnknownFDIsSharedMemory() throws {
    let r = try replay(
      """
      brk(NULL) = 0x555555559000
      mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_SHARED, 7, 0) = 0x7ffff7fbe000
      madvise(0x7ffff7fbe000, 8192, MADV_REMOVE) = 0
      mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE, 8, 0) = 0x7ffff7fbc000
      madvise(0x7ffff7fbc000, 8192, MADV_FREE) = -1 EINVAL (Invalid argument)
      madvise(0x7ffff7fbc000, 8192, MADV_REMOVE) = -1 EACCES (Permission denied)
      """)
    #expect(r.mismatches.isEmpty, "\(r.mismatches)")
    #expect(r.standIns == 2 && r.matched == 6)
  }

  /// A forked child's store to a `MAP_SHARED` stand-in shows in the parent (an anonymous
  /// private stand-in read back 00 there).
  @Test func aSharedStandInIsSharedAcrossFork() throws {
    let r = try replay(
      """
      [pid   100] mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_SHARED, 7, 0) = 0x7ffff7fbf000
      [pid   100] fork() = 101
      [pid   101] store(0x7ffff7fbf000, 1) = ok
      [pid   100] load(0x7ffff7fbf000, 2) = ok 5a00
      """)
    #expect(r.mismatches.isEmpty, "\(r.mismatches)")
    #expect(r.forks == 1 && r.matched == 3)
  }

  /// Which placement rule a path names.
  @Test(arguments: [
    ("/usr/lib/x86_64-linux-gnu/libc.so.6", StandInKind.diskFile),
    ("/tmp/file-stand-ins.ext4", .diskFile),
    ("/dev/shm/file-stand-ins", .shmem),
    ("/memfd:name (deleted)", .shmem),
    ("/run/user/1000/x", .shmem),
    ("/SYSV00000000 (deleted)", .shmem),
    ("/dev/zero", .zero),
  ])
  func aPathNamesItsFileSystem(_ path: String, _ kind: StandInKind) {
    #expect(StandInKind(path: path) == kind)
  }

  @Test func noPathIsADiskFile() {
    #expect(StandInKind(path: nil) == .diskFile)
  }

  /// Op scripts replay strictly: an `mprotect` of memory the script never mapped is what the
  /// engine says (ENOMEM), not inferred kernel-made memory, and an open runs on the engine's
  /// tmpfs, where `/etc/passwd` is not.
  @Test func opScriptsInferNothing() throws {
    let r = try replay(
      """
      mprotect(0x7ffff7fa3000, 16384, PROT_READ) = 0
      open("/etc/passwd", O_RDONLY) = 3
      load(0x7ffff7fa3000, 1) = SIGSEGV
      """)
    #expect(r.inferred == 0 && r.standInFiles == 0)
    #expect(r.mismatches.map(\.line) == [1, 2])
  }
}

/// Loads in op scripts compare the bytes read when the script records them.
@Suite struct LoadedBytesTests {
  static let script = """
    mmap(0x10000, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0) = 0x10000
    store(0x10000, 2) = ok
    load(0x10000, 4) = ok 5a5a0000
    load(0x10ffe, 4) = ok 0000
    """

  @Test func theBytesALoadReadAreCompared() throws {
    let r = try replay(Self.script)
    #expect(r.mismatches.isEmpty, "\(r.mismatches)")
    #expect(r.executed == 4 && r.matched == 4)
    let wrong = try replay(Self.script.replacingOccurrences(of: "ok 5a5a0000", with: "ok 5a5a5a00"))
    #expect(wrong.mismatches.map(\.description) == [
      "3: expected byte 5a at 0x10002, got 00 in load(0x10000, 4) = ok 5a5a5a00"
    ])
  }

  @Test func theBytesPrintBackAsTheyWereWritten() throws {
    let script = try ScriptParser.parse("load(0x10000, 4) = ok 00ff7a\n")
    #expect(script.entries[0].call.loadedBytes == [0x00, 0xFF, 0x7A])
    #expect(ScriptPrinter.line(script.entries[0].call) == "load(0x10000, 4) = ok 00ff7a")
  }

  @Test(arguments: ["load(0x10000, 4) = ok 5a5", "load(0x10000, 4) = ok zz", "store(0x10000, 4) = ok 5a5a"])
  func aMalformedByteRecordIsAParseError(_ line: String) {
    #expect(throws: ReplayParseError.self) { try ScriptParser.parse(line + "\n") }
  }
}
