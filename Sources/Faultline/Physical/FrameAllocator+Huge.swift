import Synchronization

/// The order-9 half of `FrameAllocator`: 2 MiB blocks for PMD-mapped transparent huge pages
/// (`alloc_pages(order = HPAGE_PMD_ORDER)`, `prep_compound_page`, `free_compound_page`), and
/// the split of a block into the 4 KiB free stack (`expand`). See `FrameAllocator` for the
/// scheme.
extension FrameAllocator {
  /// Frames in one block (`HPAGE_PMD_NR`).
  static var blockFrames: Int { TransparentHugePage.pages }

  /// The head of the compound page `pfn` belongs to (`compound_head`): `pfn` itself unless it
  /// is a tail, else the 512-frame boundary below it.
  @inline(__always) func compoundHead(_ pfn: PFN) -> PFN {
    meta(pfn).flags.contains(.tail) ? PFN(pfn.raw & ~UInt32(Self.blockFrames - 1)) : pfn
  }

  /// Free 2 MiB blocks.
  var freeBlocks: Int { freeState[1].load(ordering: .relaxed) }

  /// Splits the lowest free block into the empty 4 KiB free stack, lowest frame on top, and
  /// returns the stack's new count (0 when no block is left).
  /// - Requires: `freeLock` held, the free stack empty.
  @inline(never)
  func expandLocked() -> Int {
    let blocks = freeState[1].load(ordering: .relaxed)
    if blocks == 0 { return 0 }
    freeState[1].store(blocks - 1, ordering: .relaxed)
    let head = blockStack[blocks - 1]
    let n = Self.blockFrames
    for i in 0..<n { freeStack[i] = head + UInt32(n - 1 - i) }
    freeState.pointee.store(n, ordering: .relaxed)
    return n
  }

  /// Allocates a 2 MiB-aligned compound page of 512 frames: the head has refcount 1 and
  /// `flags` plus `.head`, the tails `.tail` (and `.anon` when `flags` has it, so that a tail a
  /// split left mapped by a PTE reads as anonymous: `PageAnon` of its folio). With `zeroed`, its 2 MiB are
  /// cleared (`clear_huge_page`). `nil` when no whole block is free (fragmentation or out of
  /// memory): the caller falls back to base pages. Never splits anything and never takes
  /// frames from a `FrameCache`.
  func allocateHuge(flags: PageFlags, zeroed: Bool) -> PFN? {
    freeLock.lock()
    let blocks = freeState[1].load(ordering: .relaxed)
    if blocks == 0 {
      freeLock.unlock()
      return nil
    }
    freeState[1].store(blocks - 1, ordering: .relaxed)
    let head = PFN(blockStack[blocks - 1])
    freeLock.unlock()
    for i in 1..<Self.blockFrames {
      let t = meta(PFN(head.raw + UInt32(i)))
      assert(t.flags.contains(.free), "allocated a huge page over a frame that was not free")
      t.p.pointee.flags.store(PageFlags.tail.union(flags.intersection(.anon)).rawValue, ordering: .relaxed)
      t.p.pointee.mapcount.store(0, ordering: .relaxed)
      t.p.pointee.index.store(0, ordering: .relaxed)
      t.p.pointee.private.store(0, ordering: .relaxed)
      t.p.pointee.lock.store(0, ordering: .relaxed)
    }
    let m = meta(head)
    assert(m.flags.contains(.free), "allocated a huge page whose head was not free")
    m.p.pointee.flags.store(flags.union(.head).rawValue, ordering: .relaxed)
    m.p.pointee.mapcount.store(0, ordering: .relaxed)
    m.p.pointee.index.store(0, ordering: .relaxed)
    m.p.pointee.private.store(0, ordering: .relaxed)
    m.p.pointee.lock.store(0, ordering: .relaxed)
    m.p.pointee.refcount.store(1, ordering: .releasing)
    if zeroed {
      address(of: head).initializeMemory(as: UInt8.self, repeating: 0, count: Self.blockFrames * Page.byteCount)
    }
    return head
  }

  /// Returns the block of the huge page whose head is `head` (refcount and mapcount 0), after
  /// checking that no tail is still mapped: a mapped tail is a bad page, as in `free_tail_page_prepare`.
  func freeHuge(_ head: PFN) {
    for i in 1..<Self.blockFrames {
      let t = meta(PFN(head.raw + UInt32(i)))
      if t.mapcount != 0 || t.refcount != 0 || t.flags.subtracting([.anon, .dirty]) != .tail {
        badPage(PFN(head.raw + UInt32(i)))
      }
      t.p.pointee.flags.store(PageFlags.free.rawValue, ordering: .relaxed)
      t.p.pointee.private.store(0, ordering: .relaxed)
    }
    meta(head).p.pointee.flags.store(PageFlags.free.rawValue, ordering: .relaxed)
    freeLock.lock()
    let blocks = freeState[1].load(ordering: .relaxed)
    blockStack[blocks] = head.raw
    freeState[1].store(blocks + 1, ordering: .relaxed)
    freeLock.unlock()
  }

  // MARK: Folios: a PTE-mapped subpage's references live on its head

  /// The entire mapcount of the huge page `head` (`folio->_entire_mapcount`): the huge PMDs
  /// mapping it whole. Kept in the first tail's owner word, as Linux keeps it in the first tail
  /// page, because the head's own `mapcount` counts the PTEs mapping its first 4 KiB after a
  /// split, as every tail's counts its own.
  @inline(__always) func entireMapcountWord(_ head: PFN) -> UnsafeMutablePointer<Atomic<UInt64>> {
    meta(PFN(head.raw + 1)).privateWord
  }

  /// `folio_entire_mapcount`.
  func entireMapcount(_ head: PFN) -> Int {
    Int(truncatingIfNeeded: entireMapcountWord(head).pointee.load(ordering: .acquiring))
  }

  /// One huge PMD more (`+1`) or fewer (`-1`) maps `head` whole.
  func addEntireMap(_ head: PFN, _ delta: Int) {
    let old = entireMapcountWord(head).pointee.wrappingAdd(UInt64(bitPattern: Int64(delta)), ordering: .relaxed).oldValue
    precondition(Int64(bitPattern: old) + Int64(delta) >= 0, "entire mapcount underflow")
  }

  /// `folio_get` for a frame a page table maps: a reference on its compound head when it is a
  /// tail (a PTE-mapped subpage of a huge page), else on the frame.
  func getFolio(_ pfn: PFN) { meta(compoundHead(pfn)).get() }

  /// `folio_put` for a frame a page table mapped: drops the reference on its compound head when
  /// it is a tail, and frees the whole huge page on the last one. Returns the frames freed (0, 1
  /// or 512).
  @discardableResult
  func putFolio(_ pfn: PFN, cache: FrameCache? = nil) -> Int {
    let head = compoundHead(pfn)
    let m = meta(head)
    guard m.put() else { return 0 }
    if m.flags.contains(.head) {
      freeUnusual(head)
      return Self.blockFrames
    }
    free(head, cache: cache)
    return 1
  }
}
