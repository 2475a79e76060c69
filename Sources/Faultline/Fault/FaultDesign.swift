/// The locking design an address space's page faults use. One fault body serves them all; they
/// differ in how the VMA is found, how it is kept valid, and where the result is re-checked.
///
/// How `munmap` orders against a fault in flight differs between them:
/// - `.mmapLock` and `.perVMALock`: `munmap` waits. Under `mmap_lock` it cannot take the lock
///   for write while a fault holds it for read; under per-VMA locks `vmaStartWrite` waits for the
///   VMA's readers before the VMA leaves the tree.
/// - `.speculative` and `.sequenced`: `munmap` overtakes the fault and returns first; the fault
///   notices at `pteMapLock` (the VMA's `vmSequence`, or the mm's `mmapSeq`, moved) and aborts
///   without installing anything, then retries under `mmap_lock`, which finds no VMA.
public enum FaultDesign: String, CaseIterable, Sendable, CustomStringConvertible {
  /// Read-lock `mmap_lock`, find the VMA, fault, unlock.
  case mmapLock = "mmap_lock"
  /// Laurent Dufour's SPF v12: RCU lookup, a VMA reference, `vmSequence` checks, re-validation
  /// under the PTL, fallback to `mmap_lock` on any abort.
  case speculative = "spf"
  /// Michel Lespinasse's 2022 series: one mm-wide `mmapSeq` and a copied VMA snapshot, with no
  /// atomic read-modify-write on the VMA.
  case sequenced = "seq"
  /// Per-VMA locks (Linux 6.4): RCU lookup, `vmaStartRead`, fault, `vmaEndRead`.
  case perVMALock = "vma_lock"

  /// The design's name (`mmap_lock`, `spf`, `seq`, `vma_lock`).
  public var description: String { rawValue }
}

/// What the writers (mmap, munmap, mprotect, mremap, fork, truncate) must do for a design's
/// faults. Each is an exhaustive switch, so a new design has to decide every one; writers ask
/// these instead of comparing designs. Writers bump every changed VMA's `vmSequence` and the
/// mm's `mmapSeq`, and free removed VMAs after a grace period, under every design: those cost
/// little and need no switch.
extension FaultDesign {
  /// Faults hold a VMA's read lock instead of `mmap_lock`, so writers write-lock each VMA they
  /// change and wait for its fault readers (`vma_start_write`).
  var writersLockVMAs: Bool {
    switch self {
    case .perVMALock: true
    case .mmapLock, .speculative, .sequenced: false
    }
  }

  /// Faults take references on VMAs (SPF's `get_vma`) that can outlive the VMA's place in the
  /// tree, so a removed VMA may keep its file until the last reference drops
  /// (`FputMode.deferred`). Elsewhere a removed VMA's file is put at once.
  package var faultsReferenceVMAs: Bool {
    switch self {
    case .speculative: true
    case .mmapLock, .sequenced, .perVMALock: false
    }
  }
}

/// Why a speculative fault gave up and fell back to `mmap_lock`. Each reason has its own
/// `/proc/vmstat`-style counter (`spf_<reason>`) and trace event. A per-VMA-locked fault's body
/// returns these too (`vmaNoAnon`, `vmaAccess`); it counts them as `vma_lock_retry` instead.
package enum SPFAbort: Int, CaseIterable, Sendable, CustomStringConvertible {
  /// The VMA changed: odd or moved sequence, detached, or the address left its bounds.
  case vmaChanged
  /// The VMA has no anon_vma yet; preparing one needs `mmap_lock`.
  case vmaNoAnon
  /// A VMA the speculative path does not handle: grows-down stacks, shared anonymous memory,
  /// and files on a file system that is not `speculativeSafe` (`.sequenced`: every VMA but
  /// private anonymous memory).
  case vmaNotSup
  /// The access is not allowed; the locked path delivers the signal.
  case vmaAccess
  /// No VMA covers the address (or the lookup raced a change).
  case vmaMiss
  /// The PMD no longer points at the PTE table the fault walked.
  case pmdChanged
  /// The PTL was held (`spin_trylock` failed).
  case ptlBusy
  /// A page-table level above the PTE is missing and the design does not allocate it.
  case pteAlloc
  /// The PMD maps a transparent huge page: a leaf the speculative walk never handles (SPF v12
  /// and Lespinasse's series leave huge pages to the locked path).
  case pmdHuge
  /// The PMD is empty where the VMA may map a transparent huge page: SPF v12 and Lespinasse's
  /// series abort on `pmd_none` (a collapse may be in progress behind the walk), so the locked
  /// path decides between a huge page and a PTE table. Counted apart from `pteAlloc` because,
  /// unlike it, allocating the table speculatively would be wrong, not only unsafe: the range
  /// would lose its huge page.
  case thpEligible
  /// Lespinasse's design found no cached page for a file fault: it reads nothing speculatively
  /// (his 2021 series: "any miss … will be handled by falling back to non-speculative fault
  /// handling"), so the read from the backing store happens under `mmap_lock`.
  case fileMiss

  /// The counter and trace-event name.
  package var name: String {
    switch self {
    case .vmaChanged: "spf_vma_changed"
    case .vmaNoAnon: "spf_vma_noanon"
    case .vmaNotSup: "spf_vma_notsup"
    case .vmaAccess: "spf_vma_access"
    case .vmaMiss: "spf_vma_miss"
    case .pmdChanged: "spf_pmd_changed"
    case .ptlBusy: "spf_ptl_busy"
    case .pteAlloc: "spf_pte_alloc"
    case .pmdHuge: "spf_pmd_huge"
    case .thpEligible: "spf_thp_eligible"
    case .fileMiss: "spf_file_miss"
    }
  }

  package var description: String { name }
}

/// Points in the fault path where a test can pause or act (`AddressSpace.faultHook`).
package enum FaultHookPoint: Equatable, Sendable {
  /// The VMA was found and pinned (reference, sequence snapshot or VMA read lock), outside any
  /// RCU read section; the page tables are not walked yet. Only the speculative and
  /// per-VMA-locked designs have this point; the `mmap_lock` path does not run it.
  case afterLookup
  /// Inside a file fault's `->fault`, before the page-cache lookup (and read): a speculative
  /// fault holds only its VMA (and file) reference here.
  case insideFileFault
  /// The page to map is ready (a new page zeroed or copied, or a page-cache or shmem page
  /// found or read in), before the PTL is taken to install it (the PMD lock for a huge page or
  /// the huge zero page).
  case pagePrepared
  /// `pteMapLock` starts: before every PTL a fault takes for its own PTE, including those of a
  /// spurious fault, a write-protect reuse and a PROT_NONE fix-up, which prepare no page; and
  /// before the PMD lock of a huge page's write-protect reuse (`do_huge_pmd_wp_page`).
  case beforePTEMapLock
  /// A speculative or per-VMA-locked attempt gave up; the `mmap_lock` path runs next.
  case aborted(SPFAbort?)
}

/// Points in the writers (munmap, mprotect, mremap, fork, truncate) where a test or the
/// interleaving explorer can pause (`AddressSpace.writerHook`, `Inode.truncateHook`). Each runs
/// with the writer's locks held as noted, so a paused writer blocks whoever needs them.
package enum WriterHookPoint: Equatable, Sendable {
  /// munmap/mremap: the VMAs left the tree's working copy (`mmap_lock` held for write); their
  /// PTEs are still there.
  case afterDetach
  /// munmap/truncate/mremap: the PTEs of the range are cleared; the frames and page tables are
  /// not freed yet (munmap: `mmap_lock` still held).
  case afterZap
  /// munmap: `mmap_lock` was released; the gathered frames and tables are freed next (after a
  /// grace period).
  case beforeFree
  /// mprotect: the VMA flags and PTEs of one VMA changed (`mmap_lock` held for write).
  case afterProtect
  /// truncate: the new size is visible to faults; nothing is zapped yet (`i_rwsem` held).
  case afterSizeChange
  /// fork: one VMA and its page tables were copied into the child (parent's `mmap_lock` held
  /// for write).
  case afterCopyVMA
}
