/// Pages and page-table pages unmapped by a zap, freed only after the "TLB flush"
/// (`mm/mmu_gather.c`).
///
/// Faultline's accessors walk page tables and copy bytes inside an RCU read section, the way a
/// CPU uses a TLB entry until it is shot down. So the flush is an RCU grace period: frames and
/// tables gathered here are released by an RCU callback, never while an access that saw the old
/// entry may still touch them. `needsFlush` also records permission downgrades (mprotect), which
/// must wait for a grace period before the system call returns.
struct MMUGather {
  /// Data frames whose PTE reference must be dropped after the flush.
  var pages: [PFN] = []
  /// Page-table pages unlinked from their parent.
  var tables: [PFN] = []
  /// Some entry was cleared or lost permissions.
  var needsFlush = false
  /// The flush must complete before `finish` returns (shared file pages are written back next,
  /// and no store through an old entry may land after that).
  var mustWait = false

  /// An empty gather (`tlb_gather_mmu`).
  init() {}

  /// Nothing gathered and no flush needed: `finish` has nothing to do.
  var isEmpty: Bool { pages.isEmpty && tables.isEmpty && !needsFlush }

  @inline(__always) mutating func removePage(_ pfn: PFN) {
    pages.append(pfn)
    needsFlush = true
  }

  mutating func removeTable(_ pfn: PFN) {
    tables.append(pfn)
    needsFlush = true
  }

  mutating func flushNeeded() { needsFlush = true }

  mutating func requireWait() { mustWait = true }

  /// Ends the gather (`tlb_finish_mmu`). Frames go back through `rcu.callRCU`; with
  /// `synchronous`, the caller also waits for the grace period, so that no access that started
  /// before returns after (used by munmap and mprotect, whose callers rely on that ordering).
  /// - Requires: no RCU read section and no spinlock held: it may wait for a grace period.
  mutating func finish(machine: Machine, synchronous: Bool) {
    guard needsFlush else { return }
    let pages = self.pages
    let tables = self.tables
    let wait = synchronous || mustWait
    self = MMUGather()
    if wait {
      machine.rcu.synchronize()
      machine.vmstat.add(.tlbFlush)
      Self.release(pages: pages, tables: tables, machine: machine)
    } else {
      machine.rcu.callRCU(cost: pages.count + tables.count) { [unowned(unsafe) machine] in
        Self.release(pages: pages, tables: tables, machine: machine)
      }
    }
  }

  static func release(pages: [PFN], tables: [PFN], machine: Machine) {
    var freed: UInt64 = 0
    // Freed in reverse, so that the LIFO free stack hands them out again in the order they were
    // first used: a loop that maps, touches and unmaps sees the same frame order every round,
    // where alternating orders made its cost swing by 1.7x on these machines.
    let memory = machine.memory
    for p in pages.reversed() {
      // A huge page mapped by a PMD was gathered by its head, a subpage a split left mapped by
      // a PTE by itself: its reference is its head's (`folio_put`). The huge zero page has
      // references of its own.
      if memory.isHugeZeroPage(p) {
        memory.putHugeZeroPage()
      } else {
        freed += UInt64(memory.frames.putFolio(p))
      }
    }
    for t in tables { machine.memory.put(t) }
    if freed > 0 { machine.vmstat.add(.pgfree, freed) }
  }
}
