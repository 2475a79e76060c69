import Synchronization

/// The index of a page cache as an RCU radix tree (the role of Linux's xarray,
/// `lib/xarray.c`): 64-way nodes in raw memory, a lookup that takes no lock, and tags.
///
/// `PageCache` keeps its pages here: faults look them up with no lock (`getPage`), and every
/// change happens under the cache's lock.
///
/// - Readers walk inside an RCU read section with acquire loads only (`xa_load`). A slot at the
///   bottom level holds a frame number plus one (0: empty); a slot above holds a child node's
///   address. The root word holds the top node's address with the tree's height in its low bits
///   (nodes are 64-byte aligned), so a reader reads both at once.
/// - Writers (`insert`, `remove`, the tag calls) hold the owner's lock (the inode's, as
///   `i_pages`' lock): one writer at a time. A node emptied by a removal is unlinked at once and
///   queued; `flushRetired()`, called by the writer after it drops its lock, frees the queue
///   after a grace period (`callRCU`), so a reader that still holds a node's address reads zeros
///   or the old slots, never freed memory. (The flush waits until the lock is dropped because a
///   full `callRCU` batch runs other callbacks on the calling thread, which must not hold a
///   Files lock then.) The tree grows upwards (a new root over the old) and
///   never shrinks its height while it has entries.
/// - `getPage` is `filemap_get_entry`: after the lookup it takes a reference only if the page's
///   count is not zero (`folio_try_get`), then re-reads the slot; a page freed and reused
///   meanwhile is put back and the lookup retried.
/// - Tags (`Tag`: dirty, writeback, towrite, as xarray marks) are a bitmap per node and tag,
///   set in every node on the path, so `nextTagged` skips untagged subtrees.
///
/// Guards: the owner's lock guards every write; readers need only RCU.
package struct PageCacheTree: @unchecked Sendable {
  /// Bits of the index each level consumes (`XA_CHUNK_SHIFT`).
  static let shift = 6
  static let fanout = 1 << shift
  /// Node layout, in 8-byte words: 64 slots, three tag bitmaps, the count of used slots.
  static let tagWords = 64
  static let countWord = 67
  static let nodeWords = 68
  /// Tags a page can carry (xarray marks).
  package enum Tag: Int, CaseIterable, Sendable {
    case dirty, writeback, towrite
  }

  /// The root word: the top node's address | height (levels, 1...11), or 0 when empty.
  let root: UnsafeMutablePointer<Atomic<UInt>>
  /// Nodes in the tree (writer-only; for tests and accounting).
  let nodes: UnsafeMutablePointer<Int>
  let rcu: RCUDomain
  /// Nodes unlinked and not yet queued for freeing (writer-only).
  let retired: UnsafeMutablePointer<[UInt]>

  /// An empty tree whose freed nodes wait for grace periods of `rcu`. Free it with `destroy`.
  package init(rcu: RCUDomain) {
    root = .allocate(capacity: 1)
    root.initialize(to: Atomic(0))
    nodes = .allocate(capacity: 1)
    nodes.initialize(to: 0)
    retired = .allocate(capacity: 1)
    retired.initialize(to: [])
    self.rcu = rcu
  }

  /// Frees every node and the tree itself.
  /// - Requires: no reader and no writer left.
  package func destroy() {
    let r = root.pointee.load(ordering: .acquiring)
    if r != 0 { freeSubtree(Self.node(r), height: Self.height(r)) }
    for address in retired.pointee { UnsafeMutableRawPointer(bitPattern: address)!.deallocate() }
    retired.deinitialize(count: 1)
    retired.deallocate()
    root.deinitialize(count: 1)
    root.deallocate()
    nodes.deallocate()
  }

  /// Nodes allocated now.
  package var nodeCount: Int { nodes.pointee }

  @inline(__always) static func node(_ r: UInt) -> UnsafeMutablePointer<Atomic<UInt64>> {
    UnsafeMutablePointer(bitPattern: r & ~UInt(63))!
  }
  @inline(__always) static func height(_ r: UInt) -> Int { Int(r & 63) }
  @inline(__always) static func slotIndex(_ index: UInt64, level: Int) -> Int {
    Int(truncatingIfNeeded: (index >> UInt64(shift * (level - 1))) & UInt64(fanout - 1))
  }
  /// Whether a tree of `height` levels covers `index`.
  @inline(__always) static func covers(_ index: UInt64, height: Int) -> Bool {
    height * shift >= 64 || index >> UInt64(height * shift) == 0
  }

  // MARK: Readers

  /// `xa_load`: the frame stored at `index` plus one, or 0. Takes no lock.
  /// - Requires: an RCU read section (or the owner's lock).
  @inline(__always)
  package func lookup(_ index: UInt64) -> UInt64 {
    guard let slot = leafSlot(index) else { return 0 }
    return slot.pointee.load(ordering: .acquiring)
  }

  /// The bottom-level slot that holds (or would hold) `index`, or `nil` when no node covers it
  /// (`xas_load`'s walk). The slot stays readable for the read section: a node is unlinked only
  /// once empty, so a slot read again after its node left the tree reads 0.
  /// - Requires: an RCU read section (or the owner's lock).
  @inline(__always)
  func leafSlot(_ index: UInt64) -> UnsafeMutablePointer<Atomic<UInt64>>? {
    let r = root.pointee.load(ordering: .acquiring)
    if r == 0 { return nil }
    var level = Self.height(r)
    if !Self.covers(index, height: level) { return nil }
    var n = Self.node(r)
    while level > 1 {
      let child = n[Self.slotIndex(index, level: level)].load(ordering: .acquiring)
      if child == 0 { return nil }
      n = UnsafeMutablePointer(bitPattern: UInt(child))!
      level -= 1
    }
    return n + Self.slotIndex(index, level: 1)
  }

  /// `filemap_get_entry`: the page at `index` with a reference taken for the caller, or `nil`.
  /// A page whose count already reached zero is being freed (or frozen by `invalidate`): it is
  /// not taken, and the lookup starts over. After taking the reference the slot is read again
  /// (`xas_reload`); a page no longer there (removed, maybe reused) is put back and the lookup
  /// starts over.
  /// - Requires: an RCU read section (entered by the caller, as `find_get_page` does).
  @inline(__always)
  func getPage(_ index: UInt64, frames: FrameAllocator) -> PFN? {
    while true {
      guard let slot = leafSlot(index) else { return nil }
      let v = slot.pointee.load(ordering: .acquiring)
      if v == 0 { return nil }
      let pfn = PFN(UInt32(truncatingIfNeeded: v - 1))
      if !frames.meta(pfn).tryGet() { continue }
      if slot.pointee.load(ordering: .acquiring) == v { return pfn }
      frames.put(pfn)
    }
  }

  // MARK: Writers

  /// Stores `pfn` at `index`; `false` (nothing changed) when the slot is taken.
  /// - Requires: the owner's lock.
  @discardableResult
  package func insert(_ index: UInt64, _ pfn: PFN) -> Bool {
    var r = root.pointee.load(ordering: .relaxed)
    if r == 0 {
      r = UInt(bitPattern: allocateNode()) | 1
      root.pointee.store(r, ordering: .releasing)
    }
    // Grow: a new top node whose slot 0 is the old one, until the index is covered.
    while !Self.covers(index, height: Self.height(r)) {
      let top = allocateNode()
      top[0].store(UInt64(UInt(bitPattern: Self.node(r))), ordering: .relaxed)
      top[Self.countWord].store(1, ordering: .relaxed)
      for t in 0..<Tag.allCases.count where Self.anyTag(Self.node(r), t) {
        top[Self.tagWords + t].store(1, ordering: .relaxed)
      }
      r = UInt(bitPattern: top) | UInt(Self.height(r) + 1)
      root.pointee.store(r, ordering: .releasing)
    }
    var n = Self.node(r)
    var level = Self.height(r)
    while level > 1 {
      let s = Self.slotIndex(index, level: level)
      var child = n[s].load(ordering: .relaxed)
      if child == 0 {
        let fresh = allocateNode()
        child = UInt64(UInt(bitPattern: fresh))
        // Release: a reader that finds the node finds it zeroed.
        n[s].store(child, ordering: .releasing)
        n[Self.countWord].wrappingAdd(1, ordering: .relaxed)
      }
      n = UnsafeMutablePointer(bitPattern: UInt(child))!
      level -= 1
    }
    let s = Self.slotIndex(index, level: 1)
    if n[s].load(ordering: .relaxed) != 0 { return false }
    n[s].store(UInt64(pfn.raw) + 1, ordering: .releasing)
    n[Self.countWord].wrappingAdd(1, ordering: .relaxed)
    return true
  }

  /// Empties the slot at `index` and returns what it held, or `nil`. Nodes left empty are
  /// unlinked and freed after a grace period; their tags go with them.
  /// - Requires: the owner's lock.
  @discardableResult
  package func remove(_ index: UInt64) -> PFN? {
    guard var path = pathTo(index) else { return nil }
    let (n, s) = path.removeLast()
    let old = n[s].load(ordering: .relaxed)
    n[s].store(0, ordering: .releasing)
    for t in 0..<Tag.allCases.count { Self.clearBit(n, t, s) }
    n[Self.countWord].wrappingSubtract(1, ordering: .relaxed)
    // Unlink empty nodes bottom-up; fix the tags of the path above what stays.
    var child = n
    var emptied = n[Self.countWord].load(ordering: .relaxed) == 0
    for (parent, slot) in path.reversed() {
      if emptied {
        parent[slot].store(0, ordering: .releasing)
        parent[Self.countWord].wrappingSubtract(1, ordering: .relaxed)
        for t in 0..<Tag.allCases.count { Self.clearBit(parent, t, slot) }
        retire(child)
      } else {
        for t in 0..<Tag.allCases.count where !Self.anyTag(child, t) { Self.clearBit(parent, t, slot) }
      }
      emptied = parent[Self.countWord].load(ordering: .relaxed) == 0
      child = parent
    }
    if emptied {
      root.pointee.store(0, ordering: .releasing)
      retire(child)
    }
    return PFN(UInt32(truncatingIfNeeded: old - 1))
  }

  /// Sets `tag` on the entry at `index` (`xa_set_mark`) and on every node above it; `false`
  /// when there is none. Builds no path: it walks down twice (a lookup, then the marking).
  /// - Requires: the owner's lock.
  @discardableResult
  package func setTag(_ index: UInt64, _ tag: Tag) -> Bool {
    if lookup(index) == 0 { return false }
    let r = root.pointee.load(ordering: .relaxed)
    var n = Self.node(r)
    var level = Self.height(r)
    while true {
      let s = Self.slotIndex(index, level: level)
      Self.setBit(n, tag.rawValue, s)
      if level == 1 { return true }
      n = UnsafeMutablePointer(bitPattern: UInt(n[s].load(ordering: .relaxed)))!
      level -= 1
    }
  }

  /// Clears `tag` on the entry at `index` (`xa_clear_mark`), and on the nodes above where no
  /// other entry below carries it.
  /// - Requires: the owner's lock.
  package func clearTag(_ index: UInt64, _ tag: Tag) {
    guard let path = pathTo(index) else { return }
    for (n, s) in path.reversed() {
      Self.clearBit(n, tag.rawValue, s)
      if Self.anyTag(n, tag.rawValue) { return }
    }
  }

  /// Whether the entry at `index` carries `tag` (`xa_get_mark`).
  /// - Requires: the owner's lock (or an RCU read section, for a racy answer).
  package func hasTag(_ index: UInt64, _ tag: Tag) -> Bool {
    let r = root.pointee.load(ordering: .acquiring)
    if r == 0 || !Self.covers(index, height: Self.height(r)) { return false }
    var n = Self.node(r)
    var level = Self.height(r)
    while level > 1 {
      let child = n[Self.slotIndex(index, level: level)].load(ordering: .acquiring)
      if child == 0 { return false }
      n = UnsafeMutablePointer(bitPattern: UInt(child))!
      level -= 1
    }
    let s = Self.slotIndex(index, level: 1)
    if n[s].load(ordering: .acquiring) == 0 { return false }
    return n[Self.tagWords + tag.rawValue].load(ordering: .relaxed) & (1 << UInt64(s)) != 0
  }

  /// The first index at or after `start` whose entry carries `tag` (`xa_find` with a mark),
  /// skipping untagged subtrees whole; `nil` when there is none.
  /// - Requires: the owner's lock.
  package func nextTagged(from start: UInt64, _ tag: Tag) -> UInt64? {
    let r = root.pointee.load(ordering: .relaxed)
    if r == 0 || !Self.covers(start, height: Self.height(r)) { return nil }
    return Self.findTagged(Self.node(r), level: Self.height(r), base: 0, from: start, tag.rawValue)
  }

  /// The first entry at or after `start` (`xa_find`), skipping empty subtrees; `nil` when
  /// there is none.
  /// - Requires: the owner's lock.
  package func nextEntry(from start: UInt64) -> (index: UInt64, page: PFN)? {
    let r = root.pointee.load(ordering: .relaxed)
    if r == 0 || !Self.covers(start, height: Self.height(r)) { return nil }
    return Self.findEntry(Self.node(r), level: Self.height(r), base: 0, from: start)
  }

  /// Calls `body` with every entry whose index lies in `[from, to)`, in index order.
  /// `body` must not change the tree.
  /// - Requires: the owner's lock.
  package func forEach(from: UInt64, to: UInt64, _ body: (UInt64, PFN) -> Void) {
    var next = from
    while next < to, let (index, page) = nextEntry(from: next), index < to {
      body(index, page)
      if index == .max { return }
      next = index + 1
    }
  }

  static func findEntry(
    _ n: UnsafeMutablePointer<Atomic<UInt64>>, level: Int, base: UInt64, from start: UInt64
  ) -> (index: UInt64, page: PFN)? {
    let span = UInt64(1) << UInt64(min(shift * (level - 1), 63))
    var s = start > base ? Int((start - base) / span) : 0
    while s < fanout {
      let v = n[s].load(ordering: .relaxed)
      if v != 0 {
        let childBase = base &+ UInt64(s) &* span
        if level == 1 { return (childBase, PFN(UInt32(truncatingIfNeeded: v - 1))) }
        let child = UnsafeMutablePointer<Atomic<UInt64>>(bitPattern: UInt(v))!
        if let found = findEntry(child, level: level - 1, base: childBase, from: max(start, childBase)) {
          return found
        }
      }
      s += 1
    }
    return nil
  }

  // MARK: Internals

  /// The nodes and slots from the root down to the entry at `index`, or `nil` when it is empty.
  func pathTo(_ index: UInt64) -> [(UnsafeMutablePointer<Atomic<UInt64>>, Int)]? {
    let r = root.pointee.load(ordering: .relaxed)
    if r == 0 || !Self.covers(index, height: Self.height(r)) { return nil }
    var path: [(UnsafeMutablePointer<Atomic<UInt64>>, Int)] = []
    var n = Self.node(r)
    var level = Self.height(r)
    while level > 1 {
      let s = Self.slotIndex(index, level: level)
      let child = n[s].load(ordering: .relaxed)
      if child == 0 { return nil }
      path.append((n, s))
      n = UnsafeMutablePointer(bitPattern: UInt(child))!
      level -= 1
    }
    let s = Self.slotIndex(index, level: 1)
    if n[s].load(ordering: .relaxed) == 0 { return nil }
    path.append((n, s))
    return path
  }

  static func findTagged(
    _ n: UnsafeMutablePointer<Atomic<UInt64>>, level: Int, base: UInt64, from start: UInt64, _ tag: Int
  ) -> UInt64? {
    let bits = n[tagWords + tag].load(ordering: .relaxed)
    let span = UInt64(1) << UInt64(shift * (level - 1))
    var s = start > base ? Int((start - base) / span) : 0
    while s < fanout {
      if bits & (1 << UInt64(s)) != 0 {
        let childBase = base &+ UInt64(s) &* span
        if level == 1 { return childBase }
        let child = UnsafeMutablePointer<Atomic<UInt64>>(bitPattern: UInt(n[s].load(ordering: .relaxed)))!
        if let found = findTagged(child, level: level - 1, base: childBase, from: max(start, childBase), tag) {
          return found
        }
      }
      s += 1
    }
    return nil
  }

  @inline(__always) static func anyTag(_ n: UnsafeMutablePointer<Atomic<UInt64>>, _ t: Int) -> Bool {
    n[tagWords + t].load(ordering: .relaxed) != 0
  }
  @inline(__always) static func setBit(_ n: UnsafeMutablePointer<Atomic<UInt64>>, _ t: Int, _ s: Int) {
    n[tagWords + t].bitwiseOr(1 << UInt64(s), ordering: .relaxed)
  }
  @inline(__always) static func clearBit(_ n: UnsafeMutablePointer<Atomic<UInt64>>, _ t: Int, _ s: Int) {
    n[tagWords + t].bitwiseAnd(~(1 << UInt64(s)), ordering: .relaxed)
  }

  func allocateNode() -> UnsafeMutablePointer<Atomic<UInt64>> {
    let raw = UnsafeMutableRawPointer.allocate(byteCount: Self.nodeWords * 8, alignment: 64)
    let n = raw.bindMemory(to: Atomic<UInt64>.self, capacity: Self.nodeWords)
    for i in 0..<Self.nodeWords { (n + i).initialize(to: Atomic(0)) }
    nodes.pointee += 1
    return n
  }

  /// Queues an unlinked node for `flushRetired`.
  func retire(_ n: UnsafeMutablePointer<Atomic<UInt64>>) {
    nodes.pointee -= 1
    retired.pointee.append(UInt(bitPattern: n))
  }

  /// Takes the nodes unlinked so far off the queue (under the owner's lock); free them with
  /// `freeAfterGracePeriod` once the lock is dropped.
  /// - Requires: the owner's lock.
  package func takeRetired() -> [UInt] {
    if retired.pointee.isEmpty { return [] }
    let taken = retired.pointee
    retired.pointee = []
    return taken
  }

  /// Frees nodes taken by `takeRetired` after a grace period (`kfree_rcu`).
  /// - Requires: no Files lock held, and not inside an RCU read section.
  package func freeAfterGracePeriod(_ nodes: [UInt]) {
    if nodes.isEmpty { return }
    rcu.callRCU(cost: nodes.count) {
      for address in nodes { UnsafeMutableRawPointer(bitPattern: address)!.deallocate() }
    }
  }

  /// `takeRetired` then `freeAfterGracePeriod`, for a writer with no lock around it (tests).
  package func flushRetired() { freeAfterGracePeriod(takeRetired()) }

  func freeSubtree(_ n: UnsafeMutablePointer<Atomic<UInt64>>, height: Int) {
    if height > 1 {
      for s in 0..<Self.fanout {
        let child = n[s].load(ordering: .relaxed)
        if child != 0 { freeSubtree(UnsafeMutablePointer(bitPattern: UInt(child))!, height: height - 1) }
      }
    }
    nodes.pointee -= 1
    UnsafeMutableRawPointer(n).deallocate()
  }
}
