/// The base page and the address-space limits that follow from it: x86-64's 4 KiB page with
/// 4-level page tables. Linux's `PAGE_SHIFT`, `PAGE_SIZE`, `PAGE_MASK`, `PAGE_ALIGN`,
/// `PAGE_ALIGNED`, `offset_in_page` and `PFN_UP`, in one place, so page arithmetic is written
/// with names rather than `0xFFF`, `4096` and `12` (as gVisor's `hostarch` does).
///
/// Faultline models only the 4 KiB base page; a huge page size would be a second namespace.
/// Everything here is `@inlinable`, so the workloads and tools outside the module fold it to
/// constants as the engine does.
public enum Page {
  /// `PAGE_SHIFT`: log2 of the page size.
  @inlinable public static var shift: UInt64 { 12 }
  /// `PAGE_SIZE` in bytes, as an address quantity.
  @inlinable public static var size: UInt64 { 1 << shift }
  /// `PAGE_SIZE` in bytes, as a buffer length.
  @inlinable public static var byteCount: Int { 1 << shift }
  /// `~PAGE_MASK`: the bits of an address within its page.
  @inlinable public static var offsetMask: UInt64 { size - 1 }
  /// `PAGE_MASK`: the bits of an address that name its page.
  @inlinable public static var mask: UInt64 { ~offsetMask }
  /// `1 << __VIRTUAL_MASK_SHIFT`: the end of the lower canonical half, the span 4-level page
  /// tables translate. Linux's `TASK_SIZE_MAX` is one page below it; the configured `taskSize`
  /// (`AddressSpaceConfig`) may be lower still.
  @inlinable public static var userAddressLimit: UInt64 { 1 << 47 }

  /// The start of the page holding `address` (`address & PAGE_MASK`).
  @inlinable @inline(__always) public static func roundDown(_ address: UInt64) -> UInt64 { address & mask }

  /// `PAGE_ALIGN`: rounds up to a page boundary; like the kernel's macro it wraps to 0 for a
  /// value in the last page of the address space, which callers that take lengths check.
  @inlinable @inline(__always) public static func roundUp(_ value: UInt64) -> UInt64 { (value &+ offsetMask) & mask }

  /// `PAGE_ALIGNED`: whether `value` is a multiple of the page size.
  @inlinable @inline(__always) public static func isAligned(_ value: UInt64) -> Bool { value & offsetMask == 0 }

  /// `offset_in_page`: the byte offset of `address` within its page.
  @inlinable @inline(__always) public static func offset(_ address: UInt64) -> UInt64 { address & offsetMask }

  /// `PFN_UP`/`DIV_ROUND_UP(bytes, PAGE_SIZE)`: the number of pages `bytes` bytes cover, e.g.
  /// the page-cache indexes below a file size. Wraps like `roundUp` for sizes in the last page.
  @inlinable @inline(__always) public static func covering(_ bytes: UInt64) -> UInt64 { (bytes &+ offsetMask) >> shift }
}
