/// `/proc/self/smaps` (`show_smap`): each maps line followed by its memory figures.
///
/// Faultline renders the lines whose values it models: `Size`, `KernelPageSize`, `MMUPageSize`,
/// `Rss`, `Anonymous`, `AnonHugePages` (PMD-mapped transparent huge pages), `Locked`, `ProtectionKey` (only where the machine has protection keys,
/// as Linux prints it only when `arch_pkeys_enabled()`), and `VmFlags`. Deliberately left out:
/// `Pss` and the clean/dirty split, swap and hugetlb lines (no swap, no sharing accounting). A
/// hugetlb VMA has its huge page size as `KernelPageSize` and `MMUPageSize` and no `Rss`, as
/// Linux counts its pages only in the `*_Hugetlb` lines.
extension AddressSpace {
  /// The smaps text of every VMA, in address order.
  public func smaps() -> String {
    mmapLock.readLock()
    defer { mmapLock.readUnlock() }
    var out = ""
    tree.forEachPublished { out += smapsEntry($0) }
    return out
  }

  func smapsEntry(_ v: VMA) -> String {
    var rss: UInt64 = 0
    var anon: UInt64 = 0
    var anonHuge: UInt64 = 0
    let frames = memory.frames
    let hugeKB = v.shmem?.hugetlb?.size.kilobytes
    let hugeSizeKB = TransparentHugePage.size >> 10
    pageTable.forEachPTETable(v.start, v.end, huge: { pmd, _ in
      // smaps_pmd_entry: a huge PMD of an anonymous page is 2 MiB of Rss, Anonymous and
      // AnonHugePages; the huge zero page counts nothing. Never split for a read.
      let e = pmd.pointee.load(ordering: .acquiring)
      // Split since the walk read it (a fault or MADV_DONTNEED under mmap_lock read): walk
      // its table instead (`forEachPTETable` finds nothing left to split).
      if e & PTE.huge == 0 { return false }
      if e & PTE.special == 0 {
        rss += hugeSizeKB
        anon += hugeSizeKB
        anonHuge += hugeSizeKB
      }
      return true
    }) { table, from, to, _ in
      // Hugetlb pages are not Rss.
      if hugeKB != nil { return }
      for i in from..<to {
        let e = PTE(raw: table[i].load(ordering: .acquiring))
        // vm_normal_page: the zero page is not counted; PROT_NONE entries still map their page.
        guard e.mapsFrame, !e.isSpecial else { continue }
        rss += 4
        if frames.meta(e.pfn).flags.contains(.anon) { anon += 4 }
      }
    }
    let flags = v.flags
    var out = mapsLine(v) + "\n"
    out += Self.smapsField("Size", (v.end - v.start) >> 10)
    out += Self.smapsField("KernelPageSize", hugeKB ?? 4)
    out += Self.smapsField("MMUPageSize", hugeKB ?? 4)
    out += Self.smapsField("Rss", rss)
    out += Self.smapsField("Anonymous", anon)
    out += Self.smapsField("AnonHugePages", anonHuge)
    out += Self.smapsField("Locked", flags.contains(.locked) ? rss : 0)
    if pkeysEnabled { out += Self.smapsField("ProtectionKey", UInt64(flags.pkey), unit: false) }
    out += "VmFlags: " + flags.smapsMnemonics.map { $0 + " " }.joined() + "\n"
    return out
  }

  /// One `Name:   value kB` line: the name padded to 16 columns, the value to 8.
  static func smapsField(_ name: String, _ value: UInt64, unit: Bool = true) -> String {
    var line = name + ":"
    if line.count < 16 { line += String(repeating: " ", count: 16 - line.count) }
    let v = String(value)
    if v.count < 8 { line += String(repeating: " ", count: 8 - v.count) }
    return line + v + (unit ? " kB\n" : "\n")
  }
}

extension VMFlags {
  /// `show_smap_vma_flags`: two letters per flag, in bit order. The key bits print nothing
  /// there (they are the `ProtectionKey` line); `VM_DROPPABLE` (bit 40) is `dp`, `VM_SEALED`
  /// (bit 42) `sl`.
  public var smapsMnemonics: [String] {
    let table: [(VMFlags, String)] = [
      (.read, "rd"), (.write, "wr"), (.exec, "ex"), (.shared, "sh"), (.mayRead, "mr"), (.mayWrite, "mw"),
      (.mayExec, "me"), (.mayShare, "ms"), (.growsDown, "gd"), (.pfnMap, "pf"), (.locked, "lo"), (.io, "io"),
      (.seqRead, "sr"), (.randRead, "rr"), (.dontCopy, "dc"), (.dontExpand, "de"), (.lockOnFault, "lf"),
      (.account, "ac"), (.noReserve, "nr"), (.hugeTLB, "ht"), (.sync, "sf"), (.wipeOnFork, "wf"),
      (.dontDump, "dd"), (.softDirty, "sd"), (.mixedMap, "mm"), (.hugePage, "hg"), (.noHugePage, "nh"),
      (.droppable, "dp"), (.sealed, "sl"),
    ]
    return table.filter { contains($0.0) }.map(\.1)
  }
}
