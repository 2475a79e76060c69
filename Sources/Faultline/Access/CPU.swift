import Synchronization

/// A thread's handle on an address space: what a CPU running that thread carries (its RCU
/// registration, its free-frame cache, its event counters). Loads, stores and system calls go
/// through it.
///
/// One thread uses a `CPU` at a time; it is not `Sendable`. Create one per thread, and drop it
/// before its `AddressSpace`.
public final class CPU {
  /// The address space this thread runs in.
  public let mm: AddressSpace
  /// The machine the address space runs on.
  public let machine: Machine
  let reader: RCUReader
  let cache: FrameCache
  let counters: UnsafeMutablePointer<Atomic<UInt64>>

  // Plain-value views of what a fault touches, reached with no reference counting.
  let frames: FrameAllocator
  let walker: PageTableWalker
  let mmapLock: RWSemaphoreView
  let vmas: VMATreeReader
  let rcuSide: RCUReadSide
  let arenaBase: UnsafeMutableRawPointer
  let design: FaultDesign
  let speculativeAllocatesTables: Bool
  let mmapSeq: UnsafeMutablePointer<Atomic<UInt64>>
  let mmLockSeq: UnsafeMutablePointer<Atomic<UInt64>>
  let hooksEnabled: UnsafeMutablePointer<Atomic<Bool>>
  /// Pages fault-around may map (`fault_around_bytes / PAGE_SIZE`).
  let faultAround: Int
  let fputMode: FputMode
  /// The machine's THP settings for the PMD size, as plain values for the fault path: whether
  /// a VMA without `VM_HUGEPAGE` (`thpUnadvised`) and one with it (`thpAdvised`) may get huge
  /// pages, and whether a read fault maps the huge zero page (`use_zero_page`).
  let thpUnadvised: Bool
  let thpAdvised: Bool
  let thpUseZeroPage: Bool
  /// This thread's PKRU register: for key `k`, bit `2k` denies all data access (AD) and bit
  /// `2k+1` denies writes (WD). Only this thread reads or writes it; loads and stores check it
  /// against the key of each PTE, and faults against the key of the VMA. Always 0 on a
  /// machine without protection keys. Kept in raw memory: a class `var` read on every access
  /// would cost an exclusivity check.
  let pkruWord: UnsafeMutablePointer<UInt32>
  @inline(__always) var pkruValue: UInt32 {
    get { pkruWord.pointee }
    set { pkruWord.pointee = newValue }
  }

  /// Registers a new thread with `mm`'s machine. Throws `EAGAIN` past the machine's
  /// `maxThreads`.
  public init(mm: AddressSpace) throws(Errno) {
    self.mm = mm
    machine = mm.machine
    reader = try mm.machine.rcu.register()
    cache = mm.machine.memory.makeCache()
    counters = mm.machine.vmstat.makeBlock()
    frames = mm.machine.memory.frames
    walker = mm.pageTable.walker
    mmapLock = mm.mmapLock.view
    vmas = mm.tree.reader
    rcuSide = reader.side
    arenaBase = mm.machine.memory.base
    design = mm.config.design
    speculativeAllocatesTables = mm.config.speculativeAllocatesTables
    mmapSeq = mm.mmapSeq
    mmLockSeq = mm.mmLockSeq
    hooksEnabled = mm.hooksEnabled
    faultAround = mm.config.faultAroundPages
    fputMode = mm.config.fputMode
    let profile = mm.machine.profile
    thpUnadvised = TransparentHugePage.settingAllows(profile, advised: false)
    thpAdvised = TransparentHugePage.settingAllows(profile, advised: true)
    thpUseZeroPage = profile.thpUseZeroPage
    // A new thread starts with the kernel's init_pkru_value: key 0 open, every other key
    // access-disabled. Linux copies the creating thread's PKRU into a clone; a handle has no
    // creator, so it gets the value a fresh process (execve) has.
    pkruWord = .allocate(capacity: 1)
    pkruWord.initialize(to: mm.machine.profile.protectionKeys == .x86 ? CPU.initPKRU : 0)
  }

  /// `init_pkru_value`: access-disable for keys 1-15.
  package static let initPKRU: UInt32 = 0x5555_5554

  deinit {
    machine.memory.unregister(cache)
    machine.vmstat.retire(counters)
    pkruWord.deallocate()
  }

  /// Gives cached free frames back to the global pool (for exact accounting in tests).
  public func drainFrameCache() { frames.drain(cache) }

  /// Whether page `index` of `inode` is in its page cache, up to date: `mincore_page`'s question
  /// (`filemap_get_incore_folio`, then `folio_put`), what residency tools such as `fincore` and
  /// `vmtouch` ask of every page of a file. Never reads the page in.
  ///
  /// Asked the way a file fault asks: no lock, under this thread's RCU read side
  /// (`PageCache.findRCU`), with a reference taken on the page found and put again before the
  /// answer returns. A page that truncate or invalidation removes meanwhile may still be reported.
  public func isPageCached(_ inode: Inode, index: UInt64) -> Bool {
    guard let page = Unmanaged.passUnretained(inode).withPinned({ $0.pageCache.findRCU(index, rcu: rcuSide) })
    else { return false }
    let uptodate = frames.meta(page).flags.contains(.uptodate)
    frames.put(page, cache: cache)
    return uptodate
  }
}
