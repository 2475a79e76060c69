/// The generator's huge-page ops (`GeneratorOptions.hugePages`, `faultline conform --window thp`;
/// issue 18): calls that make PMD-mapped transparent huge pages in the window's 2 MiB ranges, and
/// calls that split them.
///
/// What shows a huge page on both sides is mincore's vector (one write in a huge page makes all
/// 512 entries 1, one 4 KiB `MADV_DONTNEED` after it leaves 511) and the bytes a load reads (the
/// huge zero page reads as zeros), so the ops are: `MAP_FIXED` private anonymous mappings of
/// whole 2 MiB ranges (and ones a few pages off), `MADV_HUGEPAGE`/`MADV_NOHUGEPAGE` of whole and
/// partial ranges, loads and stores at the start of a range and anywhere in it, mincore of whole
/// ranges, 4 KiB-granular munmap, mprotect, madvise and mlock inside a range, and mremap of
/// aligned ranges to other aligned addresses (`move_huge_pmd`) and of unaligned ones.

import Faultline

extension ConformGenerator {
  /// Advice for a range inside a huge page: what splits or drops a PMD (DONTNEED, FREE, COLD,
  /// PAGEOUT, DONTNEED_LOCKED, a guard), what faults one in (WILLNEED, POPULATE_READ/WRITE), the
  /// THP flags themselves, flags that only split the VMA (DONTFORK, WIPEONFORK, DONTDUMP, ...),
  /// and REMOVE (EINVAL on private memory). COLLAPSE comes with the THP flags (`nextHugeOp`).
  static let hugeAdviceChoices: [Int32] = [
    4, 4, 4, 8, 8, 20, 21, 21, 24, 3, 22, 23, 23, 14, 14, 15, 15, 0, 1, 2, 9, 10, 11, 16, 17, 18, 19, 102, 103,
  ]

  /// One op of the huge-page mode; a tenth are the default mode's ops (`nextOp`), aimed at the
  /// same window, so that the rest of the calls meet huge pages too.
  func nextHugeOp(_ rng: inout SplitMix64, _ state: inout State) -> ConformOp {
    if !state.pendingHuge.isEmpty { return state.pendingHuge.removeFirst() }
    // Before anything is mapped, mostly map (an op on nothing is ENOMEM or SIGSEGV, rows that
    // are covered already).
    if state.hugeMapped.isEmpty && Int.random(in: 0..<4, using: &rng) != 0 { return genHugeMmap(&rng, &state) }
    let kinds: [(Int, String)] = [
      (12, "mmap"), (14, "advise"), (16, "store"), (12, "load"), (12, "mincore"), (16, "split"), (8, "mremap"),
      (3, "maps"), (11, "other"),
    ]
    let kind = Self.draw(kinds, &rng)
    switch kind {
    case "mmap": return genHugeMmap(&rng, &state)
    case "advise":
      // Mostly MADV_HUGEPAGE (the setting `madvise` needs it), else MADV_NOHUGEPAGE or
      // MADV_COLLAPSE.
      let advice: Int32 = [14, 14, 14, 15, 15, 25, 25][Int.random(in: 0..<7, using: &rng)]
      let (a, l) = hugeRegion(&rng, state)
      return .madvise(addr: a, length: l, advice: advice)
    case "store", "load":
      let a = hugeAccessAddress(&rng, state)
      let n = UInt64([1, 1, 8, 64, 300, 4096].randomElement(using: &rng)!)
      if kind == "load" { return .load(addr: a, length: n) }
      return .store(addr: a, length: n, pattern: UInt8.random(in: 1...255, using: &rng))
    case "mincore":
      let i = hugeIndex(&rng, state)
      let base = window.hugeRange(i)
      switch Int.random(in: 0..<10, using: &rng) {
      case 0: return .mincore(addr: window.hugeRange(0), length: window.hugeRanges * ConformWindow.hugeSize)
      case 1: return .mincore(addr: base, length: ConformWindow.hugeSize - 100)  // rounds up to the range
      case 2:
        let (a, l) = pagesInside(&rng, base)
        return .mincore(addr: a, length: l)
      default: return .mincore(addr: base, length: ConformWindow.hugeSize)
      }
    case "split": return genHugeSplit(&rng, &state)
    case "mremap": return genHugeMremap(&rng, &state)
    case "maps": return .maps
    default: return nextOp(&rng, &state)
    }
  }

  /// A 2 MiB range's index: mostly one a huge-page op mapped, else any.
  func hugeIndex(_ rng: inout SplitMix64, _ state: State) -> UInt64 {
    if !state.hugeMapped.isEmpty && Int.random(in: 0..<4, using: &rng) != 0 {
      return state.hugeMapped.randomElement(using: &rng)!
    }
    return UInt64.random(in: 0..<window.hugeRanges, using: &rng)
  }

  /// 4 KiB-aligned pages inside the 2 MiB range at `base`: mostly a few pages anywhere in it
  /// (never the whole range), sometimes from a page to the range's end.
  func pagesInside(_ rng: inout SplitMix64, _ base: UInt64) -> (UInt64, UInt64) {
    let first = UInt64.random(in: 0..<ConformWindow.hugePages, using: &rng)
    let room = ConformWindow.hugePages - first
    var pages = UInt64.random(in: 1...min(16, room), using: &rng)
    if Int.random(in: 0..<4, using: &rng) == 0 { pages = room }
    if first == 0 && pages == ConformWindow.hugePages { pages -= 1 }
    return (base + (first << Page.shift), pages << Page.shift)
  }

  /// A range for MADV_HUGEPAGE/NOHUGEPAGE: whole 2 MiB ranges (one or two), pages inside one,
  /// one that crosses a 2 MiB boundary, or the whole window.
  func hugeRegion(_ rng: inout SplitMix64, _ state: State) -> (UInt64, UInt64) {
    let i = hugeIndex(&rng, state)
    let base = window.hugeRange(i)
    let size = ConformWindow.hugeSize
    switch Int.random(in: 0..<8, using: &rng) {
    case 0..<3:
      let count = UInt64.random(in: 1...min(2, window.hugeRanges - i), using: &rng)
      return (base, count * size)
    case 3, 4: return pagesInside(&rng, base)
    case 5:
      // From a page inside this range to the same page of the next (or to the window's end).
      let a = base + (UInt64.random(in: 1..<ConformWindow.hugePages, using: &rng) << Page.shift)
      return (a, min(size, window.end - a))
    default: return (window.hugeRange(0), window.hugeRanges * size)
    }
  }

  /// A load/store address: the start of a 2 MiB range, a few bytes in, anywhere in it, or just
  /// before its end (crossing into the next range, or the margin after the window).
  func hugeAccessAddress(_ rng: inout SplitMix64, _ state: State) -> UInt64 {
    let base = window.hugeRange(hugeIndex(&rng, state))
    switch Int.random(in: 0..<10, using: &rng) {
    case 0..<4: return base
    case 4, 5: return base + UInt64.random(in: 1..<64, using: &rng)
    case 6: return base + ConformWindow.hugeSize - UInt64.random(in: 1...16, using: &rng)
    default: return base + UInt64.random(in: 0..<ConformWindow.hugeSize, using: &rng)
    }
  }

  /// A `MAP_FIXED` private anonymous mapping of one or two whole 2 MiB ranges (or the whole
  /// window), mostly read-write; now and then starting or ending a few pages off the boundary,
  /// populated, locked (over `RLIMIT_MEMLOCK`), `MAP_STACK` (`VM_NOHUGEPAGE`), shared (shmem,
  /// whose huge pages follow `shmem_enabled`), `MAP_FIXED_NOREPLACE`, or a hint.
  func genHugeMmap(_ rng: inout SplitMix64, _ state: inout State) -> ConformOp {
    let n = window.hugeRanges
    let size = ConformWindow.hugeSize
    var first = hugeIndex(&rng, state)
    var count = UInt64.random(in: 1...min(2, n - first), using: &rng)
    if Int.random(in: 0..<8, using: &rng) == 0 { (first, count) = (0, n) }
    var addr = window.hugeRange(first)
    var length = count * size
    let r = Int.random(in: 0..<10, using: &rng)
    var prot: Int32 = r == 0 ? 1 : r == 1 ? 0 : 3
    var flags: Int32 = 0x22 | 0x10  // MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED
    let pages = UInt64.random(in: 1..<ConformWindow.hugePages, using: &rng) << Page.shift
    switch Int.random(in: 0..<20, using: &rng) {
    case 0 where addr >= window.start + pages:
      // Starts a few pages before the boundary: the VMA still covers the aligned range.
      addr -= pages
      length += pages
    case 1: length -= pages  // ends short of the last range's end
    case 2 where addr + length + pages <= window.end: length += pages
    case 3: flags |= 0x8000  // MAP_POPULATE
    case 4: flags |= 0x2000  // MAP_LOCKED: over the child's RLIMIT_MEMLOCK
    case 5: flags |= 0x20000  // MAP_STACK: VM_NOHUGEPAGE since 6.7
    case 6: flags = 0x21 | 0x10  // shared anonymous
    case 7: flags |= 0x4000  // MAP_NORESERVE
    case 8: flags = 0x22 | 0x100000  // MAP_FIXED_NOREPLACE
    case 9: flags = 0x22  // a hint: compared modulo placement
    case 10: prot = Self.protChoices.randomElement(using: &rng)!
    default: break
    }
    state.noteProt(prot, pkeys: protectionKeys == .x86)
    if flags & 0x3 == 0x1 { state.markShared(addr, length) }
    if flags & 0x10 != 0 {
      state.mapped.append((addr, length))
      if state.mapped.count > 8 { state.mapped.removeFirst() }
      noteHugeMapped(&state, addr, length)
      // Half the fixed mappings are advised at once (under `enabled=madvise` nothing else makes
      // a huge page), the whole of them or from their first 2 MiB boundary.
      if Int.random(in: 0..<2, using: &rng) == 0 {
        let from = Bool.random(using: &rng) ? addr : (addr + ConformWindow.hugeSize - 1) & ~(ConformWindow.hugeSize - 1)
        if from < addr + length { state.pendingHuge.append(.madvise(addr: from, length: addr + length - from, advice: 14)) }
      }
    }
    return .mmap(addr: addr, length: length, prot: prot, flags: flags)
  }

  /// Adds the 2 MiB ranges that `[addr, addr + length)` reaches to `state.hugeMapped`.
  func noteHugeMapped(_ state: inout State, _ addr: UInt64, _ length: UInt64) {
    let origin = window.hugeRange(0)
    guard addr < window.end, length > 0, addr &+ length > addr else { return }
    let lo = (max(addr, origin) - origin) / ConformWindow.hugeSize
    let hi = (min(addr + length, window.end) - 1 - origin) / ConformWindow.hugeSize
    guard hi >= lo else { return }
    for i in lo...min(hi, window.hugeRanges - 1) where !state.hugeMapped.contains(i) { state.hugeMapped.append(i) }
  }

  /// A call on 4 KiB pages inside a 2 MiB range, which splits a huge PMD there: munmap,
  /// mprotect, madvise (`hugeAdviceChoices`), mlock/mlock2/munlock.
  func genHugeSplit(_ rng: inout SplitMix64, _ state: inout State) -> ConformOp {
    let (a, l) = pagesInside(&rng, window.hugeRange(hugeIndex(&rng, state)))
    switch Int.random(in: 0..<13, using: &rng) {
    case 0..<3: return .munmap(addr: a, length: l)
    case 3..<6:
      let prot = Self.protChoices.randomElement(using: &rng)!
      state.noteProt(prot, pkeys: protectionKeys == .x86)
      return .mprotect(addr: a, length: l, prot: prot)
    case 6..<11: return .madvise(addr: a, length: l, advice: Self.hugeAdviceChoices.randomElement(using: &rng)!)
    case 11: return Bool.random(using: &rng) ? .mlock(addr: a, length: l) : .mlock2(addr: a, length: l, flags: 1)
    default: return .munlock(addr: a, length: l)
    }
  }

  /// mremap around huge pages: a whole aligned range (or two) moved to another aligned range
  /// (`MREMAP_MAYMOVE|MREMAP_FIXED`, and with `MREMAP_DONTUNMAP`), an aligned range moved to an
  /// unaligned address, pages inside a range moved anywhere in the window, an aligned range
  /// shrunk in place, or grown (in place, or `MAYMOVE`, compared modulo placement).
  func genHugeMremap(_ rng: inout SplitMix64, _ state: inout State) -> ConformOp {
    let n = window.hugeRanges
    let size = ConformWindow.hugeSize
    let i = hugeIndex(&rng, state)
    var j = UInt64.random(in: 0..<n - 1, using: &rng)
    if j >= i { j += 1 }  // another range
    var old = window.hugeRange(i)
    var oldSize = size
    var newSize = size
    var flags: Int32 = 3  // MAYMOVE|FIXED
    var target = window.hugeRange(j)
    switch Int.random(in: 0..<10, using: &rng) {
    case 0..<3:
      // Two ranges when both ends have room (overlapping ones are EINVAL).
      if Bool.random(using: &rng) && i + 1 < n && j + 1 < n { (oldSize, newSize) = (2 * size, 2 * size) }
    case 3: flags = 7  // DONTUNMAP
    case 4:
      target += UInt64.random(in: 1..<ConformWindow.hugePages, using: &rng) << Page.shift
      newSize = min(size, window.end - target)
      oldSize = newSize
    case 5, 6:
      (old, oldSize) = pagesInside(&rng, old)
      newSize = oldSize
      target += UInt64.random(in: 0..<ConformWindow.hugePages, using: &rng) << Page.shift
      newSize = min(newSize, window.end - target)
    case 7:
      flags = 0
      newSize = UInt64.random(in: 1..<ConformWindow.hugePages, using: &rng) << Page.shift
    default:
      flags = Bool.random(using: &rng) ? 0 : 1
      newSize = min(2 * size, window.end - old)
      target = 0
    }
    if flags & 2 == 0 { target = 0 }
    if state.anyShared(old, oldSize) {
      if flags & 2 != 0 {
        state.markShared(target, newSize)
      } else if flags & 1 != 0 {
        state.markShared(window.start, window.length)
      }
    }
    if flags & 2 != 0 { noteHugeMapped(&state, target, newSize) }
    return .mremap(old: old, oldSize: oldSize, newSize: newSize, flags: flags, newAddress: target)
  }
}
