import Synchronization

/// Limits and layout of an address space: Linux's defaults on x86-64 with ASLR off.
public struct AddressSpaceConfig: Sendable {
  /// `TASK_SIZE`: one page short of 2^47.
  public var taskSize: UInt64 = 0x7FFF_FFFF_F000
  /// `mm->mmap_base` (top of the top-down mmap area). `TASK_SIZE` less the minimum 128 MiB gap,
  /// as Linux computes it with an 8 MiB stack limit and no randomisation. The legacy layout
  /// (`mmapIsLegacy`) does not use it: it searches upward from `taskUnmappedBase`.
  public var mmapBase: UInt64 = 0x7FFF_F7FF_F000
  /// `vm.legacy_va_layout`, from the machine profile: the legacy bottom-up layout when set.
  public var legacyVALayout = false
  /// The `ADDR_COMPAT_LAYOUT` personality (`setarch -L`): the legacy layout whatever the
  /// sysctl says.
  public var addrCompatLayout = false
  /// `vm.mmap_min_addr`: `MAP_FIXED` below it is EPERM without `CAP_SYS_RAWIO`.
  public var mmapMinAddr: UInt64 = Page.size
  /// `CONFIG_LSM_MMAP_MIN_ADDR` (0: none). Hints below it are raised to it, and placement
  /// stays above it, but the `MAP_FIXED` check uses `mmapMinAddr` alone.
  public var lsmMmapMinAddr: UInt64 = 0
  /// `vm.max_map_count`.
  public var maxMapCount: Int = 65530
  /// `mm->start_brk`: where the heap starts.
  public var startBrk: UInt64 = 0x5555_5555_9000
  /// The page-fault locking design.
  public var design: FaultDesign = .mmapLock
  /// Speculative designs: allocate a missing page-table level instead of aborting with
  /// `spf_pte_alloc` (SPF v12 aborts, so that is the default).
  public var speculativeAllocatesTables = false
  /// When a mapped file is released relative to its VMA (file-backed speculative faults). Only
  /// `.speculative` keeps VMA references past `munmap`; the other designs always release the file
  /// when the VMA leaves the tree.
  public var fputMode: FputMode = .synchronous
  /// Pages fault-around may map on a read fault of a file (16 = Linux's 64 KiB; 0 disables).
  public var faultAroundPages = 16
  /// `RLIMIT_AS` in bytes (`UInt64.max` is RLIM_INFINITY).
  public var rlimitAS: UInt64 = .max
  /// `RLIMIT_DATA` in bytes.
  public var rlimitData: UInt64 = .max
  /// `RLIMIT_STACK` in bytes (8 MiB): how far a `VM_GROWSDOWN` VMA may grow.
  public var rlimitStack: UInt64 = 8 << 20
  /// `RLIMIT_MEMLOCK` in bytes (8 MiB, the default since Linux 5.16).
  public var rlimitMemlock: UInt64 = 8 << 20
  /// The process has `CAP_IPC_LOCK` (mlock without limits).
  public var capIPCLock = false
  /// The process has `CAP_SYS_RAWIO` (may map below `mmap_min_addr`).
  public var capSysRawIO = false

  /// The settings of this host (`MachineProfile.host`).
  public init() { self.init(profile: .host) }

  /// The settings `profile` names (`mmap_min_addr`, the LSM minimum, `max_map_count`,
  /// `legacy_va_layout`); the
  /// rest keep Linux's x86-64 defaults. Give an address space the profile of its machine.
  public init(profile: MachineProfile) {
    mmapMinAddr = profile.mmapMinAddr
    lsmMmapMinAddr = profile.lsmMmapMinAddr
    maxMapCount = profile.maxMapCount
    legacyVALayout = profile.legacyVALayout
  }

  /// The kernel's effective `mmap_min_addr`: hints are raised to it (`round_hint_to_min`).
  var hintMinAddr: UInt64 { max(mmapMinAddr, lsmMmapMinAddr) }

  /// x86-64's `mmap_is_legacy`, which `arch_pick_mmap_layout` asks when the address space is
  /// created: the `ADDR_COMPAT_LAYOUT` personality, an unlimited `RLIMIT_STACK`, or
  /// `vm.legacy_va_layout`. Then `get_unmapped_area` searches bottom-up from
  /// `taskUnmappedBase` (`arch_get_unmapped_area`) instead of top-down below `mmapBase`.
  public var mmapIsLegacy: Bool { addrCompatLayout || rlimitStack == .max || legacyVALayout }

  /// `TASK_UNMAPPED_BASE`: a third of `TASK_SIZE`, page-aligned up (0x2aaaaaaab000 for 47 bits).
  /// The legacy layout's `mmap_base`, and where the top-down search falls back to searching
  /// upward.
  public var taskUnmappedBase: UInt64 { Page.roundUp(taskSize / 3) }
}

/// When a file mapping's `vm_file` reference is released.
public enum FputMode: String, CaseIterable, Sendable {
  /// When the VMA leaves the tree (`remove_vma`): a speculative fault in flight takes its own
  /// file reference before `->fault`, and gives up if the file is already gone.
  case synchronous
  /// With the VMA's last reference (`__free_vma` after the grace period and the last
  /// speculative user): the file outlives `munmap` while faults drain.
  case deferred
}

/// An address space: Linux's `struct mm_struct`.
///
/// **Lock order**: `LockOrder` (`Sync/LockOrder.swift`), the one complete tree.
///
/// **Guards.** `mmapLock` (write) guards the VMA tree's working copy, `brk`, and the `*VM`
/// counters; readers of those hold it for read. The published tree is read under RCU. Page-table
/// entries change under their PTL; upper levels fill by CAS.
public final class AddressSpace: @unchecked Sendable {
  /// The machine this address space runs on.
  public let machine: Machine
  /// The settings it was created with.
  public let config: AddressSpaceConfig
  /// `mmap_lock`.
  package let mmapLock = RWSemaphore()
  /// Words the fault path reads without a lock, each on its own cache line of one allocation
  /// (`faultWords`, three lines, each bound to its word's type):
  /// `mmapSeq` (Lespinasse: odd while a writer holds `mmap_lock`),
  /// `mmLockSeq` (per-VMA locks: bumped by `mmap_write_unlock`),
  /// `hooksEnabled` (whether `faultHook` is set).
  let faultWords: UnsafeMutableRawPointer
  let mmapSeq: UnsafeMutablePointer<Atomic<UInt64>>
  let mmLockSeq: UnsafeMutablePointer<Atomic<UInt64>>
  let hooksEnabled: UnsafeMutablePointer<Atomic<Bool>>
  private static let cacheLine = 64
  /// A test hook called at `FaultHookPoint`s (set it before faults run; `nil` to clear). Hooks
  /// at `.beforePTEMapLock` hold no PTL, but a fault under `mmap_lock` still holds it for read
  /// and a per-VMA-locked one the VMA's read lock; only the speculative designs run them with
  /// nothing but a VMA reference or a sequence snapshot. At `.afterLookup`, a speculative fault
  /// holds a VMA reference and a per-VMA-locked fault holds the VMA's read lock.
  package var faultHook: (@Sendable (FaultHookPoint, UInt64) -> Void)? {
    didSet { hooksEnabled.pointee.store(faultHook != nil, ordering: .releasing) }
  }
  /// A test hook called at `WriterHookPoint`s of this address space's writers (`nil`: none).
  /// Set it before the writers run.
  package var writerHook: (@Sendable (WriterHookPoint, UInt64) -> Void)?
  /// The VMA tree (`mm_mt`).
  package let tree: VMATree
  package let pageTable: PageTable
  /// The file-descriptor table of the process owning this address space.
  public let files: FileTable
  /// Per-mm counters in pages (`total_vm`, `data_vm`, `locked_vm`, `exec_vm`, `stack_vm`).
  public internal(set) var totalVM: UInt64 = 0
  /// `data_vm`: private writable pages, charged against `RLIMIT_DATA`.
  public internal(set) var dataVM: UInt64 = 0
  /// `locked_vm`: `VM_LOCKED` pages, charged against `RLIMIT_MEMLOCK`.
  public internal(set) var lockedVM: UInt64 = 0
  /// `exec_vm`: executable, non-writable pages.
  public internal(set) var execVM: UInt64 = 0
  /// `stack_vm`: grows-down (stack) pages.
  public internal(set) var stackVM: UInt64 = 0
  /// `mm->context.pkey_allocation_map`: bit `k` set when key `k` is allocated (key 0 from the
  /// start on a machine with protection keys). Guarded by `mmap_lock` (write).
  var pkeyAllocationMap: UInt16 = 0
  /// `mm->context.execute_only_pkey` (-1: none yet). Guarded by `mmap_lock` (write). 0 on a
  /// machine without keys, where `init_new_context` leaves the zeroed mm's value: key 0 then
  /// counts as execute-only, so `mm_pkey_is_allocated` refuses every key.
  var executeOnlyPkeyValue = -1
  /// `mm->start_brk` and `mm->brk`.
  public internal(set) var startBrk: UInt64
  /// `mm->brk`: the current program break.
  public internal(set) var brkValue: UInt64
  /// `mm->def_flags`: the lock bits `mlockall(MCL_FUTURE)` gives every later mapping, heap
  /// growth included. Guarded by `mmap_lock` (write). A fork child starts without them
  /// (`mm_init` keeps only `VM_INIT_DEF_MASK`).
  var defFlags: VMFlags = []
  /// Source of `anon_vma` identities.
  let anonVMASource = Atomic<UInt64>(0)
  /// VMAs whose `vmSequence` this write transaction made odd; made even after the commit.
  var writeTouched: [VMA] = []
  /// Shared file ranges unmapped under `mmap_lock`, to write back after the unlock.
  /// Guarded by `writebackLock`.
  var pendingWriteback: [(file: OpenFile, from: UInt64, to: UInt64)] = []
  let writebackLock = PThreadMutex()
  /// Ranges mprotect populates once `mmap_lock` is released (guarded by `mmap_lock`).
  var pendingPopulate: [(UInt64, UInt64)] = []
  /// VMAs removed in this write transaction; their tree reference drops after a grace period
  /// that starts after the commit.
  var retiredVMAs: [VMA] = []
  /// The backing object (file or shmem) whose mapping lock this writer holds over a split or
  /// merge (`vma_prepare` to `vma_complete`); guarded by `mmap_lock`.
  var vmaPreparedBacking: AnyObject?
  private var destroyed = false

  // Hot-path copies, reached without ARC.
  unowned(unsafe) let memory: PhysicalMemory
  unowned(unsafe) let rcu: RCUDomain

  /// A new address space on `machine`; `config` defaults to the settings of the machine's
  /// profile.
  public convenience init(machine: Machine, config: AddressSpaceConfig? = nil) throws(Errno) {
    try self.init(
      machine: machine, config: config ?? AddressSpaceConfig(profile: machine.profile),
      files: FileTable(namespace: machine.namespace))
  }

  init(machine: Machine, config: AddressSpaceConfig, files: FileTable) throws(Errno) {
    // The MMU walk (`CPU.translate`) covers 47-bit user addresses only: a larger TASK_SIZE
    // would let VMAs exist where no access can reach them.
    if config.taskSize > Page.userAddressLimit { throw Errno.invalidArgument }
    self.machine = machine
    self.config = config
    memory = machine.memory
    rcu = machine.rcu
    tree = VMATree(rcu: machine.rcu)
    pageTable = try PageTable(memory: machine.memory, vmstat: machine.vmstat, rcu: machine.rcu)
    self.files = files
    startBrk = config.startBrk
    brkValue = config.startBrk
    // init_new_context: key 0 is allocated implicitly where the CPU has keys.
    switch machine.profile.protectionKeys {
    case .x86: pkeyAllocationMap = 1
    case .none: executeOnlyPkeyValue = 0
    }
    faultWords = .allocate(byteCount: 3 * Self.cacheLine, alignment: Self.cacheLine)
    mmapSeq = faultWords.bindMemory(to: Atomic<UInt64>.self, capacity: 1)
    mmapSeq.initialize(to: Atomic(0))
    mmLockSeq = (faultWords + Self.cacheLine).bindMemory(to: Atomic<UInt64>.self, capacity: 1)
    mmLockSeq.initialize(to: Atomic(0))
    hooksEnabled = (faultWords + 2 * Self.cacheLine).bindMemory(to: Atomic<Bool>.self, capacity: 1)
    hooksEnabled.initialize(to: Atomic(false))
  }

  deinit {
    destroy()
    faultWords.deallocate()
  }

  /// The fault design in use.
  public var design: FaultDesign { config.design }

  /// `map_count`.
  public var mapCount: Int { tree.count }

  // MARK: mmap_lock helpers

  /// Takes `mmap_lock` for write and opens a tree transaction.
  func mmapWriteLock() {
    mmapLock.writeLock()
    // Lespinasse: every mmap_write_lock makes mmapSeq odd.
    mmapSeq.pointee.store(mmapSeq.pointee.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
    atomicMemoryFence(ordering: .releasing)
    tree.beginWrite()
  }

  /// Publishes the tree, then releases `mmap_lock` (`mmap_write_unlock`).
  func mmapWriteUnlock() {
    tree.commit()
    for v in writeTouched { v.endWrite() }
    writeTouched.removeAll(keepingCapacity: true)
    mmapSeq.pointee.store(mmapSeq.pointee.load(ordering: .relaxed) &+ 1, ordering: .releasing)
    // vma_end_write_all: every VMA write-locked in this hold is released at once.
    mmLockSeq.pointee.store(mmLockSeq.pointee.load(ordering: .relaxed) &+ 1, ordering: .releasing)
    if !retiredVMAs.isEmpty {
      let gone = retiredVMAs
      retiredVMAs.removeAll()
      rcu.callRCU(cost: gone.count) { for v in gone { v.put() } }
    }
    mmapLock.writeUnlock()
  }

  // MARK: Teardown

  /// Unmaps everything and frees the page tables (`exit_mmap`). Idempotent; `deinit` calls it.
  /// Frames come back after the RCU callbacks run (`Machine.drainDeferredFrees`).
  public func destroy() {
    mmapWriteLock()
    if destroyed {
      mmapWriteUnlock()
      return
    }
    destroyed = true
    var vmas: [VMA] = []
    tree.forEach { vmas.append($0) }
    for v in vmas { removeVMA(v) }
    var gather = MMUGather()
    pageTable.destroy(gather: &gather)
    // exit_mmap's hugetlb_vm_op_close: the pool counts are right once the process is gone,
    // not when the objects' last references go after a grace period.
    for v in vmas where v.flags.contains(.hugeTLB) { hugetlbUnmapped(v) }
    mmapWriteUnlock()
    gather.finish(machine: machine, synchronous: false)
    files.closeAll()
    totalVM = 0
    dataVM = 0
    lockedVM = 0
    execVM = 0
    stackVM = 0
  }

  /// Whether `destroy()` ran.
  public var isDestroyed: Bool {
    mmapLock.readLock()
    defer { mmapLock.readUnlock() }
    return destroyed
  }

  // MARK: Accounting

  /// `vm_stat_account`.
  /// - Requires: `mmap_lock` held for write.
  func vmStatAccount(_ flags: VMFlags, _ pages: Int64) {
    func add(_ v: inout UInt64) { v = UInt64(Int64(v) + pages) }
    add(&totalVM)
    if flags.contains(.locked) { add(&lockedVM) }
    if flags.intersection([.exec, .write, .stack]) == .exec { add(&execVM) }  // is_exec_mapping
    if flags.contains(.stack) { add(&stackVM) }  // is_stack_mapping
    if isDataMapping(flags) { add(&dataVM) }
  }

  /// `is_data_mapping`: private, writable, not a stack.
  func isDataMapping(_ flags: VMFlags) -> Bool {
    flags.intersection([.write, .shared, .stack]) == .write
  }

  /// `may_expand_vm`.
  func mayExpandVM(_ flags: VMFlags, _ pages: UInt64) -> Bool {
    if config.rlimitAS != .max && totalVM + pages > config.rlimitAS >> Page.shift { return false }
    if isDataMapping(flags) && config.rlimitData != .max && dataVM + pages > config.rlimitData >> Page.shift {
      return false
    }
    return true
  }
}
