import Synchronization

/// What the fault path was asked to do (`FAULT_FLAG_*`).
struct FaultFlags: OptionSet, Sendable {
  let rawValue: UInt32
  init(rawValue: UInt32) { self.rawValue = rawValue }
  /// `FAULT_FLAG_WRITE`.
  static let write = FaultFlags(rawValue: 1 << 0)
  /// `FAULT_FLAG_USER`.
  static let user = FaultFlags(rawValue: 1 << 1)
  /// `FAULT_FLAG_REMOTE`-like: a fault taken by populate on behalf of the caller. Nothing sets
  /// it yet: populate faults through `faultIn` with the user flags.
  static let populate = FaultFlags(rawValue: 1 << 2)
  /// `FAULT_FLAG_SPECULATIVE`: no lock pins the VMA; re-validate at `pteMapLock`.
  static let speculative = FaultFlags(rawValue: 1 << 3)
  /// `FAULT_FLAG_VMA_LOCK`: the VMA is read-locked, `mmap_lock` is not held.
  static let vmaLock = FaultFlags(rawValue: 1 << 4)
}

/// The result of `handleMMFault` (`vm_fault_t`).
enum VMFaultResult: Equatable, Sendable {
  /// The PTE now allows the access (or another thread made it so).
  case done
  /// Nothing was installed and the fault must be taken again (`VM_FAULT_RETRY`): the page it
  /// prepared left the page cache or shmem object before the install (truncate, hole punch). A
  /// locked fault returns to the access, which faults anew; a speculative or per-VMA-locked one
  /// falls back to `mmap_lock`.
  case retry
  /// No frame could be allocated (`VM_FAULT_OOM`).
  case oom
  /// `VM_FAULT_SIGBUS`.
  case sigbus
  /// `VM_FAULT_SIGSEGV`: the entry is a guard marker. Delivered as `SEGV_MAPERR`.
  case sigsegv
  /// A present entry whose protection key this thread's PKRU denies: the MMU's protection-key
  /// fault (`X86_PF_PK`), which `access_error` never lets a fault fix. `SEGV_PKUERR` with the
  /// VMA's key, as `bad_area_access_error` reports it.
  case pkeyFault(pkey: Int)
  /// A speculative or per-VMA-locked fault gave up (`VM_FAULT_RETRY` with a reason); nothing
  /// was installed.
  case abort(SPFAbort)
}

/// `si_code` for SIGSEGV.
public enum SegvCode: Equatable, Sendable {
  /// No mapping at the address (`SEGV_MAPERR`).
  case mapErr
  /// A mapping that does not allow the access (`SEGV_ACCERR`).
  case accErr
  /// The thread's PKRU denies the access to the mapping's protection key (`SEGV_PKUERR`, with
  /// `si_pkey` the key of the VMA).
  case pkuErr(pkey: Int)
}

/// What a load or store delivers instead of completing: the signal Linux would send.
///
/// `outOfMemory` is Faultline's own: where Linux would invoke the OOM killer, the engine stops the
/// access and reports it.
public enum Signal: Error, Equatable, Sendable, CustomStringConvertible {
  /// `SIGSEGV` with its `si_code` and `si_addr`: no mapping, a protection or key violation.
  case sigsegv(SegvCode, address: UInt64)
  /// `SIGBUS` (`BUS_ADRERR`) at `si_addr`: a file page beyond EOF, or the backing store failed.
  case sigbus(address: UInt64)
  /// No frame for the fault at `address` (Linux's `VM_FAULT_OOM`, which would call the OOM killer).
  case outOfMemory(address: UInt64)

  /// The signal as `strsignal` and `si_code` name it, with the address.
  public var description: String {
    switch self {
    case .sigsegv(.mapErr, let a): "SIGSEGV (SEGV_MAPERR) at 0x\(hex(a))"
    case .sigsegv(.accErr, let a): "SIGSEGV (SEGV_ACCERR) at 0x\(hex(a))"
    case .sigsegv(.pkuErr(let k), let a): "SIGSEGV (SEGV_PKUERR, pkey \(k)) at 0x\(hex(a))"
    case .sigbus(let a): "SIGBUS at 0x\(hex(a))"
    case .outOfMemory(let a): "out of memory at 0x\(hex(a))"
    }
  }
}

/// The outcome of one user fault (`do_user_addr_fault`).
package enum FaultOutcome: Equatable, Sendable {
  case ok
  case signal(Signal)
}

/// How the fault holds its VMA, which tells `pteMapLock` what to re-validate. Each mode is a type
/// of its own, so the fault body is specialised per mode: a locked fault's `pteMapLock` is a plain
/// lock, and a speculative one tests its own sequence with no dispatch on the mode.
protocol FaultMode {
  /// Whether no lock pins the VMA: `pteMapLock` re-validates, only try-locks the PTL, and holds
  /// an RCU read section with it.
  static var isSpeculative: Bool { get }
  /// The speculative validity check: the sequence the lookup saw is still current (and, for
  /// SPF, the VMA still in the tree). Always `true` for a locked fault.
  func stillValid(_ cpu: CPU) -> Bool
  /// Opens the section in which a file fault may use the VMA's file, inode and page cache.
  /// `false`: the VMA changed (abort). Locked faults and SPF v12 pin the file already (the lock,
  /// or the VMA's reference and the fault's own file reference), so theirs is empty.
  func beginFileAccess(_ cpu: CPU) -> Bool
  /// Closes what `beginFileAccess` opened.
  func endFileAccess(_ cpu: CPU)
  /// Whether a page-cache miss aborts the attempt instead of reading the page in.
  static var fileMissAborts: Bool { get }
}

extension FaultMode {
  @inline(__always) func beginFileAccess(_ cpu: CPU) -> Bool { true }
  @inline(__always) func endFileAccess(_ cpu: CPU) {}
  static var fileMissAborts: Bool { false }
}

/// `mmap_lock` or the VMA's read lock pins the VMA: take the PTL and go.
struct LockedFault: FaultMode {
  static var isSpeculative: Bool { false }
  @inline(__always) func stillValid(_ cpu: CPU) -> Bool { true }
}

/// SPF v12: the VMA's `vmSequence` must still read `seq`, the VMA must still be in the tree, the
/// PMD must be unchanged; the PTL is only try-locked.
struct SpeculativeFault: FaultMode {
  let seq: UInt64
  let vma: Unmanaged<VMA>
  static var isSpeculative: Bool { true }
  @inline(__always) func stillValid(_ cpu: CPU) -> Bool {
    vma.withPinned { !$0.isDetached && !$0.vmSequence.readRetry(seq) }
  }
}

/// Lespinasse: the mm's `mmapSeq` must still read `seq`; the PMD must be unchanged; the PTL is
/// only try-locked.
///
/// File faults (Lespinasse's 2021 series, `__do_fault` and `filemap_fault` speculative): the
/// fault holds no reference, so every use of the file, inode or page cache happens inside an RCU
/// read section that begins with the sequence check (`beginFileAccess`), or under `pteMapLock`.
/// A VMA is freed only after a grace period, and it holds the file and so the inode: if the
/// sequence still read `seq` inside the section, they stay valid to its end. Only cached pages
/// are mapped; a miss aborts (`spf_file_miss`), and so does a file system with
/// `->page_mkwrite` on a shared write (it may sleep).
struct SequencedFault: FaultMode {
  let seq: UInt64
  static var isSpeculative: Bool { true }
  static var fileMissAborts: Bool { true }
  @inline(__always) func stillValid(_ cpu: CPU) -> Bool {
    cpu.mmapSeq.pointee.load(ordering: .acquiring) == seq
  }
  @inline(__always) func beginFileAccess(_ cpu: CPU) -> Bool {
    cpu.rcuSide.lockOutermost()
    if stillValid(cpu) { return true }
    cpu.rcuSide.unlockOutermost()
    return false
  }
  @inline(__always) func endFileAccess(_ cpu: CPU) { cpu.rcuSide.unlockOutermost() }
}

/// The VMA fields a fault reads, copied once (SPF v12 caches them in `vm_fault`; Lespinasse
/// faults on a copy). Under `.locked` they cannot change; under the speculative modes they are
/// validated by the sequence checks.
struct VMASnapshot {
  let start: UInt64
  let end: UInt64
  let pgoff: UInt64
  let flags: VMFlags
  let anonVMA: UInt64
  let isAnonymous: Bool
  /// `VMA.hasPageMkwrite`.
  let hasPageMkwrite: Bool
  /// The mapped file, if any; valid while the VMA is pinned.
  let file: Unmanaged<OpenFile>?
  /// The VMA itself, for cold paths (anon_vma preparation, shmem); valid while pinned.
  let object: Unmanaged<VMA>

  @inline(__always) func pageIndex(_ addr: UInt64) -> UInt64 { ((addr - start) >> Page.shift) + pgoff }
}

/// One fault in flight (`struct vm_fault`).
struct FaultContext<Mode: FaultMode> {
  /// Page-aligned faulting address.
  let address: UInt64
  let flags: FaultFlags
  let mode: Mode
  /// The PTE slot (the PTE table exists once the fault body runs).
  let pte: UnsafeMutablePointer<Atomic<UInt64>>
  /// The PTE as first read; every install re-checks it under the PTL (`pte_same`).
  let origPTE: PTE
  /// The PMD slot and its value when walked (`orig_pmd`), checked by speculative modes.
  let pmd: UnsafeMutablePointer<Atomic<UInt64>>
  let origPMD: UInt64
}
