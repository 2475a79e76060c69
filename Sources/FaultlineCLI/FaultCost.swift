import ArgumentParser
import Faultline

/// `faultline fault-cost`: one kind of page fault, `--pages` times, inside one function that
/// callgrind can count alone (`Scripts/fault-instructions.sh`).
public struct FaultCost: ParsableCommand {
  public init() {}
  public static let configuration = CommandConfiguration(
    commandName: "fault-cost",
    abstract: "Take --pages faults of one kind under one design, for counting their instructions.",
    discussion: """
      This command exists for instruction counting: Scripts/fault-instructions.sh runs it under \
      `valgrind --tool=callgrind --toggle-collect='*faultCostLoop*'`, so that only the faults \
      themselves are counted. Everything else happens outside faultCostLoop: the machine \
      (profile reference, so that the figures do not depend on this host), the mapping, the \
      file and its page cache, fork, and one warm-up fault that allocates the PTE table and the \
      anon_vma (for anon-read a write, since a read fault allocates no anon_vma). The mapping is placed on a 2 MiB boundary, so that up to 496 pages need no \
      other page table.

      Kinds, and the Linux function that handles each:
        anon-write         first write, private anonymous (do_anonymous_page: zeroes)
        anon-read          first read, private anonymous (maps the zero page)
        cow                write after fork to a page the parent wrote (wp_page_copy)
        file-cow           write, private map of a cached tmpfs file (do_cow_fault)
        file-shared-write  write, shared map of a cached tmpfs file (do_shared_fault)
        file-read          read, private map of a cached tmpfs file (do_read_fault)
      file-read's faults map 16 pages each (fault-around), so its loop touches the first page \
      of each 64 KiB block.

      Prints the faults taken (the pgfault delta of /proc/vmstat), the pages zeroed and copied, \
      the pages fault-around mapped, and the faults done without mmap_lock, as `name value` lines.
      """)

  @Option(help: "The fault to take (kinds above).")
  var kind: FaultKind

  @Option(help: "The fault design: \(FaultDesign.allCases.map(\.rawValue).joined(separator: ", ")).")
  var design = FaultDesign.mmapLock.rawValue

  @Option(help: "Pages the loop touches (file-read: faults are pages/16).")
  var pages = 256

  @Option(name: .customLong("memory-mib"), help: "The frame arena, in MiB.")
  var memoryMiB = 16

  public mutating func validate() throws {
    guard FaultDesign(rawValue: design) != nil else {
      throw ValidationError("unknown design '\(design)'; expected \(FaultDesign.allCases.map(\.rawValue))")
    }
    guard pages >= 1 && pages <= 1 << 20 else { throw ValidationError("--pages must be in [1, 1048576]") }
    guard memoryMiB >= 1 && memoryMiB <= 1 << 16 else { throw ValidationError("--memory-mib must be in [1, 65536]") }
  }

  public mutating func run() throws {
    let r = try measureFaultCost(
      kind: kind, design: FaultDesign(rawValue: design)!, pages: pages, memoryBytes: memoryMiB << 20)
    print(r.text, terminator: "")
  }
}

/// A fault kind `faultline fault-cost` takes, by its Linux name.
enum FaultKind: String, CaseIterable, ExpressibleByArgument {
  case anonWrite = "anon-write"
  case anonRead = "anon-read"
  case cow
  case fileCOW = "file-cow"
  case fileSharedWrite = "file-shared-write"
  case fileRead = "file-read"

  /// Whether the counted access is a store.
  var writes: Bool {
    switch self {
    case .anonWrite, .cow, .fileCOW, .fileSharedWrite: true
    case .anonRead, .fileRead: false
    }
  }

  /// Pages between two counted accesses: file-read touches one page per fault-around block.
  func stride(_ config: AddressSpaceConfig) -> Int {
    switch self {
    case .fileRead: max(config.faultAroundPages, 1)
    case .anonWrite, .anonRead, .cow, .fileCOW, .fileSharedWrite: 1
    }
  }
}

/// What `faultline fault-cost` counted across the loop.
struct FaultCostResult: Equatable {
  var kind: FaultKind
  var design: FaultDesign
  var pages: Int
  /// `pgfault`.
  var faults: UInt64
  /// Pages cleared by the fault path: `pgalloc_normal`, less the ones `wp_page_copy` copied into.
  var pagesZeroed: UInt64
  /// `pgcow`: pages copied (`wp_page_copy` from a page, `do_cow_fault`).
  var pagesCopied: UInt64
  /// `fault_around_pages`.
  var faultAroundPages: UInt64
  /// Faults done without `mmap_lock` (`speculative_pgfault`, `vma_lock_success`); the rest fell
  /// back to it or, under mmap_lock, never tried.
  var locklessFaults: UInt64

  var text: String {
    """
    kind \(kind.rawValue)
    design \(design.rawValue)
    pages \(pages)
    faults \(faults)
    pages_zeroed \(pagesZeroed)
    pages_copied \(pagesCopied)
    fault_around_pages \(faultAroundPages)
    lockless_faults \(locklessFaults)

    """
  }
}

/// Sets up one address space for `kind`, takes the faults in `faultCostLoop`, and tears it down.
///
/// The mapping holds one warm-up block (a fault-around block, so that file-read's warm-up maps
/// nothing the loop touches) before the `pages` the loop touches; the warm-up fault allocates
/// the PTE table and the anon_vma outside the loop.
func measureFaultCost(kind: FaultKind, design: FaultDesign, pages: Int, memoryBytes: Int) throws -> FaultCostResult {
  let machine = try Machine(memoryBytes: memoryBytes, profile: .reference)
  machine.mount(TmpFS(memory: machine.memory), at: "/fault-cost")
  var config = AddressSpaceConfig(profile: machine.profile)
  config.design = design
  let mm = try AddressSpace(machine: machine, config: config)
  var child: AddressSpace?
  defer {
    child?.destroy()
    mm.destroy()
    machine.drainDeferredFrees()
  }
  let cpu = try CPU(mm: mm)
  let warm = max(16, kind.stride(config))
  let length = UInt64(warm + pages) * Page.size
  let rw = Prot.read | Prot.write
  // A 2 MiB-aligned hint: the reference profile grants it, so the region shares one PTE table.
  let hint: UInt64 = 0x7E00_0000_0000
  let start: UInt64
  switch kind {
  case .anonWrite, .anonRead, .cow:
    start = try cpu.mmap(hint, length, prot: rw, flags: MapFlags.private | MapFlags.anonymous)
    if kind == .cow {
      var va = start
      while va < start + length {
        try cpu.storeByte(va, 1)
        va += Page.size
      }
      child = try cpu.fork()
    }
  case .fileCOW, .fileSharedWrite, .fileRead:
    let fd = try cpu.open("/fault-cost/file", flags: OpenFlags.readWrite | OpenFlags.create)
    let bytes = [UInt8](repeating: 1, count: Int(length))
    _ = try bytes.withUnsafeBytes { try mm.files.pwrite(fd, $0, at: 0) }
    let shared = kind == .fileSharedWrite
    start = try cpu.mmap(hint, length, prot: rw, flags: shared ? MapFlags.shared : MapFlags.private, fd: fd)
    try cpu.close(fd)
  }
  // anon-read warms up with a write, so that the VMA has its anon_vma as any VMA written once
  // does: without one, every lockless design hands a read fault to mmap_lock.
  try faultCostAccess(cpu, start, write: kind.writes || kind == .anonRead)
  let before = machine.vmstat.snapshot
  try faultCostLoop(cpu, from: start + UInt64(warm) * Page.size, pages: pages, stride: kind.stride(config), write: kind.writes)
  let after = machine.vmstat.snapshot
  func delta(_ item: VMStatItem) -> UInt64 { (after[item] ?? 0) &- (before[item] ?? 0) }
  let copied = delta(.pgcow)
  // wp_page_copy counts its page in pgalloc_normal and pgcow; do_cow_fault only in pgcow.
  let zeroed = kind == .cow ? delta(.pgallocNormal) &- copied : delta(.pgallocNormal)
  try cpu.munmap(start, length)
  return FaultCostResult(
    kind: kind, design: design, pages: pages, faults: delta(.pgfault), pagesZeroed: zeroed, pagesCopied: copied,
    faultAroundPages: delta(.faultAroundPages), locklessFaults: delta(.speculativePgfault) + delta(.vmaLockSuccess))
}

/// The counted region: one access per `stride` pages of `pages` from `start`, each a fault.
/// Its name is what `valgrind --toggle-collect='*faultCostLoop*'` matches, so it must stay a
/// function of its own.
@inline(never)
func faultCostLoop(_ cpu: CPU, from start: UInt64, pages: Int, stride: Int, write: Bool) throws {
  var i = 0
  while i < pages {
    try faultCostAccess(cpu, start + UInt64(i) * Page.size, write: write)
    i += stride
  }
}

/// One store or load; inlined into the loop and into the warm-up.
@inline(__always)
private func faultCostAccess(_ cpu: CPU, _ va: UInt64, write: Bool) throws {
  if write {
    try cpu.storeByte(va, 1)
  } else {
    _ = try cpu.loadByte(va)
  }
}
