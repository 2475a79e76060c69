import Faultline
import Testing

// Page arithmetic: the rounding and counting rules the syscalls' argument checks rely on,
// including the kernel's wrap of PAGE_ALIGN in the last page of the address space.

@Suite struct PageTests {
  @Test func sizesAgree() {
    #expect(Page.size == 4096)
    #expect(Page.byteCount == 4096)
    #expect(Page.size == 1 << Page.shift)
    #expect(Page.mask & Page.offsetMask == 0)
    #expect(Page.mask | Page.offsetMask == .max)
  }

  @Test func roundingAndAlignment() {
    #expect(Page.roundDown(0x1_2345) == 0x1_2000)
    #expect(Page.roundUp(0x1_2345) == 0x1_3000)
    #expect(Page.roundUp(0x1_2000) == 0x1_2000)
    #expect(Page.roundUp(0) == 0)
    #expect(Page.isAligned(0x7000) && !Page.isAligned(0x7001))
    #expect(Page.offset(0x7abc) == 0xabc)
  }

  @Test func roundUpWrapsInTheLastPageAsPageAlignDoes() {
    // mmap/munmap/mremap catch this wrap by comparing the rounded length with the original.
    #expect(Page.roundUp(UInt64.max - 10) == 0)
    #expect(Page.covering(UInt64.max - 10) == 0)
  }

  @Test func coveringCountsPartialPages() {
    #expect(Page.covering(0) == 0)
    #expect(Page.covering(1) == 1)
    #expect(Page.covering(4096) == 1)
    #expect(Page.covering(4097) == 2)
  }

  @Test func userAddressLimitIsTheCanonicalLowerHalf() {
    #expect(Page.userAddressLimit == 0x8000_0000_0000)
    #expect(AddressSpaceConfig().taskSize <= Page.userAddressLimit - Page.size)
  }
}
