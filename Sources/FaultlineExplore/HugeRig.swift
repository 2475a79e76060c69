import Faultline
import Glibc

/// The set-up and checks the transparent-huge-page scenarios share (issue 18): a 4 MiB private
/// anonymous mapping at `base` (2 MiB aligned) with `MADV_HUGEPAGE`, on a machine whose THP
/// setting is pinned to `madvise` with the huge zero page (whatever `--profile` says, as the
/// scenarios are about huge faults):
/// ```
/// base            base + 2 MiB = hugeRange        + 1 MiB             base + 4 MiB
/// [ R0: huge page ][ R1: page 1 = target … page 3 …|… upper half …     ]
/// ```
/// R0's first byte is written in set-up (a huge page there, and the VMA's anon_vma, so that
/// per-VMA locks can fault without `mmap_lock`); R1 is what the fault and the writer race over.
/// Variant `write`: R1 is empty and the fault stores `value` (a new huge page); `read`: R1 is
/// empty and the fault loads (the huge zero page); `zero-write`: a set-up load mapped the huge
/// zero page over R1 and the fault stores (`do_huge_zero_wp_pmd`).
///
/// Checks, with what Linux 6.18 gives for each order (a C program on the host: one huge page
/// per 2 MiB, a partial munmap, mprotect or `MADV_DONTNEED` splits it and keeps the rest
/// resident, a fault in a range no longer wholly inside one VMA maps 4 KiB): every mapped frame
/// is live (invariant 3, huge-aware), every byte of R1 reads 0 but the one the fault stored, mapcounts and
/// refcounts match the mappings exactly once everything settled, mincore agrees with the page
/// tables, and frames and page tables are back to their baseline once everything is unmapped.
class HugeRig: ScenarioRig {
  static let huge = TransparentHugePage.size
  /// The byte the fault stores, at `byteOffset` into `target`.
  static let value: UInt8 = 0xBB
  static let byteOffset: UInt64 = 0x123
  /// R1's start.
  static var hugeRange: UInt64 { base + huge }

  /// Whether the fault stores (`write`, `zero-write`) rather than loads.
  let store: Bool
  /// What the fault's load returned.
  let loaded = Shared<UInt8?>(nil)
  /// Frames in use and page-table pages before the window was mapped.
  var baselineFrames = 0
  var baselineTables = 0

  /// The scenario's profile: the caller's, with THP pinned to `madvise` and the huge zero page.
  static func pinned(_ profile: MachineProfile) -> MachineProfile {
    var p = profile
    p.thpEnabled = .madvise
    p.thpPMDEnabled = .inherit
    p.thpUseZeroPage = true
    return p
  }

  init(_ config: ScenarioConfig, _ s: Scheduler) throws {
    var c = config
    c.profile = Self.pinned(config.profile)
    store = config.variant != "read"
    // Room for R0's and R1's huge pages, the huge zero page and a fork's copies, with whole
    // 2 MiB blocks left after the page tables took theirs.
    try super.init(c, s, memoryBytes: 32 << 20)
    machine.drainDeferredFrees()
    baselineFrames = machine.memory.framesInUse
    baselineTables = mm!.pageTable.tablePages
    let cpu = self.cpu!
    _ = try cpu.mmap(Self.base, 2 * Self.huge, prot: Prot.read | Prot.write,
                     flags: MapFlags.private | MapFlags.anonymous | MapFlags.fixed)
    try cpu.madvise(Self.base, 2 * Self.huge, advice: .hugePage)
    try cpu.storeByte(Self.base, 0x11)
    target = Self.hugeRange + Self.page
    range = (Self.hugeRange, Self.hugeRange + Self.huge)
    if config.variant == "zero-write" { _ = try cpu.loadByte(target) }
  }

  /// The fault thread's body: a store of `value` (or a load) at `target + byteOffset`, faulting
  /// and retrying as the CPU would.
  func accessBody() -> @Sendable () -> Void {
    let (mm, times, s, store, loaded) = (mm!, times, scheduler, store, loaded)
    let address = target + Self.byteOffset
    return {
      let cpu: CPU
      do { cpu = try CPU(mm: mm) } catch {
        times.with { $0.errors.append("CPU(mm:): \(error)") }
        return
      }
      let start = s.stamp()
      times.with { $0.faultStart = start }
      var outcome = FaultOutcome.ok
      do throws(Signal) {
        if store {
          try cpu.storeByte(address, Self.value)
        } else {
          let v = try cpu.loadByte(address)
          loaded.with { $0 = v }
        }
      } catch { outcome = .signal(error) }
      let end = s.stamp()
      times.with {
        $0.faultEnd = end
        $0.outcome = outcome
      }
    }
  }

  /// Whether the fault finished before the writer started (`true`), started after it returned
  /// (`false`), or overlapped it (`nil`).
  var faultFirst: Bool? {
    let t = times.value
    if t.faultEnd != 0 && t.writerStart != 0 && t.faultEnd < t.writerStart { return true }
    if t.writerEnd != 0 && t.faultStart > t.writerEnd { return false }
    return nil
  }

  /// R1's PMD in `mm` as the outcome tables print it: `huge`, `huge-zero`, `table` or `none`.
  func describePMD(_ mm: AddressSpace) -> String {
    guard let pmd = mm.pageTable.lookupPMD(Self.hugeRange) else { return "none" }
    let e = PTE(raw: pmd.pointee.load(ordering: .acquiring))
    if e.isNone { return "none" }
    if e.raw & PTE.huge != 0 { return e.isSpecial ? "huge-zero" : "huge" }
    return "table"
  }

  /// Whether R1's PMD in `mm` is a huge leaf.
  func isHuge(_ mm: AddressSpace) -> Bool { describePMD(mm).hasPrefix("huge") }

  /// Invariant 3 with huge pages, lock-free (`MappingAudit.checkLive`), over the window.
  func checkHugeFramesLive(_ mm: AddressSpace, _ when: String, _ v: inout [String]) {
    MappingAudit(memory: machine.memory).checkLive(mm, Self.base, Self.base + 2 * Self.huge, when: "(\(when))", &v)
  }

  /// Once every reference settled: mapcounts and refcounts exact over the window of `mms`
  /// (`MappingAudit.checkExact`).
  func checkMapcounts(_ mms: [AddressSpace], _ v: inout [String]) {
    MappingAudit(memory: machine.memory).checkExact(mms, Self.base, Self.base + 2 * Self.huge, &v)
  }

  /// Every byte of R1 in `mm` as the page tables map it (without faulting): 0 everywhere but
  /// `target + byteOffset`, which must be `expected` (or either of `expected` and `alternative`).
  /// Unmapped pages read 0, as the next fault would give them.
  /// A wrong value at the target is reported under `rule` (6 for what fork leaves the child).
  func checkValues(
    _ mm: AddressSpace, _ who: String, expected: UInt8, or alternative: UInt8? = nil, rule: String = "inv7",
    _ v: inout [String]
  ) -> UInt8 {
    let memory = machine.memory
    let zero = [UInt8](repeating: 0, count: Page.byteCount)
    var seen: UInt8 = 0
    for a in stride(from: range.start, to: range.end, by: Int(Self.page)) {
      let pte = mm.pageTable.pte(at: a)
      guard pte.isPresent && !pte.isSpecial else { continue }
      let bytes = UnsafeRawPointer(memory.address(of: pte.pfn))
      if a == target {
        seen = bytes.load(fromByteOffset: Int(Self.byteOffset), as: UInt8.self)
        var copy = [UInt8](UnsafeRawBufferPointer(start: bytes, count: Page.byteCount))
        copy[Int(Self.byteOffset)] = 0
        if copy != zero { v.append("inv7: \(who) page \(hex(a)) holds bytes nobody wrote") }
      } else if memcmp(bytes, zero, Page.byteCount) != 0 {
        v.append("inv7: \(who) page \(hex(a)) holds bytes nobody wrote")
      }
    }
    if seen != expected && seen != (alternative ?? expected) {
      let allowed = alternative.map { "\(hex(UInt64(expected))) or \(hex(UInt64($0)))" } ?? hex(UInt64(expected))
      v.append("\(rule): \(who) reads \(hex(UInt64(seen))) at \(hex(target + Self.byteOffset)), expected \(allowed)")
    }
    return seen
  }

  /// mincore over `[start, end)` agrees with the page tables; returns the resident pages.
  func checkMincore(_ mm: AddressSpace, _ start: UInt64, _ end: UInt64, _ v: inout [String]) -> Int {
    do {
      let vec = try CPU(mm: mm).mincore(start, end - start)
      var resident = 0
      for (i, a) in stride(from: start, to: end, by: Int(Self.page)).enumerated() {
        let mapped = mm.pageTable.pte(at: a).isPresent
        if (vec[i] & 1 == 1) != mapped { v.append("mincore: \(hex(a)) reads \(vec[i]) but is \(mapped ? "" : "not ")mapped") }
        resident += Int(vec[i] & 1)
      }
      return resident
    } catch {
      v.append("mincore: \(error)")
      return -1
    }
  }

  /// The last checks: unmaps the whole window, and frames and page tables must be back to
  /// their baseline once deferred frees ran; then the usual teardown.
  func unmapAndTeardown(allFinished: Bool, _ v: inout [String]) {
    if allFinished, let cpu, let mm {
      mm.faultHook = nil
      mm.writerHook = nil
      do throws(Errno) { try cpu.munmap(Self.base, 2 * Self.huge) } catch { v.append("error: munmap of the window: \(error)") }
      machine.drainDeferredFrees()
      let frames = machine.memory.framesInUse
      let tables = mm.pageTable.tablePages
      if frames != baselineFrames { v.append("inv3: \(frames) frames in use after munmap of everything, \(baselineFrames) before") }
      if tables != baselineTables { v.append("inv3: \(tables) page-table pages after munmap of everything, \(baselineTables) before") }
    }
    teardown(allFinished: allFinished, &v)
  }
}
