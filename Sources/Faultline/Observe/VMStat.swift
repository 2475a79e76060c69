import Synchronization

/// The counters Faultline keeps, named as `/proc/vmstat` names them where Linux has the event.
/// Names without a Linux counterpart are Faultline's own and say so in their comment.
public enum VMStatItem: Int, CaseIterable, Sendable {
  /// Faults entered (`pgfault`).
  case pgfault
  /// Faults that needed I/O (`pgmajfault`); anonymous memory never does.
  case pgmajfault
  /// Frames allocated for user pages (`pgalloc_normal`).
  case pgallocNormal
  /// User frames freed (`pgfree`).
  case pgfree
  /// Write faults that reused an exclusive anonymous page (`pgreuse`).
  case pgreuse
  /// Faultline: write faults that copied a page (the zero page or a shared one).
  case pgcow
  /// Faultline: read faults that mapped the zero page.
  case zeroPageMap
  /// Faultline: faults that ended in SIGSEGV with SEGV_MAPERR.
  case segvMaperr
  /// Faultline: faults that ended in SIGSEGV with SEGV_ACCERR.
  case segvAccerr
  /// Faultline: faults that ended in SIGSEGV with SEGV_PKUERR.
  case segvPkuerr
  /// Faultline: faults that ended in SIGBUS.
  case sigbus
  /// Faultline: faults that found no free frame (Linux would OOM-kill).
  case faultOOM
  /// Faultline: faults that found the PTE already fixed by another thread.
  case faultRaced
  /// Faultline: RCU grace periods waited for as a TLB flush (munmap, mprotect, DONTNEED).
  case tlbFlush
  /// Faults completed without `mmap_lock` by a speculative design (`speculative_pgfault`).
  case speculativePgfault
  /// Speculative aborts, one counter per `SPFAbort` reason, in its order.
  case spfVmaChanged, spfVmaNoAnon, spfVmaNotSup, spfVmaAccess, spfVmaMiss, spfPmdChanged, spfPtlBusy,
    spfPteAlloc, spfPmdHuge, spfThpEligible, spfFileMiss
  /// Per-VMA lock outcomes (`vma_lock_success`, `_abort`, `_retry`, `_miss`).
  case vmaLockSuccess, vmaLockAbort, vmaLockRetry, vmaLockMiss
  /// Faultline: pages mapped by fault-around beside the faulting one.
  case faultAroundPages
  /// Faultline: page-cache pages a fault read in for a range that was already unmapped
  /// (a speculative fault that `munmap` overtook).
  case filemapFillAfterUnmap
  /// Faultline: atime updates made by a fault after `munmap` of its range had returned.
  case atimeAfterUnmap
  /// Faultline: `umount` answered EBUSY only because a fault in flight (or a VMA waiting for
  /// its last reference) still held the file.
  case umountBusyInflight
  /// Faults that mapped a newly allocated PMD-sized huge page (`thp_fault_alloc`).
  case thpFaultAlloc
  /// Faults that could have mapped a huge page but found no free 2 MiB block and fell back to
  /// base pages (`thp_fault_fallback`).
  case thpFaultFallback
  /// Huge PMDs split into a table of 512 PTEs (`thp_split_pmd`).
  case thpSplitPmd
  /// Allocations of the huge zero page (`thp_zero_page_alloc`).
  case thpZeroPageAlloc
  /// Huge pages allocated by `MADV_COLLAPSE` (`thp_collapse_alloc`).
  case thpCollapseAlloc

  /// The counter of an abort reason.
  package init(abort: SPFAbort) {
    self = VMStatItem(rawValue: VMStatItem.spfVmaChanged.rawValue + abort.rawValue)!
  }

  /// The `/proc/vmstat` name.
  public var name: String {
    switch self {
    case .pgfault: "pgfault"
    case .pgmajfault: "pgmajfault"
    case .pgallocNormal: "pgalloc_normal"
    case .pgfree: "pgfree"
    case .pgreuse: "pgreuse"
    case .pgcow: "pgcow"
    case .zeroPageMap: "zero_page_map"
    case .segvMaperr: "segv_maperr"
    case .segvAccerr: "segv_accerr"
    case .segvPkuerr: "segv_pkuerr"
    case .sigbus: "sigbus"
    case .faultOOM: "fault_oom"
    case .faultRaced: "fault_raced"
    case .tlbFlush: "tlb_flush"
    case .speculativePgfault: "speculative_pgfault"
    case .spfVmaChanged, .spfVmaNoAnon, .spfVmaNotSup, .spfVmaAccess, .spfVmaMiss, .spfPmdChanged, .spfPtlBusy,
      .spfPteAlloc, .spfPmdHuge, .spfThpEligible, .spfFileMiss:
      SPFAbort(rawValue: rawValue - VMStatItem.spfVmaChanged.rawValue)!.name
    case .vmaLockSuccess: "vma_lock_success"
    case .vmaLockAbort: "vma_lock_abort"
    case .vmaLockRetry: "vma_lock_retry"
    case .vmaLockMiss: "vma_lock_miss"
    case .faultAroundPages: "fault_around_pages"
    case .filemapFillAfterUnmap: "filemap_fill_after_unmap"
    case .atimeAfterUnmap: "atime_after_unmap"
    case .umountBusyInflight: "umount_busy_inflight"
    case .thpFaultAlloc: "thp_fault_alloc"
    case .thpFaultFallback: "thp_fault_fallback"
    case .thpSplitPmd: "thp_split_pmd"
    case .thpZeroPageAlloc: "thp_zero_page_alloc"
    case .thpCollapseAlloc: "thp_collapse_alloc"
    }
  }
}

/// Per-thread counter blocks plus a shared block, summed on read (`vm_event_states`).
///
/// A thread bumps its own block with a relaxed load and store (one writer, no lock prefix); the
/// shared block takes atomic adds from paths with no thread handle. Blocks of threads that have
/// gone are folded into the shared block. Guards: `lock` guards `blocks`.
public final class VMStat: @unchecked Sendable {
  static let width = 48
  private let lock = PThreadMutex()
  private var blocks: [UnsafeMutablePointer<Atomic<UInt64>>] = []
  private let shared: UnsafeMutablePointer<Atomic<UInt64>>

  /// Counters at zero, with no per-thread blocks yet.
  public init() {
    precondition(VMStatItem.allCases.count <= Self.width)
    shared = Self.allocateBlock()
  }

  deinit { shared.deallocate() }

  static func allocateBlock() -> UnsafeMutablePointer<Atomic<UInt64>> {
    let b = UnsafeMutablePointer<Atomic<UInt64>>.allocate(capacity: width)
    for i in 0..<width { (b + i).initialize(to: Atomic(0)) }
    return b
  }

  /// A block for one thread; give it back with `retire`.
  func makeBlock() -> UnsafeMutablePointer<Atomic<UInt64>> {
    let b = Self.allocateBlock()
    lock.withLock { blocks.append(b) }
    return b
  }

  func retire(_ b: UnsafeMutablePointer<Atomic<UInt64>>) {
    lock.withLock {
      for i in 0..<Self.width { shared[i].wrappingAdd(b[i].load(ordering: .relaxed), ordering: .relaxed) }
      blocks.removeAll { $0 == b }
    }
    b.deallocate()
  }

  /// Adds to the shared block (paths without a thread handle).
  package func add(_ item: VMStatItem, _ n: UInt64 = 1) {
    shared[item.rawValue].wrappingAdd(n, ordering: .relaxed)
  }

  /// The current total of one counter.
  public subscript(_ item: VMStatItem) -> UInt64 {
    lock.withLock {
      blocks.reduce(shared[item.rawValue].load(ordering: .relaxed)) { $0 &+ $1[item.rawValue].load(ordering: .relaxed) }
    }
  }

  /// Every counter.
  public var snapshot: [VMStatItem: UInt64] {
    Dictionary(uniqueKeysWithValues: VMStatItem.allCases.map { ($0, self[$0]) })
  }

  /// `/proc/vmstat` text: one `name value` line per counter.
  public func render() -> String {
    VMStatItem.allCases.map { "\($0.name) \(self[$0])\n" }.joined()
  }
}

/// Bumps a counter in a thread's own block: a plain load and store, no atomic RMW.
@inline(__always)
func count(_ block: UnsafeMutablePointer<Atomic<UInt64>>, _ item: VMStatItem, _ n: UInt64 = 1) {
  let p = block + item.rawValue
  p.pointee.store(p.pointee.load(ordering: .relaxed) &+ n, ordering: .relaxed)
}
