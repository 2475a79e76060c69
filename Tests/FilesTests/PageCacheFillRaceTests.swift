@testable import Faultline
import FaultlineTestSupport
import Glibc
import Synchronization
import Testing

/// A fill (`PageCache.read`) reads the backing store without the cache lock and inserts
/// afterwards. Whatever removes the page at that index meanwhile must make the fill start
/// again, or the fill inserts bytes older than the store's (issue 15).
///
/// The interleaving, forced with a file system whose first `readPage` parks after reading:
///
///     A: findOrRead(0) misses, reads version 1 ........ parked ......... inserts?
///     B:              findOrRead(0) fills version 1, stores version 2, marks dirty,
///                     writeback (the store holds 2), invalidate drops the page
///
/// Linux inserts the folio locked before reading it (`filemap_add_folio`, then
/// `filemap_read_folio`), so B would find and use A's folio, and invalidate skips a locked one.
@Suite struct PageCacheFillRaceTests {
  /// A one-file file system over one word per page, whose first `readPage` after `parkNext` is
  /// set waits, with the bytes read, until `release` is set.
  final class GatedFS: FileSystem, @unchecked Sendable {
    let name = "gatedfs"
    let speculativeSafe = true
    let backedByCache = false
    let hasPageMkwrite = false
    let device: (major: UInt32, minor: UInt32) = (0, 99)
    /// Page 0's first word in the store.
    let stored = Atomic<UInt64>(1)
    let parkNext = Atomic<Bool>(false)
    let parked = Atomic<Bool>(false)
    let release = Atomic<Bool>(false)
    private(set) var inode: Inode!

    init(memory: PhysicalMemory) {
      inode = Inode(ino: 1, kind: .regular, fs: self, memory: memory, size: Page.size)
    }

    func lookup(_ path: String) throws(Errno) -> Inode { inode }
    func create(_ path: String) throws(Errno) -> Inode { throw .notSupported }
    func mkdir(_ path: String) throws(Errno) -> Inode { throw .notSupported }
    func readPage(_ inode: Inode, index: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) {
      buffer.initializeMemory(as: UInt8.self, repeating: 0)
      if index == 0 { buffer.storeBytes(of: stored.load(ordering: .acquiring), as: UInt64.self) }
      if parkNext.compareExchange(expected: true, desired: false, ordering: .relaxed).exchanged {
        parked.store(true, ordering: .releasing)
        while !release.load(ordering: .acquiring) { sched_yield() }
      }
    }
    func writePage(_ inode: Inode, index: UInt64, from buffer: UnsafeRawBufferPointer, count: Int) throws(Errno) {
      if index == 0 { stored.store(buffer.load(as: UInt64.self), ordering: .releasing) }
    }
    func setSize(_ inode: Inode, _ size: UInt64) throws(Errno) {}
    func sync(_ inode: Inode) throws(Errno) {}
    func permission(_ inode: Inode, write: Bool) throws(Errno) {}
    func syncFileSystem() throws(Errno) {}
  }

  @Test func aFillRacingInvalidateOfAWrittenBackPageNeverCachesTheOlderBytes() throws {
    let machine = try Machine(memoryBytes: 16 << 20, profile: .reference)
    let memory = machine.memory
    let baseline = memory.framesInUse
    let fs = GatedFS(memory: memory)
    let inode = fs.inode!
    let cache = inode.pageCache
    let seenByA = Atomic<UInt64>(0)
    let errors = Atomic<Int>(0)
    let droppedByB = Atomic<Int>(0)
    fs.parkNext.store(true, ordering: .relaxed)
    runThreads(2) { t in
      do throws(Errno) {
        if t == 0 {
          let (page, _) = try cache.findOrRead(0, cache: nil)
          seenByA.store(memory.address(of: page).load(as: UInt64.self), ordering: .relaxed)
          memory.put(page)
        } else {
          while !fs.parked.load(ordering: .acquiring) { sched_yield() }
          let (page, _) = try cache.findOrRead(0, cache: nil)
          memory.address(of: page).storeBytes(of: 2, as: UInt64.self)
          cache.markDirty(0, page: page)
          memory.put(page)
          try cache.writebackAll()
          droppedByB.store(cache.invalidate(from: 0, to: .max), ordering: .relaxed)
          fs.release.store(true, ordering: .releasing)
        }
      } catch {
        errors.wrappingAdd(1, ordering: .relaxed)
        fs.release.store(true, ordering: .releasing)
      }
    }
    #expect(errors.load(ordering: .relaxed) == 0)
    #expect(droppedByB.load(ordering: .relaxed) == 1, "B's page was written back and dropped")
    #expect(fs.stored.load(ordering: .acquiring) == 2)
    // What the cache holds for page 0 now must be what the store holds: version 2.
    let (page, _) = try cache.findOrRead(0, cache: nil)
    #expect(memory.address(of: page).load(as: UInt64.self) == 2, "the cache holds bytes older than the store's")
    memory.put(page)
    #expect(seenByA.load(ordering: .relaxed) == 2, "A's lookup returned bytes older than the store's")

    try inode.truncate(to: 0)
    machine.drainDeferredFrees()
    #expect(memory.framesInUse == baseline)
    withExtendedLifetime(fs) {}
  }
}
