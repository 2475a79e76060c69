import Faultline
import FaultlineTestSupport
import Glibc
import Synchronization
import Testing

/// Invariant 5 (DESIGN.md §4) under concurrency: bytes stored through `MAP_SHARED` mappings of a
/// HostFS file reach the host file after `msync(MS_SYNC)`, with none lost, while other threads
/// munmap and remap windows of the file, msync, and truncate a tail region.
///
/// Layout of the file: `writers * pagesPerWriter` writer pages, then `tailPages` tail pages.
/// - Writer `i` owns pages `[i*pagesPerWriter, (i+1)*pagesPerWriter)` and nobody else stores
///   there. Each store writes an 8-byte value (its iteration number tagged with the writer) into
///   one of `slots` slots of one of its pages through the whole-file mapping `M0` (never
///   unmapped while workers run) or, in the `aliased` cases, every third store through the
///   writer's own window `W_i` over the same pages, which the remapper thread munmaps and maps
///   again. A store that returns OK is recorded (per slot, the last value), so the expected
///   content of every writer page is known exactly (zeros elsewhere). A store through `W_i` may
///   get SIGSEGV MAPERR while the window is unmapped; it is then not recorded (a store within
///   one page writes nothing when it faults). In the `single` cases the windows map the tail
///   instead, so every writer page has exactly one mapping.
/// - The truncator shrinks the file to the writer pages and grows it back; only the tail
///   toucher stores there (SIGBUS expected at times). No writer page is ever beyond EOF.
/// - The syncer runs `msync(MS_SYNC)`/`MS_ASYNC` over `M0` and `msync(MS_SYNC)` over a window.
///
/// Worker threads record outcomes in atomics only; the checks run after the join.
///
/// Known engine bug (the `aliased` cases and `storeAfterAnotherMappingsWritebackReachesTheHostFile`
/// fail on it, in every design): a writeback that runs for one mapping (`msync` of it, the
/// range writeback `munmap` queues, `close`) clears the page-cache dirty state but write-protects
/// only the PTEs in the msync'd range (`cleanRange`) or none (`munmap`, `close`), not every PTE
/// of the page (`folio_mkclean` over the rmap in Linux). A PTE in another mapping stays writable,
/// so later stores through it take no fault, never mark the page dirty again, and are lost.
@Suite struct SharedFileStressTests {
  static let writers = 4
  static let pagesPerWriter = 2
  static let tailPages = 4
  static let slots = 16
  static let slotStride = 256
  static var writerPages: Int { writers * pagesPerWriter }
  static var filePages: Int { writerPages + tailPages }
  static let base0: UInt64 = testBase
  static let windowBase: UInt64 = testBase + 64 * PageTable.pmdSize
  /// Windows are a page apart so that they never merge into one VMA.
  static func window(_ i: Int) -> UInt64 { windowBase + UInt64(i * (pagesPerWriter + 1)) * page }

  struct Case: CustomStringConvertible, Sendable {
    let design: FaultDesign
    let fput: FputMode
    /// Whether writer pages are also mapped by the windows (`W_i` over writer `i`'s pages). Without,
    /// the windows map the tail and every writer page has one mapping, `M0`.
    let aliased: Bool
    var description: String { "\(design)/\(fput.rawValue)/\(aliased ? "aliased" : "single")" }
  }

  static let cases: [Case] = FaultDesign.allCases.flatMap { d in
    FputMode.allCases.flatMap { f in [false, true].map { Case(design: d, fput: f, aliased: $0) } }
  }

  /// The file offset window `i` maps.
  static func windowOffset(_ i: Int, aliased: Bool) -> Int64 {
    let len = Int64(pagesPerWriter) * Int64(page)
    return aliased ? Int64(i) * len : Int64(writerPages) * Int64(page) + Int64(i % (tailPages / pagesPerWriter)) * len
  }

  final class Shared: @unchecked Sendable {
    let writersDone = Atomic<Int>(0)
    /// A store to a writer page through `M0` failed, or one through a window failed with
    /// anything but SIGSEGV MAPERR.
    let unexpectedWriterSignals = Atomic<Int>(0)
    let unexpectedTailSignals = Atomic<Int>(0)
    let syscallFailures = Atomic<Int>(0)
    let timeouts = Atomic<Int>(0)
    let okStores = Atomic<Int>(0)
    let windowSegvs = Atomic<Int>(0)
    let tailSigbus = Atomic<Int>(0)
    let remaps = Atomic<Int>(0)
    let truncates = Atomic<Int>(0)
    let syncs = Atomic<Int>(0)
    /// Per writer, per page, per slot: the last value whose store returned OK. Each writer
    /// writes only its own part; the test reads it after `runThreads` joined them (a plain
    /// buffer, since the join orders it; a `Mutex` here trips TSan, which does not see the
    /// futex-based lock).
    let expected: UnsafeMutablePointer<UInt64>

    init() {
      let n = writers * pagesPerWriter * slots
      expected = .allocate(capacity: n)
      expected.initialize(repeating: 0, count: n)
    }

    deinit { expected.deallocate() }

    func expectedIndex(_ writer: Int, _ page: Int, _ slot: Int) -> Int {
      (writer * pagesPerWriter + page) * slots + slot
    }
  }

  /// Reads the host file's bytes with plain Glibc calls.
  static func hostBytes(_ path: String, count: Int) -> [UInt8]? {
    let h = Glibc.open(path, O_RDONLY)
    guard h >= 0 else { return nil }
    defer { Glibc.close(h) }
    var buf = [UInt8](repeating: 0, count: count)
    let n = buf.withUnsafeMutableBytes { pread(h, $0.baseAddress, count, 0) }
    return n == count ? buf : nil
  }

  /// The writer pages' expected bytes.
  static func expectedBytes(_ s: Shared) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: writerPages * Int(page))
    for i in 0..<writers {
      for p in 0..<pagesPerWriter {
        for slot in 0..<slots {
          let off = (i * pagesPerWriter + p) * Int(page) + slot * slotStride
          withUnsafeBytes(of: s.expected[s.expectedIndex(i, p, slot)].littleEndian) { for b in 0..<8 { out[off + b] = $0[b] } }
        }
      }
    }
    return out
  }

  /// Writer slots whose host bytes differ from the last OK store, with a short description of
  /// the first few (file offset, host value, expected value).
  static func lostSlots(_ host: [UInt8], _ want: [UInt8]) -> (count: Int, first: String) {
    var lost = 0
    var first: [String] = []
    func word(_ b: ArraySlice<UInt8>) -> UInt64 { b.reversed().reduce(0) { $0 << 8 | UInt64($1) } }
    for slotStart in stride(from: 0, to: want.count, by: slotStride) {
      let h = host[slotStart..<slotStart + 8]
      let w = want[slotStart..<slotStart + 8]
      if h != w {
        lost += 1
        if first.count < 3 {
          first.append("off 0x\(String(slotStart, radix: 16)): host 0x\(String(word(h), radix: 16)) want 0x\(String(word(w), radix: 16))")
        }
      }
    }
    return (lost, first.joined(separator: "; "))
  }

  @Test(arguments: cases)
  func noStoreThroughASharedMappingIsLost(c: Case) throws {
    let dir = makeHostTempDir("sharedstress")
    defer { _ = system("rm -rf '\(dir)'") }
    let path = dir + "/data"
    #expect(writeHostFile(path, [UInt8](repeating: 0, count: Self.filePages * Int(page))))

    var config = AddressSpaceConfig(profile: .reference)
    config.fputMode = c.fput
    try withRig(memoryBytes: 32 << 20, config: config, design: c.design) { r in
      let fs = try HostFS(root: dir, machine: r.machine)
      r.machine.mount(fs, at: "/mnt")
      let fd = try r.cpu.open("/mnt/data", flags: OpenFlags.readWrite)
      let total = UInt64(Self.filePages) * page
      let windowLen = UInt64(Self.pagesPerWriter) * page
      let m0 = try r.cpu.mmap(Self.base0, total, prot: rw, flags: MapFlags.shared | MapFlags.fixed, fd: fd)
      for i in 0..<Self.writers {
        _ = try r.cpu.mmap(
          Self.window(i), windowLen, prot: rw, flags: MapFlags.shared | MapFlags.fixed, fd: fd,
          offset: Self.windowOffset(i, aliased: c.aliased))
      }
      let mm = r.mm!
      let s = Shared()
      // Writers run at least `minRun` and until every other worker made `minRounds` rounds,
      // but never past `maxRun`.
      let start = ContinuousClock.now
      let minRun = Duration.milliseconds(150)
      let maxRun = Duration.milliseconds(1500)
      let minRounds = 20
      @Sendable func writersKeepGoing() -> Bool {
        let elapsed = ContinuousClock.now - start
        if elapsed > maxRun { return false }
        if elapsed < minRun { return true }
        return s.remaps.load(ordering: .relaxed) < minRounds || s.truncates.load(ordering: .relaxed) < minRounds
          || s.syncs.load(ordering: .relaxed) < minRounds
      }
      let workers = 4

      runThreads(Self.writers + workers) { t in
        let cpu = try! CPU(mm: mm)
        if t < Self.writers {
          // Writer t.
          defer { s.writersDone.add(1, ordering: .releasing) }
          var k = 1
          while k & 15 != 0 || writersKeepGoing() {
            let p = k % Self.pagesPerWriter
            let slot = (k / Self.pagesPerWriter) % Self.slots
            let value = UInt64(k) | (UInt64(t + 1) << 56)
            let viaWindow = c.aliased && k % 3 == 0
            let pageOffset = UInt64(p) * page + UInt64(slot * Self.slotStride)
            let addr =
              viaWindow
              ? Self.window(t) + pageOffset
              : m0 + UInt64(t * Self.pagesPerWriter) * page + pageOffset
            do throws(Signal) {
              try withUnsafeBytes(of: value.littleEndian) { (b) throws(Signal) in try cpu.store(addr, from: b) }
              s.expected[s.expectedIndex(t, p, slot)] = value
              s.okStores.add(1, ordering: .relaxed)
            } catch {
              if viaWindow, error == .sigsegv(.mapErr, address: addr) {
                s.windowSegvs.add(1, ordering: .relaxed)
              } else {
                s.unexpectedWriterSignals.add(1, ordering: .relaxed)
              }
            }
            k += 1
          }
          return
        }
        let stopDeadline = ContinuousClock.now + .seconds(10)
        func running() -> Bool {
          if s.writersDone.load(ordering: .acquiring) == Self.writers { return false }
          if ContinuousClock.now > stopDeadline {
            s.timeouts.add(1, ordering: .relaxed)
            return false
          }
          return true
        }
        switch t - Self.writers {
        case 0:  // Remapper: unmap and map each writer's window again.
          var i = 0
          while running() {
            let w = i % Self.writers
            do throws(Errno) {
              try cpu.munmap(Self.window(w), windowLen)
              sched_yield()
              _ = try cpu.mmap(
                Self.window(w), windowLen, prot: rw, flags: MapFlags.shared | MapFlags.fixed, fd: fd,
                offset: Self.windowOffset(w, aliased: c.aliased))
              s.remaps.add(1, ordering: .relaxed)
            } catch {
              s.syscallFailures.add(1, ordering: .relaxed)
            }
            i += 1
          }
        case 1:  // Syncer.
          var i = 0
          while running() {
            do throws(Errno) {
              if i % 2 == 0 {
                try cpu.msync(m0, total, flags: MsyncFlags.sync)
              } else {
                try cpu.msync(m0, total, flags: MsyncFlags.async)
              }
              s.syncs.add(1, ordering: .relaxed)
            } catch {
              s.syscallFailures.add(1, ordering: .relaxed)
            }
            // A window may be unmapped right now: ENOMEM is the answer then.
            do throws(Errno) {
              try cpu.msync(Self.window(i % Self.writers), windowLen, flags: MsyncFlags.sync)
            } catch {
              if error != .noMemory { s.syscallFailures.add(1, ordering: .relaxed) }
            }
            i += 1
          }
        case 2:  // Truncator: cut the tail off and grow it back.
          while running() {
            do throws(Errno) {
              try mm.files.ftruncate(fd, UInt64(Self.writerPages) * page)
              sched_yield()
              try mm.files.ftruncate(fd, total)
              s.truncates.add(1, ordering: .relaxed)
            } catch {
              s.syscallFailures.add(1, ordering: .relaxed)
            }
          }
        default:  // Tail toucher: stores and loads beyond the writer pages.
          var i = 0
          while running() {
            let addr = m0 + UInt64(Self.writerPages + i % Self.tailPages) * page + UInt64(i % 4096)
            do throws(Signal) {
              if i % 2 == 0 { try cpu.storeByte(addr, UInt8(truncatingIfNeeded: i | 1)) } else { _ = try cpu.loadByte(addr) }
            } catch {
              if error == .sigbus(address: addr) {
                s.tailSigbus.add(1, ordering: .relaxed)
              } else {
                s.unexpectedTailSignals.add(1, ordering: .relaxed)
              }
            }
            i += 1
          }
        }
      }

      #expect(s.timeouts.load(ordering: .relaxed) == 0)
      #expect(s.unexpectedWriterSignals.load(ordering: .relaxed) == 0)
      #expect(s.unexpectedTailSignals.load(ordering: .relaxed) == 0)
      #expect(s.syscallFailures.load(ordering: .relaxed) == 0)
      #expect(s.okStores.load(ordering: .relaxed) > 0)
      #expect(s.remaps.load(ordering: .relaxed) > 0)
      #expect(s.truncates.load(ordering: .relaxed) > 0)
      #expect(s.syncs.load(ordering: .relaxed) > 0)

      let want = Self.expectedBytes(s)
      // The truncator may have been cut off between its two calls: grow the file back (this
      // touches only the tail).
      try r.cpu.ftruncate(fd, total)
      // After the final msync(MS_SYNC) of the whole-file mapping, every store that returned OK
      // to a writer page is in the host file.
      try r.cpu.msync(m0, total, flags: MsyncFlags.sync)
      let afterMsync = Self.hostBytes(path, count: Self.writerPages * Int(page))
      #expect(afterMsync != nil)
      if let afterMsync {
        let lost = Self.lostSlots(afterMsync, want)
        #expect(lost.count == 0, "stores not in the host file after msync(MS_SYNC): \(lost.first)")
        // Nothing else is there either (zeros outside the slots).
        #expect(afterMsync.elementsEqual(want) || lost.count > 0, "bytes outside the slots changed")
      }
      // And after munmap, close and umount.
      try r.cpu.munmap(m0, total)
      for i in 0..<Self.writers { try r.cpu.munmap(Self.window(i), windowLen) }
      try r.cpu.close(fd)
      r.machine.drainDeferredFrees()
      #expect(throws: Never.self) { try r.machine.umount("/mnt") }
      let atEnd = Self.hostBytes(path, count: Self.writerPages * Int(page))
      #expect(atEnd != nil)
      if let atEnd {
        let lost = Self.lostSlots(atEnd, want)
        #expect(lost.count == 0, "stores not in the host file after munmap + close + umount: \(lost.first)")
      }
    }
  }

  /// The lost-write pattern the stress test can hit, made deterministic on one thread: a page is
  /// written through mapping `A` (write fault: page dirty, `A`'s PTE writable), then written back
  /// by a path that does not write-protect `A`'s PTE (`munmap` of another shared mapping `B` of
  /// the same page queues a range writeback of the file without `page_mkclean` of other
  /// mappings). The next store through `A` takes no fault, so the page-cache page is not marked
  /// dirty again, and `msync(MS_SYNC)` of `A` write-protects `A`'s PTE (dropping its dirty bit)
  /// without writing the page. Linux keeps "a writable shared PTE implies a dirty page" through
  /// `folio_mkclean` over every mapping (rmap) in `clear_page_dirty_for_io`.
  @Test(arguments: FaultDesign.allCases)
  func storeAfterAnotherMappingsWritebackReachesTheHostFile(design: FaultDesign) throws {
    let dir = makeHostTempDir("sharedlost")
    defer { _ = system("rm -rf '\(dir)'") }
    let path = dir + "/data"
    #expect(writeHostFile(path, [UInt8](repeating: 0, count: 2 * Int(page))))
    try withRig(design: design) { r in
      let fs = try HostFS(root: dir, machine: r.machine)
      r.machine.mount(fs, at: "/mnt")
      let fd = try r.cpu.open("/mnt/data", flags: OpenFlags.readWrite)
      let a = try r.cpu.mmap(testBase, 2 * page, prot: rw, flags: MapFlags.shared | MapFlags.fixed, fd: fd)
      let b = try r.cpu.mmap(testBase + 16 * page, 2 * page, prot: rw, flags: MapFlags.shared | MapFlags.fixed, fd: fd)
      try r.cpu.storeByte(a + 10, 0xAA)
      try r.cpu.munmap(b, 2 * page)  // writes the dirty page back, leaves `a`'s PTE writable
      #expect(Self.hostBytes(path, count: 11)?[10] == 0xAA)
      try r.cpu.storeByte(a + 10, 0xBB)
      try r.cpu.msync(a, 2 * page, flags: MsyncFlags.sync)
      #expect(Self.hostBytes(path, count: 11)?[10] == 0xBB, "store lost after msync(MS_SYNC)")
      try r.cpu.munmap(a, 2 * page)
      try r.cpu.close(fd)
      r.machine.drainDeferredFrees()
      try r.machine.umount("/mnt")
      #expect(Self.hostBytes(path, count: 11)?[10] == 0xBB, "store lost after munmap + close + umount")
    }
  }
}
