/// `/proc/self/maps` (`show_map_vma`).
extension AddressSpace {
  /// The maps text: one line per VMA, in address order, byte-for-byte in Linux's format.
  public func maps() -> String {
    mmapLock.readLock()
    defer { mmapLock.readUnlock() }
    var out = ""
    tree.forEachPublished { out += mapsLine($0) + "\n" }
    return out
  }

  /// The maps lines as an array (tests compare these).
  public func mapsLines() -> [String] {
    maps().split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
  }

  func mapsLine(_ v: VMA) -> String {
    var offset: UInt64 = 0
    var dev = "00:00"
    var inode: UInt64 = 0
    var name: String?
    if let file = v.file {
      offset = v.pgoff << Page.shift
      let d = file.inode.fs.device
      dev = hex2(UInt64(d.major)) + ":" + hex2(UInt64(d.minor))
      inode = file.inode.ino
      name = file.path
    } else if let shmem = v.shmem {
      offset = v.pgoff << Page.shift
      dev = shmem.hugetlb?.size.mapsDevice ?? "00:01"
      inode = shmem.inode
      name = shmem.hugetlb == nil ? shmem.name + " (deleted)" : "/anon_hugepage (deleted)"
    } else if v.start <= brkValue && v.end >= startBrk {
      name = "[heap]"
    }
    var line = "\(hex8(v.start))-\(hex8(v.end)) \(v.flags.permissionString) \(hex8(offset)) \(dev) \(inode) "
    if let name {
      // seq_pad: the name starts in column 74 (after a pad to 72 and one space).
      let width = 25 + 8 * 6 - 1
      if line.utf8.count < width { line += String(repeating: " ", count: width - line.utf8.count) }
      line += " " + name
    }
    return line
  }
}

/// At least two lower-case hex digits (`%02x`).
func hex2(_ v: UInt64) -> String {
  let s = String(v, radix: 16)
  return s.count >= 2 ? s : "0" + s
}

/// At least eight lower-case hex digits, as `seq_put_hex_ll(m, …, 8)` prints them.
func hex8(_ v: UInt64) -> String {
  let s = String(v, radix: 16)
  return s.count >= 8 ? s : String(repeating: "0", count: 8 - s.count) + s
}
