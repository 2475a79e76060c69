import Faultline
import Testing

@testable import FaultlineReplay

/// `MAP_HUGETLB` through replay (issue 13, engine rule 2): strace's spellings of the size
/// (`21<<MAP_HUGE_SHIFT`, as strace printed these lines on this machine with ASLR off, and the
/// `MAP_HUGE_*` names) reach the engine, which fails as the host did with no huge pages.
@Suite struct HugeTLBReplayTests {
  @Test func straceSpellingsOfTheHugePageSizeParse() throws {
    let flags = try #require(CallSyntax.flags(Array("MAP_PRIVATE|MAP_HUGETLB|21<<MAP_HUGE_SHIFT".utf8)[...]))
    #expect((try? Symbols.resolve(flags, in: Symbols.map).get()) == 0x02 | 0x40000 | 21 << 26)
    let named = try #require(CallSyntax.flags(Array("MAP_SHARED|MAP_HUGETLB|MAP_HUGE_1GB".utf8)[...]))
    #expect((try? Symbols.resolve(named, in: Symbols.map).get()) == 0x01 | 0x40000 | 30 << 26)
    #expect(CallSyntax.flags(Array("MAP_HUGETLB|21<<MAP_FOO".utf8)[...]) == nil)
    #expect(CallSyntax.flags(Array("MAP_HUGETLB|9999999999999<<MAP_HUGE_SHIFT".utf8)[...]) == nil)
  }

  @Test func mapHugeTLBReplaysWithTheHostsAnswers() throws {
    for design in FaultDesign.allCases {
      let r = try replay(
        """
        mmap(NULL, 2097152, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB|21<<MAP_HUGE_SHIFT, -1, 0) = -1 ENOMEM (Cannot allocate memory)
        mmap(NULL, 2097152, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_ANONYMOUS|MAP_HUGETLB|30<<MAP_HUGE_SHIFT, -1, 0) = -1 ENOMEM (Cannot allocate memory)
        mmap(NULL, 2097152, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB|16<<MAP_HUGE_SHIFT, -1, 0) = -1 EINVAL (Invalid argument)
        mmap(0x7ffff0001000, 2097152, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED|MAP_HUGETLB, -1, 0) = -1 EINVAL (Invalid argument)
        mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE|MAP_HUGETLB, -1, 0) = 0x7ffff7a00000
        munmap(0x7ffff7a00000, 4096) = -1 EINVAL (Invalid argument)
        store(0x7ffff7a00000, 1) = SIGBUS
        maps() =
        7ffff7a00000-7ffff7c00000 rw-p 00000000 00:11 1001                       /anon_hugepage (deleted)

        munmap(0x7ffff7a00000, 2097152) = 0
        """, design: design)
      #expect(r.mismatches == [], "\(design)")
      #expect(r.executed == 9)
    }
  }
}
