@testable import Faultline
import FaultlineTestSupport
import Synchronization
import Testing

/// The RCU radix tree behind a page cache (issue 15, first step): entries at sparse indexes,
/// growth and shrinking, tags, and lock-free lookups racing inserts and removals.
@Suite struct PageCacheTreeTests {
  @Test func entriesAtSparseIndexesAndNodesFreedWhenEmpty() throws {
    let machine = try Machine(memoryBytes: 16 << 20, profile: .reference)
    let tree = PageCacheTree(rcu: machine.rcu)
    defer { tree.destroy() }
    let indexes: [UInt64] = [0, 1, 63, 64, 4095, 4096, 1 << 30, (1 << 52) + 7, UInt64.max]
    for (i, index) in indexes.enumerated() { #expect(tree.insert(index, PFN(UInt32(100 + i)))) }
    #expect(!tree.insert(63, PFN(5)), "a taken slot stays as it is")
    for (i, index) in indexes.enumerated() { #expect(tree.lookup(index) == UInt64(101 + i)) }
    for missing: UInt64 in [2, 62, 65, 4097, (1 << 30) + 1, 1 << 40] { #expect(tree.lookup(missing) == 0) }
    #expect(tree.nodeCount > 11)
    for (i, index) in indexes.enumerated().reversed() { #expect(tree.remove(index) == PFN(UInt32(100 + i))) }
    #expect(tree.remove(0) == nil)
    #expect(tree.nodeCount == 0)
    #expect(tree.lookup(0) == 0)
    machine.rcu.barrier()
  }

  @Test func tagsFollowEntriesAndNextTaggedSkipsTheRest() throws {
    let machine = try Machine(memoryBytes: 16 << 20, profile: .reference)
    let tree = PageCacheTree(rcu: machine.rcu)
    defer { tree.destroy() }
    for index in stride(from: UInt64(0), to: 20000, by: 7) { tree.insert(index, PFN(UInt32(index & 0xFFFF) + 1)) }
    let dirty: [UInt64] = [7, 700, 7000, 14000, 19999]
    for index in dirty { #expect(tree.setTag(index, .dirty)) }
    #expect(!tree.setTag(8, .dirty), "no entry, no tag")
    var found: [UInt64] = []
    var next = tree.nextTagged(from: 0, .dirty)
    while let index = next {
      found.append(index)
      next = tree.nextTagged(from: index + 1, .dirty)
    }
    #expect(found == dirty.sorted())
    #expect(tree.nextTagged(from: 0, .writeback) == nil)
    tree.clearTag(700, .dirty)
    #expect(!tree.hasTag(700, .dirty) && tree.hasTag(7, .dirty))
    #expect(tree.nextTagged(from: 8, .dirty) == 7000)
    // Removing a tagged entry takes its tag.
    tree.remove(7000)
    #expect(tree.nextTagged(from: 8, .dirty) == 14000)
    // Growth keeps tags: an entry far above makes a new root over the tagged subtree.
    tree.insert(1 << 40, PFN(9))
    #expect(tree.nextTagged(from: 0, .dirty) == 7)
    for index in stride(from: UInt64(0), to: 20000, by: 7) { tree.remove(index) }
    tree.remove(1 << 40)
    #expect(tree.nodeCount == 0)
    machine.rcu.barrier()
  }

  /// Readers look pages up under RCU alone while a writer inserts and removes them (each
  /// removed frame is put at once, so it may be freed and reused for another index): a page a
  /// reader gets is the one at that index (its metadata says so) and referenced while held;
  /// frames return to their baseline.
  @Test func lookupsUnderRCURacingInsertAndRemoveNeverReturnAFreedPage() throws {
    let machine = try Machine(memoryBytes: 16 << 20, profile: .reference)
    let frames = machine.memory.frames
    let baseline = machine.memory.framesInUse
    let tree = PageCacheTree(rcu: machine.rcu)
    let lock = PThreadMutex()
    let indexes: UInt64 = 512
    nonisolated(unsafe) let done = UnsafeMutablePointer<Atomic<Bool>>.allocate(capacity: 1)
    done.initialize(to: Atomic(false))
    let wrong = Atomic<Int>(0)
    let hits = Atomic<Int>(0)
    runThreads(3) { t in
      if t == 0 {
        var rng = SplitMix64(seed: 15)
        for _ in 0..<40000 {
          let index = (rng.next() % indexes) * 97
          lock.lock()
          if let old = tree.remove(index) {
            lock.unlock()
            frames.put(old)
          } else if let page = frames.allocate(flags: .uptodate) {
            frames.meta(page).index = index
            if !tree.insert(index, page) { frames.put(page) }
            lock.unlock()
          } else {
            lock.unlock()
          }
        }
        done.pointee.store(true, ordering: .releasing)
      } else {
        guard let reader = try? machine.rcu.register() else { return }
        var rng = SplitMix64(seed: 100 + UInt64(t))
        while !done.pointee.load(ordering: .acquiring) {
          let index = (rng.next() % indexes) * 97
          reader.readLock()
          let page = tree.getPage(index, frames: frames)
          reader.readUnlock()
          guard let page else { continue }
          let m = frames.meta(page)
          if m.index != index || m.refcount == 0 || m.flags.contains(.free) { wrong.wrappingAdd(1, ordering: .relaxed) }
          hits.wrappingAdd(1, ordering: .relaxed)
          frames.put(page)
        }
      }
    }
    #expect(wrong.load(ordering: .relaxed) == 0)
    #expect(hits.load(ordering: .relaxed) > 0)
    var index: UInt64 = 0
    while index < indexes * 97 {
      if let old = tree.remove(index) { frames.put(old) }
      index += 97
    }
    #expect(tree.nodeCount == 0)
    tree.destroy()
    done.deallocate()
    machine.rcu.barrier()
    #expect(machine.memory.framesInUse == baseline)
  }
}
