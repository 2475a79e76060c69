import Faultline
import FaultlineConform
import Testing

/// conform's huge-page mode (issue 18, acceptance 2): the window, what the generator draws, and
/// the host's transparent huge pages as the probe sees them.

/// The window and the generator of `--window thp` (no host needed).
@Suite struct THPGeneratorTests {
  let window = ConformWindow.thp
  var generator: ConformGenerator {
    var options = GeneratorOptions()
    options.hugePages = true
    return ConformGenerator(window: window, options: options)
  }

  @Test func theWindowIsFourAlignedHugeRanges() {
    #expect(window.start % (2 << 20) == 0)
    #expect(window.length == 8 << 20)
    #expect(window.hugeRanges == 4)
    #expect(window.hugeRange(3) == window.start + (6 << 20))
    #expect(ConformWindow().hugeRanges == 0)
    // An unaligned start: the first whole range begins at the next 2 MiB boundary.
    let w = ConformWindow(start: 0x1000_0010_0000, pages: 1024)
    #expect(w.hugeRanges == 1)
    #expect(w.hugeRange(0) == 0x1000_0020_0000)
  }

  @Test func aSeedGivesTheSameHugeSequenceTwice() {
    let g = generator
    let a = g.sequence(seed: 7, index: 2, length: 60)
    #expect(a == g.sequence(seed: 7, index: 2, length: 60))
    #expect(a.count == 60 && a.last == .maps)
    #expect(g.sequence(seed: 7, index: 3, length: 60) != a)
    #expect(ConformGenerator(window: window).sequence(seed: 7, index: 2, length: 60) != a)
  }

  /// In a window without two whole 2 MiB ranges the option changes nothing.
  @Test func aSmallWindowIgnoresTheHugePageOption() {
    var options = GeneratorOptions()
    options.hugePages = true
    let small = ConformWindow()
    let g = ConformGenerator(window: small, options: options)
    for i in 0..<20 {
      #expect(g.sequence(seed: 3, index: i, length: 40) == ConformGenerator(window: small).sequence(seed: 3, index: i, length: 40))
    }
  }

  /// Every fixed mapping, fixed move target, access and range call stays in the reservation
  /// (calls with a length past the address space aside: they fail before they touch anything).
  @Test func hugeSequencesStayInTheReservation() {
    let lo = window.reserveStart
    let hi = window.reserveStart + window.reserveLength
    func inside(_ addr: UInt64, _ length: UInt64) -> Bool { addr >= lo && addr <= hi && length <= hi - addr }
    for i in 0..<200 {
      for op in generator.sequence(seed: 9, index: i, length: 50) {
        switch op {
        case .mmap(let addr, let length, _, let flags)
        where flags & 0x10 != 0 && addr != 0 && addr < 0x7FFF_0000_0000 && length < 1 << 40:
          #expect(inside(addr, length), "\(op)")
        case .mremap(_, _, let newSize, let flags, let newAddress) where flags == 3 || flags == 7:
          #expect(inside(newAddress, newSize), "\(op)")
        case .load(let addr, let length), .store(let addr, let length, _):
          #expect(addr < 0x2000 || inside(addr, length), "\(op)")
        case .madvise(let addr, let length, _), .mincore(let addr, let length), .mlock(let addr, let length),
          .mlock2(let addr, let length, _), .munlock(let addr, let length), .mprotect(let addr, let length, _),
          .munmap(let addr, let length):
          if length < 1 << 40 { #expect(inside(addr, length), "\(op)") }
        default: break
        }
      }
    }
  }

  /// The ops that make and split huge PMDs all appear: aligned 2 MiB mappings, HUGEPAGE and
  /// NOHUGEPAGE, stores at a range's start, mincore of a whole range, 4 KiB DONTNEED inside a
  /// range, aligned moves to another range, and unaligned ones.
  @Test func theHugeModeDrawsTheOpsThatMakeAndSplitHugePages() {
    let size: UInt64 = 2 << 20
    func aligned(_ a: UInt64) -> Bool { a % size == 0 && a >= window.start && a < window.end }
    var seen = Set<String>()
    for i in 0..<50 {
      for op in generator.sequence(seed: 11, index: i, length: 40) {
        switch op {
        case .mmap(let a, let l, 3, 0x32) where aligned(a) && l % size == 0: seen.insert("aligned mmap")
        case .madvise(let a, let l, 14) where aligned(a) && l % size == 0: seen.insert("HUGEPAGE")
        case .madvise(_, _, 14): seen.insert("partial HUGEPAGE")
        case .madvise(_, _, 15): seen.insert("NOHUGEPAGE")
        case .madvise(let a, let l, 4) where !aligned(a) && l < size: seen.insert("DONTNEED inside")
        case .store(let a, _, _) where aligned(a): seen.insert("store at a range's start")
        case .load(let a, _) where aligned(a): seen.insert("load at a range's start")
        case .mincore(let a, size) where aligned(a): seen.insert("mincore of a range")
        case .mremap(let o, size, size, 3, let n) where aligned(o) && aligned(n): seen.insert("aligned move")
        case .mremap(let o, _, _, 3, let n) where !aligned(o) || !aligned(n): seen.insert("unaligned move")
        case .munmap(let a, let l) where !aligned(a) && l < size: seen.insert("munmap inside")
        case .mprotect(let a, let l, _) where !aligned(a) && l < size: seen.insert("mprotect inside")
        default: break
        }
      }
    }
    #expect(
      seen == [
        "aligned mmap", "HUGEPAGE", "partial HUGEPAGE", "NOHUGEPAGE", "DONTNEED inside", "store at a range's start",
        "load at a range's start", "mincore of a range", "aligned move", "unaligned move", "munmap inside",
        "mprotect inside",
      ])
  }
}

/// The host's transparent huge pages as the probe records them. Expectations follow the host's
/// own THP setting (read through `MachineProfile.host`), so the tests hold under `always`,
/// `madvise` and `never` alike; each was first run on this machine's 6.18 kernel (`madvise`).
@Suite("Host THP through the probe", .enabled(if: HostProbe.usable, "ThreadSanitizer refuses the probe's mappings"))
struct THPHostTests {
  let window = ConformWindow.thp
  let host = MachineProfile.host
  let size: UInt64 = 2 << 20
  let fixedPrivate: Int32 = 0x32

  /// A PMD-sized page where the host's setting allows one (`advised`: the VMA has
  /// `VM_HUGEPAGE`).
  func allows(advised: Bool) -> Bool { TransparentHugePage.settingAllows(host, advised: advised) }

  /// mincore's vector of a whole 2 MiB range after one page of it was faulted: all 1 for a huge
  /// page, else only that page.
  func vector(huge: Bool, page: Int = 0) -> ConformResult {
    var v = [UInt8](repeating: huge ? 1 : 0, count: 512)
    v[page] = 1
    return .vector(v)
  }

  @Test func aWriteFillsTheVectorOfAnAdvisedRangeOnly() throws {
    let r = (0..<4).map { window.hugeRange(UInt64($0)) }
    let res = try HostProbe(window: window).run([
      .mmap(addr: r[0], length: 8 << 20, prot: 3, flags: fixedPrivate),
      .madvise(addr: r[1], length: size, advice: 14),  // MADV_HUGEPAGE
      .madvise(addr: r[2], length: size, advice: 15),  // MADV_NOHUGEPAGE
      .store(addr: r[1], length: 1, pattern: 5),
      .store(addr: r[2], length: 1, pattern: 5),
      .store(addr: r[0] + 0x5000, length: 1, pattern: 5),
      .mincore(addr: r[1], length: size),
      .mincore(addr: r[2], length: size),
      .mincore(addr: r[0], length: size),
      .madvise(addr: r[1] + 0x3000, length: 4096, advice: 4),  // MADV_DONTNEED splits the PMD
      .mincore(addr: r[1], length: size),
      .load(addr: r[1] + 0x2FFF, length: 2),
    ])
    #expect(res[6] == vector(huge: allows(advised: true)))
    #expect(res[7] == vector(huge: false))
    // Unadvised: no huge page unless the setting is `always` (where one may still fall back to
    // 4 KiB pages: without MADV_HUGEPAGE the fault does not compact under `defrag=madvise`).
    if allows(advised: false) {
      #expect(res[8] == vector(huge: true) || res[8] == vector(huge: false, page: 5))
    } else {
      #expect(res[8] == vector(huge: false, page: 5))
    }
    var split = [UInt8](repeating: 1, count: 512)
    split[3] = 0
    #expect(res[10] == (allows(advised: true) ? .vector(split) : vector(huge: false)))
    #expect(res[11] == .access(signal: nil, faultAddress: 0, bytes: [0, 0]))
  }

  @Test func aReadMapsTheHugeZeroPageAndAWriteReplacesIt() throws {
    let a = window.hugeRange(0)
    let res = try HostProbe(window: window).run([
      .mmap(addr: a, length: 2 * size, prot: 3, flags: fixedPrivate),
      .madvise(addr: a, length: 2 * size, advice: 14),
      .load(addr: a + 0x1234, length: 64),
      .mincore(addr: a, length: size),
      .store(addr: a + 100, length: 1, pattern: 9),
      .mincore(addr: a, length: size),
      .load(addr: a + 99, length: 3),
      .load(addr: a + 0x1FF000, length: 8),
    ])
    #expect(res[2] == .access(signal: nil, faultAddress: 0, bytes: [UInt8](repeating: 0, count: 64)))
    // The huge zero page, or with `use_zero_page` 0 a huge page of its own: all 1 either way.
    #expect(res[3] == vector(huge: allows(advised: true), page: 1))
    // A write to the huge zero page gets a huge page (or, where none can be had, zero-page PTEs
    // around a 4 KiB copy): every entry stays 1.
    #expect(res[5] == vector(huge: allows(advised: true), page: 1).orFilled(at: 0))
    #expect(res[6] == .access(signal: nil, faultAddress: 0, bytes: [0, 9, 0]))
    #expect(res[7] == .access(signal: nil, faultAddress: 0, bytes: [UInt8](repeating: 0, count: 8)))
  }

  @Test func anAlignedMoveCarriesTheHugePageAndPartialCallsSplitIt() throws {
    let r2 = window.hugeRange(2)
    let r3 = window.hugeRange(3)
    let res = try HostProbe(window: window).run([
      .mmap(addr: window.start, length: 8 << 20, prot: 3, flags: fixedPrivate),
      .madvise(addr: window.start, length: 8 << 20, advice: 14),
      .store(addr: r2 + 5, length: 1, pattern: 7),
      .mremap(old: r2, oldSize: size, newSize: size, flags: 3, newAddress: r3),
      .mincore(addr: r3, length: size),
      .mincore(addr: r2, length: size),
      .load(addr: r3 + 4, length: 3),
      .mprotect(addr: r3 + 0x10000, length: 4096, prot: 1),
      .munmap(addr: r3 + 0x20000, length: 8192),
      .mincore(addr: r3, length: 0x20000),
      .mincore(addr: r3, length: size),
      .store(addr: r3 + 0x10000, length: 1, pattern: 1),
      .maps,
    ])
    let huge = allows(advised: true)
    #expect(res[3] == .returned(r3))
    #expect(res[4] == vector(huge: huge, page: 0))
    #expect(res[5] == .failed(12))  // ENOMEM: nothing is mapped there any more
    #expect(res[6] == .access(signal: nil, faultAddress: 0, bytes: [0, 7, 0]))
    #expect(res[9] == .vector([UInt8](repeating: huge ? 1 : 0, count: 32)).orFilled(at: 0))
    #expect(res[10] == .failed(12))  // the munmap left a hole
    #expect(res[11] == .access(signal: .sigsegv(code: 2), faultAddress: r3 + 0x10000, bytes: []))
    let s = { (a: UInt64) in String(a, radix: 16) }
    #expect(
      res[12]
        == .maps([
          "\(s(window.start))-\(s(r2)) rw-p 00000000 00:00 0 ",
          "\(s(r3))-\(s(r3 + 0x10000)) rw-p 00000000 00:00 0 ",
          "\(s(r3 + 0x10000))-\(s(r3 + 0x11000)) r--p 00000000 00:00 0 ",
          "\(s(r3 + 0x11000))-\(s(r3 + 0x20000)) rw-p 00000000 00:00 0 ",
          "\(s(r3 + 0x22000))-\(s(window.end)) rw-p 00000000 00:00 0 ",
        ]))
  }

  /// A read fault that maps the huge zero page prepares the VMA's anon_vma (`vmf_anon_prepare`
  /// comes first in `do_huge_pmd_anonymous_page`), which a 4 KiB zero-page read does not: the
  /// range moved back into the VMA keeps its old page offset and merges with neither side.
  @Test func aHugeZeroPageReadKeepsAMovedRangeApart() throws {
    let res = try HostProbe(window: window).run(Self.zeroPageMoveScript(window))
    let s = { (a: UInt64) in String(window.start + a, radix: 16) }
    let moved = [
      "\(s(0))-\(s(0xB8000)) r--p 00000000 00:00 0 ", "\(s(0xB8000))-\(s(0xC7000)) r--p 00000000 00:00 0 ",
      "\(s(0xC7000))-\(s(0x724000)) r--p 00000000 00:00 0 ",
    ]
    let merged = ["\(s(0))-\(s(0x724000)) r--p 00000000 00:00 0 "]
    let rest = ["\(s(0x733000))-\(s(0x800000)) r--p 00000000 00:00 0 "]
    #expect(res[4] == .maps((allows(advised: true) ? moved : merged) + rest))
  }

  /// Read-only 8 MiB, advised, one byte read in the last 2 MiB range, then 15 pages of that
  /// range moved into the first one.
  static func zeroPageMoveScript(_ w: ConformWindow) -> [ConformOp] {
    [
      .mmap(addr: w.start, length: 8 << 20, prot: 1, flags: 0x32),
      .madvise(addr: w.start, length: 8 << 20, advice: 14),
      .load(addr: w.start + 0x74D1AC, length: 1),
      .mremap(old: w.start + 0x724000, oldSize: 61440, newSize: 61440, flags: 3, newAddress: w.start + 0xB8000),
      .maps,
    ]
  }
}

/// The huge-page mode against the engine: it agrees once the engine maps PMD-sized pages.
@Suite("conform --window thp against the engine", .enabled(if: HostProbe.usable, "ThreadSanitizer refuses the probe's mappings"))
struct THPConformTests {
  @Test
  func aSmallHugePageRunAgreesWithTheHost() throws {
    let window = ConformWindow.thp
    var options = GeneratorOptions()
    options.hugePages = true
    let runner = ConformRunner(
      probe: try HostProbe(window: window), engine: EngineRunner(window: window, memoryBytes: 64 << 20))
    let summary = runner.runSequences(
      seed: 1, indices: 0..<30, length: 40, generator: ConformGenerator(window: window, options: options))
    for (i, outcome) in summary.failing.prefix(3) { Issue.record("sequence \(i): \(outcome.disagreements.first!)") }
    #expect(summary.hostFailures.isEmpty)
    #expect(summary.disagreements == 0)
  }

  /// The script of issue 18 and the anon_vma a huge zero-page fault prepares.
  @Test
  func hugePageScriptsAgreeWithTheHost() throws {
    let w = ConformWindow.thp
    let runner = ConformRunner(probe: try HostProbe(window: w), engine: EngineRunner(window: w, memoryBytes: 64 << 20))
    let issueScript: [ConformOp] = [
      .mmap(addr: w.start, length: 8 << 20, prot: 3, flags: 0x32),
      .madvise(addr: w.start, length: 4 << 20, advice: 14),
      .store(addr: w.start, length: 1, pattern: 1),
      .mincore(addr: w.start, length: 32768),
      .load(addr: w.start + (2 << 20), length: 1),
      .mincore(addr: w.start + (2 << 20), length: 16384),
      .madvise(addr: w.start + 0x3000, length: 4096, advice: 4),
      .mincore(addr: w.start, length: 20480),
      .maps,
    ]
    for ops in [issueScript, THPHostTests.zeroPageMoveScript(w)] {
      let outcome = try runner.run(ops)
      #expect(outcome.agrees, "\(outcome.disagreements.first.map(String.init(describing:)) ?? "")")
    }
  }
}

extension ConformResult {
  /// A vector with entry `index` set to 1 (other results as they are).
  fileprivate func orFilled(at index: Int) -> ConformResult {
    guard case .vector(var v) = self else { return self }
    v[index] = 1
    return .vector(v)
  }
}
