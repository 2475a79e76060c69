import ArgumentParser
import Faultline
import Testing

@testable import FaultlineCLI

/// `faultline fault-cost`: the loop callgrind counts takes exactly the faults its kind names
/// (no valgrind here; the counts come from the machine's vmstat).
@Suite struct FaultCostTests {
  /// Faults, pages zeroed, pages copied and pages mapped by fault-around that 64 touched pages
  /// of `kind` imply. file-read touches one page per 16-page block: the locked designs map the
  /// other 15 around it, SPF's speculative file fault maps only its own page.
  static func expected(_ kind: FaultKind, _ design: FaultDesign) -> [UInt64] {
    switch kind {
    case .anonWrite: [64, 64, 0, 0]
    case .anonRead, .fileSharedWrite: [64, 0, 0, 0]
    case .cow, .fileCOW: [64, 0, 64, 0]
    // The speculative designs map no pages around a read fault (only the locked paths do).
    case .fileRead: [4, 0, 0, design == .speculative || design == .sequenced ? 0 : 60]
    }
  }

  @Test(arguments: FaultKind.allCases, FaultDesign.allCases)
  func theLoopTakesExactlyTheFaultsOfItsKind(_ kind: FaultKind, _ design: FaultDesign) throws {
    let r = try measureFaultCost(kind: kind, design: design, pages: 64, memoryBytes: 4 << 20)
    #expect([r.faults, r.pagesZeroed, r.pagesCopied, r.faultAroundPages] == Self.expected(kind, design))
    if design == .mmapLock { #expect(r.locklessFaults == 0) }
  }

  @Test func theCommandParsesAndRefusesUnknownValues() throws {
    let c = try FaultCost.parse(["--kind", "file-read", "--design", "vma_lock", "--pages", "32", "--memory-mib", "8"])
    #expect((c.kind, c.design, c.pages, c.memoryMiB) == (.fileRead, "vma_lock", 32, 8))
    #expect(throws: (any Error).self) { try FaultCost.parse(["--kind", "anon"]) }
    #expect(throws: (any Error).self) { try FaultCost.parse(["--kind", "cow", "--design", "rcu"]) }
    #expect(throws: (any Error).self) { try FaultCost.parse(["--kind", "cow", "--pages", "0"]) }
  }

  @Test func theOutputIsNameValueLines() throws {
    let r = try measureFaultCost(kind: .anonWrite, design: .mmapLock, pages: 8, memoryBytes: 4 << 20)
    #expect(r.text.hasPrefix("kind anon-write\ndesign mmap_lock\npages 8\nfaults 8\npages_zeroed 8\n"))
  }
}
