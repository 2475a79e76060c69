/// Seeded, reproducible random op sequences over the window.

import Faultline

/// Which calls and shapes the generator may produce.
public struct GeneratorOptions: Sendable, Equatable {
  /// mremap (MREMAP_FIXED moves into the window, in-place resizes, MAYMOVE moves compared modulo
  /// placement).
  public var mremap = true
  /// mlock, mlock2 and munlock.
  public var mlock = true
  /// mincore.
  public var mincore = true
  /// System V shared memory: shmget, shmat into the window, shmdt, shmctl (IPC_RMID, IPC_STAT).
  public var sysvShm = true
  /// `mseal` of ranges in the window (Linux 6.10).
  public var mseal = true
  /// `mlockall` (`MCL_CURRENT`, `MCL_FUTURE`, `MCL_ONFAULT`, and invalid flags) and `munlockall`.
  public var mlockall = true
  /// `brk` relative to the initial break, and `munmap` of the heap it grew.
  public var brk = true
  /// The huge-page mode (`faultline conform --window thp`): most ops aim at the window's 2 MiB
  /// ranges, to make PMD-mapped transparent huge pages and split them
  /// (`ConformGenerator.nextHugeOp`); the rest are the ops above. Needs a window with at least
  /// two whole 2 MiB ranges (`ConformWindow.thp`); in a smaller one it draws the ops above only.
  public var hugePages = false
  public init() {}
}

/// Generates op sequences. Sequence `i` of seed `s` depends only on `(s, i)`, on whether the
/// host has protection keys, and on whether its hugetlb pool is empty.
public struct ConformGenerator: Sendable {
  public let window: ConformWindow
  public let options: GeneratorOptions
  /// The host's protection keys. With `.x86` the generator adds `pkey_alloc`, `pkey_free`,
  /// `pkey_mprotect` with any key, and `wrpkru`; with `.none` all but `wrpkru`, whose
  /// instruction such a CPU lacks
  /// (`mprotect`), since the host child could not run the rest (WRPKRU is #UD there).
  public let protectionKeys: MachineProfile.ProtectionKeys
  /// Whether the host has no huge pages to give (no persistent and no surplus pages of either
  /// size). Only then does the generator make `MAP_HUGETLB` calls: each fails on the host
  /// before it maps anything (`ENOMEM` from the reservation; `EINVAL` for a size without a pool
  /// or a misaligned `MAP_FIXED` address), so none can map a huge page over the child's own
  /// memory around the window. Never with `MAP_NORESERVE`, which maps without pages.
  public let hugetlbPoolEmpty: Bool

  public init(
    window: ConformWindow = ConformWindow(), options: GeneratorOptions = GeneratorOptions(),
    protectionKeys: MachineProfile.ProtectionKeys = MachineProfile.host.protectionKeys,
    hugetlbPoolEmpty: Bool = Self.poolIsEmpty(.host)
  ) {
    self.window = window
    self.options = options
    self.protectionKeys = protectionKeys
    self.hugetlbPoolEmpty = hugetlbPoolEmpty
  }

  /// Whether `profile` has no huge page of any size, persistent or surplus.
  public static func poolIsEmpty(_ profile: MachineProfile) -> Bool {
    profile.nrHugepages == 0 && profile.nrOvercommitHugepages == 0 && profile.nrHugepages1G == 0
      && profile.nrOvercommitHugepages1G == 0
  }

  /// `MAP_HUGE_*` size encodings drawn for `MAP_HUGETLB` (log2 of the size): the default size,
  /// 2 MiB, 1 GiB, and sizes x86-64 has no pages of (64 KiB, 4 KiB: EINVAL).
  static let hugeSizeChoices: [Int32] = [0, 0, 21, 30, 16, 12]

  /// The RNG seed of sequence `index` of run `seed`.
  public static func sequenceSeed(_ seed: UInt64, _ index: Int) -> UInt64 {
    var g = SplitMix64(seed: seed ^ (UInt64(index) &* 0xD1B5_4A32_D192_ED03))
    return g.next()
  }

  /// Sequence `index` of run `seed`, `length` ops long (the last op is always `maps`).
  public func sequence(seed: UInt64, index: Int, length: Int) -> [ConformOp] {
    var rng = SplitMix64(seed: Self.sequenceSeed(seed, index))
    var state = State()
    var ops: [ConformOp] = []
    let huge = options.hugePages && window.hugeRanges >= 2
    for _ in 0..<max(length - 1, 0) { ops.append(huge ? nextHugeOp(&rng, &state) : nextOp(&rng, &state)) }
    ops.append(.maps)
    return ops
  }

  /// What the generator remembers to aim its ops: ranges it mapped, and the protection keys it
  /// expects allocated.
  struct State {
    var mapped: [(UInt64, UInt64)] = []
    /// Pages that may hold shared anonymous memory (mapped shared, or moved there).
    var shared = Set<UInt64>()
    /// The allocation map as the generator expects it (bit k: key k), the execute-only key
    /// included. An estimate: a call it counted may have failed on the host.
    var pkeyMap: UInt16 = 1
    /// Keys `pkey_alloc` is expected to have returned and that were not freed since.
    var allocatedKeys: [Int32] = []
    var executeOnlyKey: Int32?
    /// System V segments made so far (the next shmget takes slot `segments % 4`).
    var segments = 0
    /// Addresses shmat was asked to attach at.
    var attached: [UInt64] = []
    /// Where the break is expected, relative to the initial one.
    var brkOffset: UInt64 = 0
    /// The window's 2 MiB ranges (by index) that huge-page ops mapped or moved something to.
    var hugeMapped: [UInt64] = []
    /// Ops the huge-page mode draws next, before any other (the advice for a fresh mapping).
    var pendingHuge: [ConformOp] = []

    /// `mm_pkey_alloc`: the lowest key not in the map.
    mutating func takeKey() -> Int32? {
      if pkeyMap == .max { return nil }
      let key = (~pkeyMap).trailingZeroBitCount
      pkeyMap |= 1 << UInt16(key)
      return Int32(key)
    }

    /// PROT_EXEC alone takes the execute-only key the first time (`execute_only_pkey`).
    mutating func noteProt(_ prot: Int32, pkeys: Bool) {
      if pkeys && prot == 0x4 && executeOnlyKey == nil { executeOnlyKey = takeKey() }
    }

    func anyShared(_ addr: UInt64, _ length: UInt64) -> Bool {
      // A length that rounds to 0 (0, or wrapping) duplicates the mapping at `addr` (mremap).
      let pages = max(min(Page.covering(length), 1 << 12), 1)
      return (0..<pages).contains { shared.contains((addr >> Page.shift) &+ $0) }
    }

    mutating func markShared(_ addr: UInt64, _ length: UInt64) {
      let pages = min(Page.covering(length), 1 << 12)
      for p in 0..<pages { shared.insert((addr >> Page.shift) &+ p) }
    }
  }

  /// PROT_EXEC alone twice: on a host with protection keys it is execute-only memory.
  static let protChoices: [Int32] = [0, 1, 2, 3, 4, 5, 6, 7, 3, 3, 1, 4]
  /// Advice the generator draws (never HWPOISON or SOFT_OFFLINE: the child may be privileged on
  /// some machines; never MERGEABLE/UNMERGEABLE or COLLAPSE: KSM and THP collapse are host
  /// configuration the engine does not model).
  static let adviceChoices: [Int32] = [
    4, 4, 4, 8, 8, 3, 0, 1, 2, 10, 11, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 9, 9,
    // MADV_GUARD_INSTALL and MADV_GUARD_REMOVE (6.13)
    102, 102, 102, 103, 103,
    // invalid: unused numbers and a negative one
    5, 6, 7, 26, 99, -1,
  ]

  func nextOp(_ rng: inout SplitMix64, _ state: inout State) -> ConformOp {
    var kinds: [(Int, String)] = [
      (16, "mmap"), (7, "munmap"), (10, "mprotect"), (10, "madvise"), (20, "load"), (20, "store"), (4, "maps"),
    ]
    if options.mremap { kinds.append((8, "mremap")) }
    if options.mlock { kinds.append((5, "mlock")) }
    if options.mincore { kinds.append((3, "mincore")) }
    if options.sysvShm { kinds += [(3, "shmget"), (4, "shmat"), (2, "shmdt"), (2, "shmctl")] }
    if options.mseal { kinds.append((1, "mseal")) }
    if options.mlockall { kinds.append((3, "mlockall")) }
    if options.brk { kinds.append((3, "brk")) }
    switch protectionKeys {
    case .x86: kinds += [(5, "pkey_alloc"), (2, "pkey_free"), (6, "pkey_mprotect"), (3, "wrpkru")]
    // Without keys the calls still answer (EINVAL, then ENOSPC for pkey_alloc; only key -1
    // for pkey_mprotect); only WRPKRU needs the CPU feature.
    case .none: kinds += [(1, "pkey_alloc"), (1, "pkey_free"), (3, "pkey_mprotect")]
    }
    let kind = Self.draw(kinds, &rng)
    switch kind {
    case "mmap": return genMmap(&rng, &state)
    case "munmap":
      let (a, l) = range(&rng, &state, huge: true)
      return .munmap(addr: a, length: l)
    case "mprotect":
      let (a, l, prot) = mprotectArguments(&rng, &state)
      state.noteProt(prot, pkeys: protectionKeys == .x86)
      return .mprotect(addr: a, length: l, prot: prot)
    case "pkey_mprotect":
      let (a, l, prot) = mprotectArguments(&rng, &state)
      let key = protectionKeys == .x86 || Int.random(in: 0..<3, using: &rng) == 0
        ? pkeyArgument(&rng, state, plain: true) : -1
      if key == -1 { state.noteProt(prot, pkeys: protectionKeys == .x86) }
      return .pkeyMprotect(addr: a, length: l, prot: prot, key: key)
    case "pkey_alloc":
      let flags: UInt64 = Int.random(in: 0..<12, using: &rng) == 0 ? 1 : 0
      let rights: UInt64 = [0, 0, 1, 1, 2, 3, 4].randomElement(using: &rng)!
      if protectionKeys == .x86 && flags == 0 && rights <= 3, let key = state.takeKey() {
        state.allocatedKeys.append(key)
      }
      return .pkeyAlloc(flags: flags, rights: rights)
    case "pkey_free":
      let key = pkeyArgument(&rng, state, plain: false)
      if let i = state.allocatedKeys.firstIndex(of: key) {
        state.allocatedKeys.remove(at: i)
        state.pkeyMap &= ~(1 << UInt16(key))
      }
      return .pkeyFree(key: key)
    case "wrpkru":
      return .wrpkru(pkruValue(&rng, state))
    case "madvise":
      let (a, l) = range(&rng, &state)
      return .madvise(addr: a, length: l, advice: Self.adviceChoices.randomElement(using: &rng)!)
    case "mremap": return genMremap(&rng, &state)
    case "shmget", "shmat", "shmdt", "shmctl": return genShm(kind, &rng, &state)
    case "brk": return genBrk(&rng, &state)
    case "mseal":
      // Never `huge`: a sealed range must lie in the window (one reaching past it has a hole in
      // the margin and seals nothing). Flags other than 0 are EINVAL.
      let (a, l) = range(&rng, &state)
      return .mseal(addr: a, length: l, flags: Int.random(in: 0..<10, using: &rng) == 0 ? 1 : 0)
    case "mlockall":
      if Int.random(in: 0..<5, using: &rng) < 2 { return .munlockall }
      // MCL_FUTURE with and without MCL_ONFAULT most; MCL_CURRENT is ENOMEM on both sides (the
      // host child is larger than RLIMIT_MEMLOCK; `EngineRunner.restOfProcess`); 0, MCL_ONFAULT
      // alone and an unknown bit are EINVAL.
      return .mlockall(flags: [2, 2, 2, 6, 6, 1, 3, 5, 7, 0, 4, 8].randomElement(using: &rng)!)
    case "mlock":
      let (a, l) = range(&rng, &state)
      switch Int.random(in: 0..<5, using: &rng) {
      case 0, 1: return .mlock(addr: a, length: l)
      case 2: return .mlock2(addr: a, length: l, flags: [0, 1, 1, 2].randomElement(using: &rng)!)
      default: return .munlock(addr: a, length: l)
      }
    case "mincore":
      // No wrapping lengths: the kernel checks the vector first (EFAULT for the probe's NULL).
      let (a, l) = range(&rng, &state, wrap: false)
      return .mincore(addr: a, length: l)
    case "load", "store":
      let a = accessAddress(&rng, &state)
      let n = [1, 1, 8, 8, 64, 300, 4096].randomElement(using: &rng)!
      if kind == "load" { return .load(addr: a, length: UInt64(n)) }
      return .store(addr: a, length: UInt64(n), pattern: UInt8.random(in: 1...255, using: &rng))
    default:
      return .maps
    }
  }

  /// One of `kinds`, each as likely as its weight.
  static func draw(_ kinds: [(Int, String)], _ rng: inout SplitMix64) -> String {
    let total = kinds.reduce(0) { $0 + $1.0 }
    var pick = Int.random(in: 0..<total, using: &rng)
    for (w, k) in kinds {
      if pick < w { return k }
      pick -= w
    }
    return kinds[0].1
  }

  /// An address, length and prot for mprotect or pkey_mprotect.
  func mprotectArguments(_ rng: inout SplitMix64, _ state: inout State) -> (UInt64, UInt64, Int32) {
    var (a, l) = range(&rng, &state, huge: true)
    var prot = Self.protChoices.randomElement(using: &rng)!
    let r = Int.random(in: 0..<40, using: &rng)
    if r == 0 {
      // PROT_GROWSDOWN starts at the first VMA at or above the address: with a length past the
      // window that is one of the host child's own mappings.
      prot |= 0x0100_0000
      l = min(l, window.end &- a)
    }
    if r == 1 { prot |= 0x0200_0000 }  // PROT_GROWSUP (no VM_GROWSUP on x86-64)
    if r == 2 { prot |= 0x10 }  // unknown bit
    if r == 3 { prot |= 0x8 }  // PROT_SEM
    return (a, l, prot)
  }

  /// A key for pkey_free or pkey_mprotect: mostly one `pkey_alloc` returned, sometimes one
  /// that is not the caller's: -2, 16, one never allocated, the execute-only key (EINVAL all).
  /// `plain`: pkey_mprotect, which also takes -1 (mprotect) and key 0. Never key 0 for
  /// pkey_free: a later pkey_alloc could return it and deny the child its own stack.
  func pkeyArgument(_ rng: inout SplitMix64, _ state: State, plain: Bool) -> Int32 {
    let r = Int.random(in: 0..<10, using: &rng)
    if r < 6, let key = state.allocatedKeys.randomElement(using: &rng) { return key }
    if plain && r < 8 { return [-1, -1, 0].randomElement(using: &rng)! }
    switch Int.random(in: 0..<4, using: &rng) {
    case 0: return -2
    case 1: return 16
    case 2: if let key = state.executeOnlyKey { return key }
    default: break
    }
    let free = (1..<16).filter { state.pkeyMap & (1 << UInt16($0)) == 0 }
    return Int32(free.randomElement(using: &rng) ?? 15)
  }

  /// A PKRU value: for each key 1-15 the generator expects allocated, the execute-only key
  /// included, random access-disable and write-disable bits; the other keys as the kernel's
  /// `init_pkru_value` has them, or open. Key 0 stays open: the host child's own memory has it.
  func pkruValue(_ rng: inout SplitMix64, _ state: State) -> UInt32 {
    var value: UInt32 = Bool.random(using: &rng) ? 0x5555_5554 : 0
    for key in 1..<16 where state.pkeyMap & (1 << UInt16(key)) != 0 {
      let shift = UInt32(key) << 1
      value = (value & ~(3 << shift)) | (UInt32.random(in: 0...3, using: &rng) << shift)
    }
    return value
  }

  /// A page-aligned address in the window, often the start of something mapped earlier.
  func pageAddress(_ rng: inout SplitMix64, _ state: State) -> UInt64 {
    if !state.mapped.isEmpty && Bool.random(using: &rng) {
      let (s, l) = state.mapped.randomElement(using: &rng)!
      let pages = max(l >> Page.shift, 1)
      return s + (UInt64.random(in: 0..<pages, using: &rng) << Page.shift)
    }
    return window.start + (UInt64.random(in: 0..<window.pages, using: &rng) << Page.shift)
  }

  /// `pages` pages at most, so that the range stays in the window.
  func length(_ rng: inout SplitMix64, upTo pages: UInt64) -> UInt64 {
    let small = UInt64.random(in: 1...min(4, max(pages, 1)), using: &rng)
    let any = UInt64.random(in: 1...max(pages, 1), using: &rng)
    return (Bool.random(using: &rng) ? small : any) << Page.shift
  }

  /// An address and length for munmap/mprotect/madvise/mlock/mincore, mostly well formed.
  /// `huge`: the length may reach past the end of the address space without wrapping. Only for
  /// calls that stop at the first hole (munmap checks it against TASK_SIZE, mprotect stops at the
  /// margin after the window); madvise, mlock and mincore would walk the child's own memory.
  func range(_ rng: inout SplitMix64, _ state: inout State, huge: Bool = false, wrap: Bool = true) -> (UInt64, UInt64) {
    let a = pageAddress(&rng, state)
    let room = (window.end - a) >> Page.shift
    var l = length(&rng, upTo: room)
    var addr = a
    switch Int.random(in: 0..<30, using: &rng) {
    case 0: l = 0
    case 1: addr += UInt64.random(in: 1...Page.offsetMask, using: &rng)  // unaligned address
    case 2: l -= UInt64.random(in: 1...Page.offsetMask, using: &rng)  // unaligned length: rounds up
    case 3 where wrap: l = UInt64.max - UInt64.random(in: 0...Page.size, using: &rng)  // wraps past the top
    case 4 where huge: l = (1 << 63) + Page.size  // overflows the address space without wrapping
    case 5: addr = window.start - (UInt64.random(in: 1...window.marginPages, using: &rng) << Page.shift)  // starts in the margin
    default: break
    }
    return (addr, l)
  }

  func genMmap(_ rng: inout SplitMix64, _ state: inout State) -> ConformOp {
    let a = pageAddress(&rng, state)
    let room = (window.end - a) >> Page.shift
    var l = length(&rng, upTo: min(room, 24))
    var prot = Self.protChoices.randomElement(using: &rng)!
    var flags: Int32 = 0x20  // MAP_ANONYMOUS
    flags |= Int.random(in: 0..<3, using: &rng) == 0 ? 0x01 : 0x02
    var addr = a
    switch Int.random(in: 0..<20, using: &rng) {
    case 0..<11: flags |= 0x10  // MAP_FIXED
    case 11..<16: flags |= 0x100000  // MAP_FIXED_NOREPLACE
    case 16, 17: break  // a hint
    case 18: addr = 0  // no hint: lands outside the window on both sides
    default: flags |= 0x10 | 0x100000
    }
    switch Int.random(in: 0..<40, using: &rng) {
    case 0: l = 0
    case 1: addr += UInt64.random(in: 1...Page.offsetMask, using: &rng)
    case 2: l -= UInt64.random(in: 1...Page.offsetMask, using: &rng)
    case 3: l = UInt64.max - UInt64.random(in: 0...Page.size, using: &rng)
    case 4: flags &= ~0xF  // neither private nor shared
    case 5: flags = (flags & ~0xF) | 0x03  // MAP_SHARED_VALIDATE
    case 6: flags = (flags & ~0xF) | Int32.random(in: 4...7, using: &rng)  // no such type
    case 7: prot |= 0x10  // unknown prot bit
    case 8: flags |= 0x8000  // MAP_POPULATE
    case 9: flags |= 0x2000  // MAP_LOCKED
    case 10: flags |= 0x4000  // MAP_NORESERVE
    case 11: flags |= 0x100  // MAP_GROWSDOWN
    case 12: flags |= 0x20000  // MAP_STACK
    case 13:
      // MAP_FIXED below mmap_min_addr (EPERM), or a low hint (raised to mmap_min_addr).
      addr = flags & 0x10 != 0 ? 0 : UInt64.random(in: 1...0x2000, using: &rng)
    case 14: if flags & 0x10 != 0 { addr = 0x7FFF_FFFF_F000 }  // ends past TASK_SIZE
    case 15: prot = 0x8  // PROT_SEM
    case 16: flags |= 0x40  // MAP_32BIT: a hint or NULL lands in [1 GiB, 2 GiB), outside the window
    case 17, 18: flags = (flags & ~0xF) | 0x08  // MAP_DROPPABLE (6.11)
    default: break
    }
    if hugetlbPoolEmpty && Int.random(in: 0..<8, using: &rng) == 0 {
      flags = (flags & ~0x4000) | 0x40000 | Self.hugeSizeChoices.randomElement(using: &rng)! << 26
    }
    // MAP_FIXED at an address outside the window would clobber the host child's own memory:
    // only addresses in the reservation, the low pages (EPERM) or past TASK_SIZE (ENOMEM) pass.
    let op = ConformOp.mmap(addr: addr, length: l, prot: prot, flags: flags)
    state.noteProt(prot, pkeys: protectionKeys == .x86)
    if flags & 0x3 == 0x1 || flags & 0xF == 0x3 { state.markShared(Page.roundDown(addr), min(l, window.length)) }
    if l > 0 && l < window.length && addr >= window.start && addr < window.end {
      state.mapped.append((Page.roundDown(addr), l))
      if state.mapped.count > 8 { state.mapped.removeFirst() }
    }
    return op
  }

  func genMremap(_ rng: inout SplitMix64, _ state: inout State) -> ConformOp {
    let (old, oldSize) = range(&rng, &state)
    var newSize = length(&rng, upTo: 16)
    if Int.random(in: 0..<20, using: &rng) == 0 { newSize = 0 }
    let target = pageAddress(&rng, state)
    var newAddress: UInt64 = 0
    var flags: Int32
    switch Int.random(in: 0..<10, using: &rng) {
    case 0..<3: flags = 0  // in place
    case 3, 4: flags = 1  // MAYMOVE: compared modulo placement
    case 8:
      flags = 7  // DONTUNMAP
      newAddress = target
      newSize = min(oldSize, window.end - target)
    case 5...8:
      flags = 3  // MAYMOVE|FIXED into the window
      newAddress = target
      newSize = min(newSize, window.end - target)
    default:
      flags = [2, 4, 5, 8, 0x10].randomElement(using: &rng)!  // invalid combinations
      newAddress = target
    }
    if Int.random(in: 0..<20, using: &rng) == 0 { newAddress += 0x800 }
    if state.anyShared(old, oldSize) {
      if flags & 2 != 0 {
        state.markShared(newAddress, min(newSize, window.length))
      } else if flags & 1 != 0 {
        // Moved wherever the kernel chose, maybe into the window: assume anywhere.
        state.markShared(window.start, window.length)
      }
    }
    return .mremap(old: old, oldSize: oldSize, newSize: newSize, flags: flags, newAddress: newAddress)
  }

  /// A load/store address: mostly inside mapped ranges, sometimes in the margins around the
  /// window, at any byte offset (so accesses cross page boundaries).
  func accessAddress(_ rng: inout SplitMix64, _ state: inout State) -> UInt64 {
    switch Int.random(in: 0..<20, using: &rng) {
    case 0:
      let margin = window.marginPages << Page.shift
      return window.start - UInt64.random(in: 1...margin, using: &rng)
    case 1:
      return window.end + UInt64.random(in: 0..<(window.marginPages << Page.shift) - Page.size, using: &rng)
    case 2:
      return UInt64.random(in: 0..<Page.size, using: &rng)  // the NULL page
    case 3:
      return window.start + (UInt64.random(in: 1...window.pages, using: &rng) << Page.shift) - UInt64.random(in: 1...16, using: &rng)  // straddles a page end
    default:
      return pageAddress(&rng, state) + UInt64.random(in: 0..<Page.size, using: &rng)
    }
  }
}
