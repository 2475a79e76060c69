/// `msync(2)` (`ksys_msync`), and the writeback of shared file mappings.
///
/// `MS_SYNC` writes the range's dirty pages back through `Inode.writeback(from:to:sync:)` (which write-protects
/// every mapping of them and waits for stores in flight first) and syncs the file. `MS_ASYNC` does nothing more than Linux does since 2.6.19 (the pages are
/// already dirty in the page cache). `MS_INVALIDATE` only checks for locked memory (`EBUSY`).
extension AddressSpace {
  package func msync(_ addr: UInt64, _ length: UInt64, flags: MsyncFlags) throws(Errno) {
    if !flags.subtracting([.async, .invalidate, .sync]).isEmpty { throw Errno.invalidArgument }
    if !Page.isAligned(addr) { throw Errno.invalidArgument }
    if flags.isSuperset(of: [.async, .sync]) { throw Errno.invalidArgument }
    // PAGE_ALIGN wraps: a length within a page of 2^64 aligns to 0, an empty range (not an
    // error, as in ksys_msync).
    let len = Page.roundUp(length)
    let end = addr &+ len
    if end < addr { throw Errno.noMemory }
    if end == addr { return }
    var toSync: [(file: OpenFile, start: UInt64, end: UInt64, from: UInt64, to: UInt64)] = []
    var unmapped: Errno?
    mmapLock.readLock()
    var start = addr
    var v = tree.find(start)?.takeUnretainedValue()
    var failure: Errno?
    while true {
      guard let vma = v else {
        failure = .noMemory
        break
      }
      if start < vma.start {
        unmapped = .noMemory
        start = vma.start
        if start >= end { break }
      }
      if flags.contains(.invalidate) && vma.flags.contains(.locked) {
        failure = .resourceBusy
        break
      }
      let stop = min(vma.end, end)
      if flags.contains(.sync), let file = vma.file, vma.flags.contains(.shared) {
        file.fget()
        toSync.append((file, start, stop, vma.pageIndex(start), vma.pageIndex(stop)))
      }
      start = vma.end
      if start >= end { break }
      v = tree.find(start)?.takeUnretainedValue()
    }
    mmapLock.readUnlock()
    defer { for item in toSync { item.file.fput() } }
    for item in toSync {
      do {
        try item.file.inode.writeback(from: item.from, to: item.to, sync: true)
      } catch {
        throw Errno.ioError
      }
    }
    if let failure { throw failure }
    if let unmapped { throw unmapped }
  }
}
