@testable import Faultline
import FaultlineTestSupport
import Glibc
import Synchronization
import Testing

/// The lockless page-cache lookup under fire (issue 15): readers look pages up under RCU alone
/// (`PageCache.findRCU`, `filemap_get_entry`) and fill misses (`findOrRead`) while other threads
/// truncate, punch holes, invalidate, dirty and write back, and store new versions of pages in
/// the backing store, all on one HostFS file (a store where `invalidate` really drops pages).
///
/// Contents: the first word of page `i` is `version << 32 | (i + 1)`, written only through the
/// backing store (the initial host file, then `FileSystem.writePage` under the inode's
/// `sizeLock`, as writeback writes), never into a cached page, so a reader can read it while
/// other threads run; `latest[i]` is bumped before each store. A page wholly truncated or punched
/// reads as zeros, so a zero word is valid only where a hole was made (`holed`, set before).
///
/// Invariant, for every page a lookup returns (checked before the reference is put): it is
/// referenced, not free, its `FrameMeta.index` is the index looked up, and its first word names
/// that index and a version stored there. A freed frame, or one reused for another index, fails.
/// After the join and a truncate to 0 and an RCU barrier: no page, no tree node, and the frames
/// in use are back at their baseline.
@Suite struct PageCacheStressTests {
  static let pages: UInt64 = 64  // one bit each in `State.holed`
  static let readers = 3
  static let mutators = 3
  /// Truncate/punch rounds at least; the invalidator runs at least 4 times as many, the dirtier
  /// 6 times. Each mutator goes on until all have done their minimum, so that they overlap.
  static let rounds = 100
  /// Truncate cuts only into `[truncateFloor, pages)` and holes are punched only in
  /// `punchRange`: elsewhere a page is never a hole, and a page of zeros there is a failure.
  static let truncateFloor: UInt64 = 48
  static let punchRange: Range<UInt64> = 16..<32

  /// What the threads share. Workers only count and record; the checks run after the join.
  final class State: @unchecked Sendable {
    let memory: PhysicalMemory
    let cache: PageCache
    /// Per page: the newest version stored in the backing store (1: the initial file).
    let latest: UnsafeMutablePointer<Atomic<UInt64>>
    /// Bit `i`: page `i` has been truncated away or punched out at least once (reads zeros).
    let holed = Atomic<UInt64>(0)
    /// Threads at the start line; mutators past their minimum rounds; mutators finished.
    let started = Atomic<Int>(0)
    let mutatorsAtMinimum = Atomic<Int>(0)
    let mutatorsDone = Atomic<Int>(0)
    let log = ViolationLog()
    let hits = Atomic<Int>(0)
    let fills = Atomic<Int>(0)
    let errors = Atomic<Int>(0)
    let invalidated = Atomic<Int>(0)
    let truncates = Atomic<Int>(0)
    let punches = Atomic<Int>(0)
    let dirtied = Atomic<Int>(0)
    let writtenBack = Atomic<Int>(0)
    let versions = Atomic<Int>(0)

    init(memory: PhysicalMemory, cache: PageCache) {
      self.memory = memory
      self.cache = cache
      latest = .allocate(capacity: Int(pages))
      for i in 0..<Int(pages) { (latest + i).initialize(to: Atomic(1)) }
    }

    deinit { latest.deallocate() }

    static func word(index: UInt64, version: UInt64) -> UInt64 { version << 32 | (index + 1) }

    /// Checks the invariant on `page`, returned for `index` with a reference the caller holds.
    func check(_ page: PFN, at index: UInt64, by what: String) {
      let m = memory.meta(page)
      let refcount = m.refcount
      let flags = m.flags
      let metaIndex = m.index
      // An atomic load: under TSan it must be ordered after the fill that wrote the word.
      let word = memory.frames.words(of: page)[0].load(ordering: .relaxed)
      let version = word >> 32
      let contentOK: Bool
      if word == 0 {
        contentOK = holed.load(ordering: .acquiring) & (1 << index) != 0
      } else {
        contentOK = word & 0xFFFF_FFFF == index + 1 && version >= 1 && version <= latest[Int(index)].load(ordering: .acquiring)
      }
      if refcount == 0 || flags.contains(.free) || metaIndex != index || !contentOK {
        log.fail(
          "\(what) of index \(index): pfn \(page.raw) refcount \(refcount) flags \(flags.rawValue) meta index \(metaIndex) "
            + "word 0x\(String(word, radix: 16)) (latest \(latest[Int(index)].load(ordering: .relaxed)))")
      }
    }
  }

  @Test func lookupsUnderRCURacingFillTruncatePunchInvalidateAndWritebackReturnOnlyLivePages() throws {
    let machine = try Machine(memoryBytes: 16 << 20, profile: .reference)
    let memory = machine.memory
    let baseline = memory.framesInUse
    let pages = Self.pages
    try withTempDirectory { dir in
      var initial = [UInt8](repeating: 0, count: Int(pages) * Page.byteCount)
      for i in 0..<pages {
        withUnsafeBytes(of: State.word(index: i, version: 1).littleEndian) { w in
          for b in 0..<8 { initial[Int(i) * Page.byteCount + b] = w[b] }
        }
      }
      try hostWrite(dir + "/s", initial)
      let fs = try HostFS(root: dir, machine: machine)
      try withExtendedLifetime(fs) {
        let inode = try fs.lookup("/s")
        let cache = inode.pageCache
        #expect(!cache.backedByCache)
        let state = State(memory: memory, cache: cache)
        runThreads(Self.readers + Self.mutators) { t in
          let reader = try? machine.rcu.register()
          let frameCache = memory.makeCache()
          defer { memory.unregister(frameCache) }
          // Everyone starts together, so that no thread runs its share before the others start.
          state.started.wrappingAdd(1, ordering: .relaxed)
          while state.started.load(ordering: .relaxed) < Self.readers + Self.mutators { sched_yield() }
          guard let reader else {
            state.errors.wrappingAdd(1, ordering: .relaxed)
            if t >= Self.readers {
              state.mutatorsAtMinimum.wrappingAdd(1, ordering: .releasing)
              state.mutatorsDone.wrappingAdd(1, ordering: .releasing)
            }
            return
          }
          var rng = SplitMix64(seed: 0x15_0000 + UInt64(t))
          switch t {
          case 0..<Self.readers:
            Self.read(state, reader: reader, frameCache: frameCache, rng: &rng)
          case Self.readers:
            Self.truncateAndPunch(state, inode: inode, rng: &rng)
          case Self.readers + 1:
            Self.invalidate(state, rng: &rng)
          default:
            Self.dirtyWriteBackAndStore(state, inode: inode, reader: reader, rng: &rng)
          }
          if t >= Self.readers { state.mutatorsDone.wrappingAdd(1, ordering: .releasing) }
        }

        #expect(state.log.violations == 0, "\(state.log.firstViolation)")
        #expect(state.errors.load(ordering: .relaxed) == 0)
        // The race was run: every kind of operation happened, and lookups both hit and filled.
        #expect(state.hits.load(ordering: .relaxed) > 0)
        #expect(state.fills.load(ordering: .relaxed) > 0)
        #expect(state.invalidated.load(ordering: .relaxed) > 0)
        #expect(state.truncates.load(ordering: .relaxed) > 0)
        #expect(state.punches.load(ordering: .relaxed) > 0)
        #expect(state.dirtied.load(ordering: .relaxed) > 0)
        #expect(state.writtenBack.load(ordering: .relaxed) > 0)
        #expect(state.versions.load(ordering: .relaxed) > 0)

        try inode.truncate(to: 0)
        #expect(cache.residentPages == 0)
        #expect(cache.dirtyCount == 0)
        machine.drainDeferredFrees()
        #expect(cache.treeNodes == 0)
        #expect(try hostRead(dir + "/s").count == 0)
      }
    }
    machine.drainDeferredFrees()
    #expect(memory.framesInUse == baseline, "frames leaked")
  }

  /// A reader: lockless lookups of random pages until the mutators finish; a miss is filled
  /// from the backing store (within EOF, as a fault does).
  static func read(_ s: State, reader: RCUReader, frameCache: FrameCache, rng: inout SplitMix64) {
    var lookups = 0
    while s.mutatorsDone.load(ordering: .acquiring) < mutators {
      lookups += 1
      if lookups % 256 == 0 { sched_yield() }
      let index = rng.next() % pages
      if let page = s.cache.findRCU(index, rcu: reader.side) {
        s.check(page, at: index, by: "findRCU")
        s.hits.wrappingAdd(1, ordering: .relaxed)
        s.memory.put(page, cache: frameCache)
        continue
      }
      do throws(Errno) {
        let (page, filled) = try s.cache.findOrRead(index, cache: frameCache, withinEOF: true)
        s.check(page, at: index, by: filled ? "fill" : "findOrRead")
        if filled { s.fills.wrappingAdd(1, ordering: .relaxed) }
        s.memory.put(page, cache: frameCache)
      } catch {
        // Beyond EOF while truncated: expected.
        if error != .noSuchAddressOrDevice { s.errors.wrappingAdd(1, ordering: .relaxed) }
      }
    }
  }

  /// Shrinks the file (to a page boundary or into a page, past its first word) and grows it
  /// back, and punches holes of 1 to 4 pages; marks the pages emptied as holes first.
  static func truncateAndPunch(_ s: State, inode: Inode, rng: inout SplitMix64) {
    mutate(s, minimum: rounds) { round in
      do throws(Errno) {
        if round % 2 == 0 {
          let size = (truncateFloor + rng.next() % (pages - truncateFloor)) * Page.size + (rng.next() % 2) * 512
          s.holed.bitwiseOr(~0 << Page.covering(size), ordering: .releasing)
          try inode.truncate(to: size)
          try inode.truncate(to: pages * Page.size)
          s.truncates.wrappingAdd(1, ordering: .relaxed)
        } else {
          let first = punchRange.lowerBound + rng.next() % UInt64(punchRange.count)
          let last = min(punchRange.upperBound, first + 1 + rng.next() % 4)
          s.holed.bitwiseOr((1 << last &- 1) & ~(1 << first &- 1), ordering: .releasing)
          do throws(Errno) {
            try inode.punchHole(fromPage: first, toPage: last)
          } catch {
            // The host file system may refuse the punch; the cache dropped the pages anyway.
            if error != .notSupported { throw error }  // EOPNOTSUPP
          }
          s.punches.wrappingAdd(1, ordering: .relaxed)
        }
      } catch {
        s.errors.wrappingAdd(1, ordering: .relaxed)
      }
    }
  }

  /// Runs `body(round)` at least `minimum` times, then on until every mutator has done its
  /// minimum.
  static func mutate(_ s: State, minimum: Int, _ body: (Int) -> Void) {
    var round = 0
    while round < minimum || s.mutatorsAtMinimum.load(ordering: .acquiring) < mutators {
      body(round)
      round += 1
      // Hand the CPU over: with fewer CPUs than threads, rounds then interleave with the
      // readers' lookups rather than run a time slice at a time.
      sched_yield()
      if round == minimum { s.mutatorsAtMinimum.wrappingAdd(1, ordering: .releasing) }
    }
  }

  /// Drops the clean, unreferenced pages of a random range, or of the whole file.
  static func invalidate(_ s: State, rng: inout SplitMix64) {
    mutate(s, minimum: rounds * 4) { round in
      let dropped: Int
      if round % 4 == 0 {
        dropped = s.cache.invalidate(from: 0, to: .max)
      } else {
        let first = rng.next() % pages
        dropped = s.cache.invalidate(from: first, to: first + 1 + rng.next() % 16)
      }
      s.invalidated.wrappingAdd(dropped, ordering: .relaxed)
    }
  }

  /// Marks cached pages dirty (found locklessly), writes back ranges and the whole file, and
  /// stores new versions of pages in the backing store within EOF.
  static func dirtyWriteBackAndStore(_ s: State, inode: Inode, reader: RCUReader, rng: inout SplitMix64) {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Page.byteCount, alignment: 8)
    defer { buffer.deallocate() }
    buffer.initializeMemory(as: UInt8.self, repeating: 0)
    mutate(s, minimum: rounds * 6) { round in
      let index = rng.next() % pages
      do throws(Errno) {
        switch round % 3 {
        case 0:
          // A store's `filemap_fault` + `folio_mark_dirty`, the bytes left as they are.
          let page: PFN
          if let found = s.cache.findRCU(index, rcu: reader.side) {
            page = found
            s.check(page, at: index, by: "findRCU (dirtier)")
          } else {
            do throws(Errno) {
              page = try s.cache.findOrRead(index, cache: nil, withinEOF: true).page
            } catch {
              if error != .noSuchAddressOrDevice { throw error }
              return
            }
            s.check(page, at: index, by: "findOrRead (dirtier)")
          }
          if s.cache.markDirty(index, page: page) { s.dirtied.wrappingAdd(1, ordering: .relaxed) }
          s.memory.put(page)
        case 1:
          let n: Int
          if round % 9 == 1 {
            n = try s.cache.writebackAll()
          } else {
            n = try s.cache.writeback(from: index, to: index + 8)
          }
          s.writtenBack.wrappingAdd(n, ordering: .relaxed)
        default:
          // The store writeback makes, for a version no cached page has yet.
          inode.sizeLock.lock()
          defer { inode.sizeLock.unlock() }
          guard (index << Page.shift) + 8 <= inode.size else { return }
          let version = s.latest[Int(index)].wrappingAdd(1, ordering: .releasing).newValue
          buffer.storeBytes(of: State.word(index: index, version: version).littleEndian, as: UInt64.self)
          try inode.fs.writePage(inode, index: index, from: UnsafeRawBufferPointer(buffer), count: 8)
          s.versions.wrappingAdd(1, ordering: .relaxed)
        }
      } catch {
        s.errors.wrappingAdd(1, ordering: .relaxed)
      }
    }
  }
}
