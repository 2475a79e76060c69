import Glibc

/// Reading this machine's profile: the only place the engine looks at the host's settings.
extension MachineProfile {
  /// This machine's profile, read once. A setting that cannot be read keeps `.reference`'s value.
  public static let host: MachineProfile = readHost()

  /// Reads the host's settings now (`host` caches the first reading).
  public static func readHost(root: String = "") -> MachineProfile {
    var p = MachineProfile.reference
    if let info = readText(root + "/proc/cpuinfo") {
      p.protectionKeys = cpuFlags(info).contains("ospke") ? .x86 : .none
      p.taskSizeBits = cpuFlags(info).contains("la57") ? 56 : 47
    }
    if let v = readInt(root + "/proc/sys/vm/mmap_min_addr") { p.mmapMinAddr = UInt64(v) }
    if let v = readInt(root + "/proc/sys/vm/legacy_va_layout") { p.legacyVALayout = v != 0 }
    if let v = readInt(root + "/proc/sys/vm/max_map_count") { p.maxMapCount = v }
    if let v = readInt(root + "/proc/sys/vm/overcommit_memory"), let o = Overcommit(rawValue: v) {
      p.overcommitMemory = o
    }
    let thp = root + "/sys/kernel/mm/transparent_hugepage/"
    if let s = readSelected(thp + "enabled"), let v = THPEnabled(rawValue: s) { p.thpEnabled = v }
    if let s = readSelected(thp + "defrag"), let v = THPDefrag(rawValue: s) { p.thpDefrag = v }
    if let s = readSelected(thp + "shmem_enabled"), let v = ShmemTHP(rawValue: s) { p.shmemTHP = v }
    if let v = readInt(thp + "use_zero_page"), v == 0 || v == 1 { p.thpUseZeroPage = v == 1 }
    // Only the PMD size: Faultline has no smaller (mTHP) sizes. A kernel before 6.8 has no
    // per-size directory, which reads as `inherit`, what those kernels did.
    if let s = readSelected(thp + "hugepages-2048kB/enabled"), let v = THPSizeEnabled(rawValue: s) {
      p.thpPMDEnabled = v
    }
    let huge = root + "/sys/kernel/mm/hugepages/hugepages-2048kB/"
    p.nrHugepages = readInt(huge + "nr_hugepages") ?? 0
    p.nrOvercommitHugepages = readInt(huge + "nr_overcommit_hugepages") ?? 0
    let gigantic = root + "/sys/kernel/mm/hugepages/hugepages-1048576kB/"
    // A machine without 1 GiB pages has no directory for them (where sysfs shows the others).
    if access(root + "/sys/kernel/mm/hugepages", F_OK) == 0 { p.hugePages1G = access(gigantic, F_OK) == 0 }
    p.nrHugepages1G = readInt(gigantic + "nr_hugepages") ?? 0
    p.nrOvercommitHugepages1G = readInt(gigantic + "nr_overcommit_hugepages") ?? 0
    if let info = readText(root + "/proc/meminfo"), let kB = meminfoValue(info, "Hugepagesize"),
      let size = HugePageSize.allCases.first(where: { $0.kilobytes == kB })
    {
      p.defaultHugePageSize = size
    }
    p.ksm = access(root + "/sys/kernel/mm/ksm", F_OK) == 0
    if root.isEmpty, let lsm = probeLSMMinimum(dac: p.mmapMinAddr) { p.lsmMmapMinAddr = lsm }
    return p
  }

  /// The flags of the first processor in `/proc/cpuinfo`.
  static func cpuFlags(_ info: String) -> Set<Substring> {
    for line in info.split(separator: "\n") where line.hasPrefix("flags") {
      guard let colon = line.firstIndex(of: ":") else { continue }
      return Set(line[line.index(after: colon)...].split(separator: " "))
    }
    return []
  }

  /// The number of a `/proc/meminfo` line (`Hugepagesize:    2048 kB` → 2048).
  static func meminfoValue(_ info: String, _ name: String) -> UInt64? {
    for line in info.split(separator: "\n") where line.hasPrefix(name + ":") {
      return line.dropFirst(name.count + 1).split(separator: " ").first.flatMap { UInt64($0) }
    }
    return nil
  }

  /// `CONFIG_LSM_MMAP_MIN_ADDR` cannot be read from user space: a hint-only mmap one page above
  /// `mmap_min_addr` lands at the kernel's effective minimum when that is higher. `nil` when the
  /// probe tells nothing (the hint was taken as given, or the range was in use).
  static func probeLSMMinimum(dac: UInt64) -> UInt64? {
    let hostPage = Int(sysconf(Int32(_SC_PAGESIZE)))
    let hint = max(dac, UInt64(hostPage))
    guard let p = Glibc.mmap(UnsafeMutableRawPointer(bitPattern: UInt(hint)), hostPage, PROT_NONE,
      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else { return nil }
    defer { munmap(p, hostPage) }
    let got = UInt64(UInt(bitPattern: p))
    if got == hint { return 0 }
    // A raised hint lands exactly on the minimum, which is page aligned and small.
    return got > hint && got <= 1 << 20 ? got : nil
  }

  static func readText(_ path: String) -> String? {
    guard let f = fopen(path, "r") else { return nil }
    defer { fclose(f) }
    var out = [UInt8]()
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
      let n = fread(&buf, 1, buf.count, f)
      if n <= 0 { break }
      out.append(contentsOf: buf[0..<n])
    }
    return String(decoding: out, as: UTF8.self)
  }

  static func readInt(_ path: String) -> Int? {
    readText(path).flatMap { Int($0.trimmingCharacters(in: " \n\t")) }
  }

  /// The bracketed choice of a sysfs selector (`always [madvise] never`).
  static func readSelected(_ path: String) -> String? {
    guard let s = readText(path), let open = s.firstIndex(of: "["), let close = s.firstIndex(of: "]"),
      open < close
    else { return nil }
    return String(s[s.index(after: open)..<close])
  }
}

extension String {
  fileprivate func trimmingCharacters(in set: String) -> Substring {
    var s = Substring(self)
    while let c = s.first, set.contains(c) { s = s.dropFirst() }
    while let c = s.last, set.contains(c) { s = s.dropLast() }
    return s
  }
}
