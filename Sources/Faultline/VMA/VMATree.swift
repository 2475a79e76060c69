import CFaultlineShims
import Synchronization

/// The VMA tree: a B+tree of non-overlapping `[start, end)` ranges with copy-on-write nodes
/// in raw memory, in the role of Linux's maple tree.
///
/// - Readers (`find`, `forEachPublished`, the `reader` value) run with no lock inside an RCU
///   read section (or under `mmap_lock`): they load the published root and walk immutable
///   nodes. `findW`, `findPrev` and `forEach` walk the writer's `working` tree instead, so only
///   the `mmap_lock` holder calls them (for write, or for read when no transaction is open).
/// - Writers hold `mmap_lock` for write and work in a transaction: `beginWrite()` opens it,
///   `insert`/`remove` copy the nodes they change (a node already copied in this transaction is
///   changed in place), and `commit()` publishes the new root with one release store and retires
///   the replaced nodes through `callRCU`. A reader therefore sees either the whole of a
///   system call's tree change or none of it.
///
/// Keys are the ranges' ends, which are ordered like the starts because ranges do not overlap.
/// Internal entries carry their subtree's first start and last end, so a lookup is one descent,
/// and the largest gap between neighbouring ranges inside the subtree (the maple tree's
/// `ma_gaps`), so that `get_unmapped_area` finds room in O(log n) (`VMATree+Gaps.swift`). The
/// writers keep the gaps with the summaries they already copy; lookups never read them.
///
/// Guards: `working`, `generation`, `retired`, `count` belong to the `mmap_lock` writer.
package final class VMATree: @unchecked Sendable {
  /// Entries per node. `Node.keysAtOrBelow`'s search steps cover exactly 16 keys.
  static let fanout = 16
  static let minFill = 4

  /// The published root, in its own allocation so that `reader` can load it.
  private let rootWord: UnsafeMutablePointer<Atomic<UnsafeMutableRawPointer?>>
  /// Lock-free lookups as a plain value, for hot paths (no reference counting).
  let reader: VMATreeReader
  private(set) var working: Node
  private var generation: UInt64 = 1
  private var retired: [Node] = []
  let rcu: RCUDomain
  /// Entries in the working tree (`map_count` when every entry is a VMA).
  package private(set) var count = 0

  /// An empty tree whose readers rely on `rcu`'s grace periods before retired nodes are freed.
  package init(rcu: RCUDomain) {
    self.rcu = rcu
    let root = Node.allocate(leaf: true, generation: 0)
    working = root
    rootWord = .allocate(capacity: 1)
    rootWord.initialize(to: Atomic(root.p))
    reader = VMATreeReader(rootWord: rootWord)
  }

  deinit {
    precondition(retired.isEmpty, "VMATree destroyed inside a write transaction")
    rcu.barrier()
    freeSubtree(working)
    rootWord.deallocate()
  }

  // MARK: Readers

  /// The first range whose end is above `addr` (`find_vma`), in the published tree. The caller
  /// holds an RCU read section or `mmap_lock`, which keeps the returned object alive.
  @inline(__always)
  package func find(_ addr: UInt64) -> Unmanaged<VMA>? { reader.find(addr) }

  ///
  /// Each level costs one cache miss on the node (its header, keys and child pointers sit
  /// together at the front of it and are prefetched as one block) and five steps of a binary
  /// search with no branches (unused key slots hold `UInt64.max`), so the position of `addr` in
  /// a node costs no misprediction.
  @inline(__always)
  static func find(_ root: Node, _ addr: UInt64) -> UnsafeMutableRawPointer? {
    var n = root
    while true {
      let i = n.keysAtOrBelow(addr)
      if i >= n.count { return nil }
      if n.isLeaf { return n.ptr(i) }
      n = Node(n.ptr(i))
      n.prefetchLookup()
    }
  }

  // MARK: Writer lookups (the working tree)

  /// `find` in the working tree (writers see their own uncommitted changes).
  /// - Requires: `mmap_lock` held (for read only while no write transaction is open).
  package func findW(_ addr: UInt64) -> VMA? {
    Self.find(working, addr).map { Unmanaged<VMA>.fromOpaque($0).takeUnretainedValue() }
  }

  /// The last range ending at or below `addr` (the `prev` of `find_vma_prev`).
  /// - Requires: `mmap_lock` held (for read only while no write transaction is open).
  func findPrev(_ addr: UInt64) -> VMA? {
    Self.prev(working, addr).map { Unmanaged<VMA>.fromOpaque($0).takeUnretainedValue() }
  }

  private static func prev(_ n: Node, _ addr: UInt64) -> UnsafeMutableRawPointer? {
    let c = n.count
    var i = 0
    while i < c && n.key(i) <= addr { i += 1 }
    if n.isLeaf { return i > 0 ? n.ptr(i - 1) : nil }
    if i < c, let r = prev(Node(n.ptr(i)), addr) { return r }
    if i > 0 { return last(Node(n.ptr(i - 1))) }
    return nil
  }

  private static func last(_ n: Node) -> UnsafeMutableRawPointer? {
    var n = n
    while !n.isLeaf { n = Node(n.ptr(n.count - 1)) }
    return n.count > 0 ? n.ptr(n.count - 1) : nil
  }

  /// Every VMA of the working tree in address order.
  /// - Requires: `mmap_lock` held (for read only while no write transaction is open).
  package func forEach(_ body: (VMA) throws -> Void) rethrows {
    try Self.walk(working) { try body(Unmanaged<VMA>.fromOpaque($0).takeUnretainedValue()) }
  }

  /// Every VMA of the published tree in address order (readers under RCU or `mmap_lock`).
  package func forEachPublished(_ body: (VMA) throws -> Void) rethrows {
    try Self.walk(Node(rootWord.pointee.load(ordering: .acquiring)!)) {
      try body(Unmanaged<VMA>.fromOpaque($0).takeUnretainedValue())
    }
  }

  private static func walk(_ n: Node, _ body: (UnsafeMutableRawPointer) throws -> Void) rethrows {
    for i in 0..<n.count {
      if n.isLeaf { try body(n.ptr(i)) } else { try walk(Node(n.ptr(i)), body) }
    }
  }

  /// The tree's height (1 for a lone leaf).
  /// - Requires: `mmap_lock` held (it measures the working tree).
  package var height: Int {
    var h = 1
    var n = working
    while !n.isLeaf { n = Node(n.ptr(0)); h += 1 }
    return h
  }

  // MARK: Transactions

  /// Identifies the open write transaction (changes at every commit).
  var transactionGeneration: UInt64 { generation }

  /// Opens a write transaction.
  /// - Requires: `mmap_lock` held for write.
  func beginWrite() {
    precondition(retired.isEmpty)
  }

  /// Publishes the working tree and retires the nodes it replaced.
  /// - Requires: `mmap_lock` held for write.
  func commit() {
    if working.p != rootWord.pointee.load(ordering: .relaxed) {
      rootWord.pointee.store(working.p, ordering: .releasing)
    }
    if !retired.isEmpty {
      let old = retired
      retired = []
      rcu.callRCU(cost: 1) { for n in old { n.deallocate() } }
    }
    generation += 1
  }

  /// Inserts `vma` over its current `[start, end)`, which must not overlap any entry.
  /// - Requires: `mmap_lock` held for write.
  package func insert(_ vma: VMA) {
    let e = Entry(key: vma.end, start: vma.start, ptr: Unmanaged.passUnretained(vma).toOpaque(), gap: 0)
    precondition(e.start < e.key, "empty VMA")
    let (n, right) = insert(working, e)
    if let right {
      let root = Node.allocate(leaf: false, generation: generation)
      root.append(n.summary)
      root.append(right.summary)
      working = root
    } else {
      working = n
    }
    count += 1
  }

  /// Removes `vma`, found by its current bounds (remove before changing them).
  /// - Requires: `mmap_lock` held for write.
  package func remove(_ vma: VMA) {
    var n = remove(working, end: vma.end, ptr: Unmanaged.passUnretained(vma).toOpaque())
    while !n.isLeaf && n.count == 1 {
      let child = Node(n.ptr(0))
      drop(n)
      n = child
    }
    working = n
    count -= 1
  }

  // MARK: Copy-on-write B+tree

  struct Entry {
    var key: UInt64
    var start: UInt64
    var ptr: UnsafeMutableRawPointer
    /// In an internal node, the largest gap between neighbouring ranges of the child's subtree
    /// (0 in a leaf).
    var gap: UInt64
  }

  private func cow(_ n: Node) -> Node {
    if n.generation == generation { return n }
    let copy = Node.allocate(leaf: n.isLeaf, generation: generation)
    copy.p.copyMemory(from: n.p, byteCount: Node.size)
    copy.generation = generation
    retired.append(n)
    return copy
  }

  /// Frees a node that was never published, or retires one that was.
  private func drop(_ n: Node) {
    if n.generation == generation { n.deallocate() } else { retired.append(n) }
  }

  private func insert(_ node: Node, _ e: Entry) -> (Node, Node?) {
    let n = cow(node)
    let c = n.count
    var i = 0
    while i < c && n.key(i) <= e.start { i += 1 }
    if n.isLeaf {
      n.insert(e, at: i)
    } else {
      if i == c { i = c - 1 }
      let (child, right) = insert(Node(n.ptr(i)), e)
      n.set(i, child.summary)
      if let right { n.insert(right.summary, at: i + 1) }
    }
    if n.count > Self.fanout {
      let right = Node.allocate(leaf: n.isLeaf, generation: generation)
      // Placement fills the address space in order (downward, or upward in the legacy layout),
      // so most inserts land at one end of a node. Halving such a node would leave a trail of
      // half-empty ones; keep the full side full instead, as the maple tree does for appends,
      // so the tree stays shallow: 65,530 one-page VMAs need four levels, not five. (The new
      // entry, or the child that split, is at `i`; in an internal node its new right half is at
      // `i + 1`. The one-entry node left at the growing end is filled by the next inserts, and
      // `remove` rebalances any node that falls below `minFill`.)
      let half: Int
      if i + (n.isLeaf ? 0 : 1) == n.count - 1 {
        half = n.count - 1
      } else if i == 0 {
        half = 1
      } else {
        half = n.count / 2
      }
      for j in half..<n.count { right.append(n.entry(j)) }
      n.truncate(half)
      return (n, right)
    }
    return (n, nil)
  }

  private func remove(_ node: Node, end: UInt64, ptr: UnsafeMutableRawPointer) -> Node {
    let n = cow(node)
    let c = n.count
    var i = 0
    while i < c && n.key(i) < end { i += 1 }
    precondition(i < c, "VMATree.remove: entry not found")
    if n.isLeaf {
      precondition(n.ptr(i) == ptr && n.key(i) == end, "VMATree.remove: entry not found")
      n.remove(at: i)
      return n
    }
    let child = remove(Node(n.ptr(i)), end: end, ptr: ptr)
    if child.count == 0 {
      drop(child)
      n.remove(at: i)
      return n
    }
    n.set(i, child.summary)
    if child.count < Self.minFill && n.count > 1 { rebalance(n, i) }
    return n
  }

  /// Merges child `i` with a neighbour, or evens out the two.
  private func rebalance(_ n: Node, _ i: Int) {
    let l = i + 1 < n.count ? i : i - 1
    let left = cow(Node(n.ptr(l)))
    let right = cow(Node(n.ptr(l + 1)))
    let total = left.count + right.count
    if total <= Self.fanout {
      for j in 0..<right.count { left.append(right.entry(j)) }
      right.truncate(0)
      drop(right)
      n.set(l, left.summary)
      n.remove(at: l + 1)
    } else {
      var all: [Entry] = []
      all.reserveCapacity(total)
      for j in 0..<left.count { all.append(left.entry(j)) }
      for j in 0..<right.count { all.append(right.entry(j)) }
      left.truncate(0)
      right.truncate(0)
      let half = total / 2
      for j in 0..<half { left.append(all[j]) }
      for j in half..<total { right.append(all[j]) }
      n.set(l, left.summary)
      n.set(l + 1, right.summary)
    }
  }

  private func freeSubtree(_ n: Node) {
    if !n.isLeaf { for i in 0..<n.count { freeSubtree(Node(n.ptr(i))) } }
    n.deallocate()
  }

  /// Checks the tree's structure: ordering, summaries, fill, uniform depth. Returns the entries.
  /// - Requires: `mmap_lock` held (it walks the working tree).
  package func verify() -> Int {
    var depth: Int? = nil
    func check(_ n: Node, _ d: Int, _ isRoot: Bool, _ lower: inout UInt64) -> Int {
      precondition(n.count <= Self.fanout)
      for j in n.count..<Node.slots { precondition(n.key(j) == .max, "unused key slot not cleared") }
      if n.isLeaf {
        if let depth { precondition(depth == d, "leaves at different depths") } else { depth = d }
        for i in 0..<n.count {
          precondition(n.start(i) >= lower && n.start(i) < n.key(i), "unordered or empty entry")
          lower = n.key(i)
        }
        return n.count
      }
      precondition(n.count >= 1 && (isRoot ? n.count >= 2 : true), "internal node too small")
      var total = 0
      for i in 0..<n.count {
        let child = Node(n.ptr(i))
        precondition(child.count > 0, "empty child")
        let summary = child.summary
        precondition(n.key(i) == summary.key && n.start(i) == summary.start && n.gap(i) == summary.gap, "stale summary")
        total += check(child, d + 1, false, &lower)
      }
      return total
    }
    var lower: UInt64 = 0
    let total = check(working, 1, true, &lower)
    precondition(total == count, "count mismatch")
    return total
  }
}

/// The published tree's lookups as a plain value. Valid while its tree lives.
struct VMATreeReader: @unchecked Sendable {
  let rootWord: UnsafeMutablePointer<Atomic<UnsafeMutableRawPointer?>>

  /// The first range whose end is above `addr` (`find_vma`). The caller holds an RCU read
  /// section or `mmap_lock`, which keeps the returned object alive.
  @inline(__always)
  func find(_ addr: UInt64) -> Unmanaged<VMA>? {
    VMATree.find(Node(rootWord.pointee.load(ordering: .acquiring)!), addr).map { Unmanaged.fromOpaque($0) }
  }
}

/// One tree node in raw memory: count · leaf · generation · keys[17] · ptrs[17] · starts[17] ·
/// gaps[17]. One slot beyond the fanout absorbs an insert before the split. A lookup reads only
/// the first 288 bytes (header, keys, child pointers); the writers' starts and gaps follow.
struct Node {
  static let slots = VMATree.fanout + 1
  static let keysOffset = 16
  static let ptrsOffset = keysOffset + slots * 8
  static let startsOffset = ptrsOffset + slots * 8
  static let gapsOffset = startsOffset + slots * 8
  static let size = gapsOffset + slots * 8
  /// The bytes a lookup reads, from the start of the node.
  static let lookupBytes = startsOffset

  let p: UnsafeMutableRawPointer
  @inline(__always) init(_ p: UnsafeMutableRawPointer) { self.p = p }

  static func allocate(leaf: Bool, generation: UInt64) -> Node {
    let n = Node(UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64))
    n.p.initializeMemory(as: UInt8.self, repeating: 0, count: size)
    (n.p + keysOffset).initializeMemory(as: UInt64.self, repeating: .max, count: slots)
    n.p.storeBytes(of: leaf ? 1 : 0, toByteOffset: 4, as: Int32.self)
    n.generation = generation
    return n
  }

  func deallocate() { p.deallocate() }

  /// Starts loading the part of the node a lookup reads: its five cache lines arrive together
  /// instead of one after the other as the key count and then the child pointer need them.
  @inline(__always) func prefetchLookup() {
    var offset = 64
    while offset < Self.lookupBytes {
      fl_prefetch(p + offset)
      offset += 64
    }
  }

  @inline(__always) var count: Int {
    get { Int(p.load(as: Int32.self)) }
    nonmutating set { p.storeBytes(of: Int32(newValue), as: Int32.self) }
  }
  @inline(__always) var isLeaf: Bool { p.load(fromByteOffset: 4, as: Int32.self) != 0 }
  var generation: UInt64 {
    get { p.load(fromByteOffset: 8, as: UInt64.self) }
    nonmutating set { p.storeBytes(of: newValue, toByteOffset: 8, as: UInt64.self) }
  }
  @inline(__always) func key(_ i: Int) -> UInt64 { p.load(fromByteOffset: Self.keysOffset + i * 8, as: UInt64.self) }

  /// How many of the first 16 keys are at or below `addr` (all keys, outside an insert): a
  /// branch-free binary search, which relies on the slots past `count` holding `UInt64.max`.
  @inline(__always) func keysAtOrBelow(_ addr: UInt64) -> Int {
    var i = key(7) <= addr ? 8 : 0
    i += key(i + 3) <= addr ? 4 : 0
    i += key(i + 1) <= addr ? 2 : 0
    i += key(i) <= addr ? 1 : 0
    // Seventeen answers (0 through 16) take a fifth comparison.
    i += key(i) <= addr ? 1 : 0
    return i
  }

  /// Drops the entries from `newCount` on, keeping unused key slots at `UInt64.max`.
  func truncate(_ newCount: Int) {
    for j in newCount..<count { p.storeBytes(of: UInt64.max, toByteOffset: Self.keysOffset + j * 8, as: UInt64.self) }
    count = newCount
  }
  @inline(__always) func start(_ i: Int) -> UInt64 { p.load(fromByteOffset: Self.startsOffset + i * 8, as: UInt64.self) }
  @inline(__always) func ptr(_ i: Int) -> UnsafeMutableRawPointer {
    p.load(fromByteOffset: Self.ptrsOffset + i * 8, as: UnsafeMutableRawPointer.self)
  }

  @inline(__always) func gap(_ i: Int) -> UInt64 { p.load(fromByteOffset: Self.gapsOffset + i * 8, as: UInt64.self) }

  func entry(_ i: Int) -> VMATree.Entry { VMATree.Entry(key: key(i), start: start(i), ptr: ptr(i), gap: gap(i)) }

  func set(_ i: Int, _ e: VMATree.Entry) {
    p.storeBytes(of: e.key, toByteOffset: Self.keysOffset + i * 8, as: UInt64.self)
    p.storeBytes(of: e.start, toByteOffset: Self.startsOffset + i * 8, as: UInt64.self)
    p.storeBytes(of: e.ptr, toByteOffset: Self.ptrsOffset + i * 8, as: UnsafeMutableRawPointer.self)
    p.storeBytes(of: e.gap, toByteOffset: Self.gapsOffset + i * 8, as: UInt64.self)
  }

  func append(_ e: VMATree.Entry) {
    set(count, e)
    count += 1
  }

  func insert(_ e: VMATree.Entry, at i: Int) {
    var j = count
    while j > i {
      set(j, entry(j - 1))
      j -= 1
    }
    set(i, e)
    count += 1
  }

  func remove(at i: Int) {
    for j in i..<(count - 1) { set(j, entry(j + 1)) }
    truncate(count - 1)
  }

  /// This node as an entry of its parent: first start, last end, largest gap inside.
  var summary: VMATree.Entry {
    var largest = gap(0)
    var i = 1
    while i < count {
      largest = max(largest, gap(i), start(i) - key(i - 1))
      i += 1
    }
    return VMATree.Entry(key: key(count - 1), start: start(0), ptr: p, gap: largest)
  }
}
