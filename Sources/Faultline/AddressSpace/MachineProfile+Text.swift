/// A profile as text, and profiles by name: what `faultline profile` prints and `--profile FILE`
/// reads back.
///
/// One `key value` per line, in the kernel's own names (sysctl names for `/proc/sys/vm`, the
/// sysfs path below `/sys/kernel/mm` with a dot for the directory); `#` starts a comment, blank
/// lines are ignored:
///
///     protection_keys x86          # none | x86
///     mmap_min_addr 4096
///     transparent_hugepage.enabled madvise
///
/// Keys a text leaves out keep a base profile's values, so a file may name only what it changes.
extension MachineProfile {
  /// Every setting as `key value  # source`, one a line, in a fixed order; `init(text:)` reads it
  /// back to the same profile.
  public var text: String {
    var out = "# Faultline machine profile: one `key value` a line; a key left out keeps the reference value.\n"
    for key in ProfileKey.allCases {
      let line = key.rawValue + " " + key.render(self)
      let pad = max(1, 48 - line.count)
      out += line + String(repeating: " ", count: pad) + "# " + key.source + "\n"
    }
    return out
  }

  /// Reads a profile from `text`: the keys it gives, and `base`'s values for the others.
  ///
  /// - Throws: `ProfileParseError` with the 1-based line of the first line that is not
  ///   `key value`, names an unknown or repeated key, or gives a value the key cannot take.
  public init(text: String, base: MachineProfile = .reference) throws(ProfileParseError) {
    var profile = base
    var seen: [ProfileKey: Int] = [:]
    // "\r\n" is one Character in Swift: a CRLF file splits on it, not on "\n".
    let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
    for (index, raw) in lines.enumerated() {
      let line = index + 1
      let content = raw.prefix { $0 != "#" }
      let words = content.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
      guard let first = words.first else { continue }
      guard let key = ProfileKey(rawValue: String(first)) else {
        throw ProfileParseError(line: line, kind: .unknownKey, message: "unknown key '\(first)'")
      }
      guard words.count == 2 else {
        throw ProfileParseError(
          line: line, kind: .malformed,
          message: words.count == 1 ? "no value for '\(key.rawValue)'" : "more than one value for '\(key.rawValue)'")
      }
      if let earlier = seen[key] {
        throw ProfileParseError(
          line: line, kind: .repeatedKey, message: "'\(key.rawValue)' is already set on line \(earlier)")
      }
      seen[key] = line
      guard key.apply(String(words[1]), to: &profile) else {
        throw ProfileParseError(
          line: line, kind: .badValue, message: "bad value '\(words[1])' for '\(key.rawValue)': \(key.expected)")
      }
    }
    self = profile
  }

  /// The names `named(_:)` knows, in the order help texts list them.
  public static let names = ["host", "reference", "x86-pku"]

  /// `host`, `reference` or `x86-pku`; `nil` for any other name.
  public static func named(_ name: String) -> MachineProfile? {
    switch name {
    case "host": .host
    case "reference": .reference
    case "x86-pku": .x86PKU
    default: nil
    }
  }
}

/// Why a profile text was refused, and on which line.
public struct ProfileParseError: Error, Equatable, Sendable, CustomStringConvertible {
  /// What was wrong with the line.
  public enum Kind: Sendable, Equatable {
    /// A known key with no value, or with more than one.
    case malformed
    /// A key the format does not have.
    case unknownKey
    /// A value the key cannot take (a wrong word, not a number, out of range, unaligned).
    case badValue
    /// A key given a second time.
    case repeatedKey
  }

  /// The 1-based line number.
  public var line: Int
  /// Which check failed.
  public var kind: Kind
  /// What is wrong, without the line number.
  public var message: String

  /// A parse error at `line`.
  public init(line: Int, kind: Kind, message: String) {
    self.line = line
    self.kind = kind
    self.message = message
  }

  /// `line N: message`.
  public var description: String { "line \(line): \(message)" }
}

/// One key of the text format. The order of the cases is the order `text` prints them in.
enum ProfileKey: String, CaseIterable {
  case protectionKeys = "protection_keys"
  case mmapMinAddr = "mmap_min_addr"
  case lsmMmapMinAddr = "lsm_mmap_min_addr"
  case legacyVALayout = "legacy_va_layout"
  case thpEnabled = "transparent_hugepage.enabled"
  case thpDefrag = "transparent_hugepage.defrag"
  case shmemTHP = "transparent_hugepage.shmem_enabled"
  case thpUseZeroPage = "transparent_hugepage.use_zero_page"
  case thpPMDEnabled = "transparent_hugepage.hugepages-2048kB.enabled"
  case nrHugepages = "nr_hugepages"
  case nrOvercommitHugepages = "nr_overcommit_hugepages"
  case hugePages1G = "hugepages-1048576kB"
  case nrHugepages1G = "hugepages-1048576kB.nr_hugepages"
  case nrOvercommitHugepages1G = "hugepages-1048576kB.nr_overcommit_hugepages"
  case defaultHugePageSize = "hugepagesize"
  case maxMapCount = "max_map_count"
  case overcommitMemory = "overcommit_memory"
  case ksm = "ksm"
  case taskSizeBits = "task_size_bits"

  /// Where `MachineProfile.readHost` finds the setting (the comment `text` prints).
  var source: String {
    switch self {
    case .protectionKeys: "/proc/cpuinfo flag ospke: none | x86"
    case .mmapMinAddr: "/proc/sys/vm/mmap_min_addr"
    case .lsmMmapMinAddr: "CONFIG_LSM_MMAP_MIN_ADDR (probed with a hint mmap)"
    case .legacyVALayout: "/proc/sys/vm/legacy_va_layout"
    case .thpEnabled: "/sys/kernel/mm/transparent_hugepage/enabled"
    case .thpDefrag: "/sys/kernel/mm/transparent_hugepage/defrag"
    case .shmemTHP: "/sys/kernel/mm/transparent_hugepage/shmem_enabled"
    case .thpUseZeroPage: "/sys/kernel/mm/transparent_hugepage/use_zero_page"
    case .thpPMDEnabled: "/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/enabled"
    case .nrHugepages: "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"
    case .nrOvercommitHugepages: "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_overcommit_hugepages"
    case .hugePages1G: "/sys/kernel/mm/hugepages/hugepages-1048576kB present: 0 | 1"
    case .nrHugepages1G: "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages"
    case .nrOvercommitHugepages1G: "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_overcommit_hugepages"
    case .defaultHugePageSize: "/proc/meminfo Hugepagesize in kB: 2048 | 1048576"
    case .maxMapCount: "/proc/sys/vm/max_map_count"
    case .overcommitMemory: "/proc/sys/vm/overcommit_memory"
    case .ksm: "/sys/kernel/mm/ksm present: 0 | 1"
    case .taskSizeBits: "/proc/cpuinfo flag la57: 47 | 56"
    }
  }

  /// What the key accepts, for error messages.
  var expected: String {
    switch self {
    case .protectionKeys: words(MachineProfile.ProtectionKeys.allCases.map(\.rawValue))
    case .mmapMinAddr, .lsmMmapMinAddr: "a page-aligned address below 2^47 (decimal or 0x hex)"
    case .legacyVALayout, .ksm, .hugePages1G, .thpUseZeroPage: "0 or 1"
    case .thpPMDEnabled: words(MachineProfile.THPSizeEnabled.allCases.map(\.rawValue))
    case .thpEnabled: words(MachineProfile.THPEnabled.allCases.map(\.rawValue))
    case .thpDefrag: words(MachineProfile.THPDefrag.allCases.map(\.rawValue))
    case .shmemTHP: words(MachineProfile.ShmemTHP.allCases.map(\.rawValue))
    case .defaultHugePageSize: "2048 or 1048576"
    case .nrHugepages, .nrOvercommitHugepages, .nrHugepages1G, .nrOvercommitHugepages1G, .maxMapCount: "a number from 0 to \(Int32.max)"
    case .overcommitMemory: "0, 1 or 2"
    case .taskSizeBits: "47 or 56"
    }
  }

  /// The key's value in `p`, as the text writes it.
  func render(_ p: MachineProfile) -> String {
    switch self {
    case .protectionKeys: p.protectionKeys.rawValue
    case .mmapMinAddr: String(p.mmapMinAddr)
    case .lsmMmapMinAddr: String(p.lsmMmapMinAddr)
    case .legacyVALayout: p.legacyVALayout ? "1" : "0"
    case .thpEnabled: p.thpEnabled.rawValue
    case .thpDefrag: p.thpDefrag.rawValue
    case .shmemTHP: p.shmemTHP.rawValue
    case .thpUseZeroPage: p.thpUseZeroPage ? "1" : "0"
    case .thpPMDEnabled: p.thpPMDEnabled.rawValue
    case .nrHugepages: String(p.nrHugepages)
    case .nrOvercommitHugepages: String(p.nrOvercommitHugepages)
    case .hugePages1G: p.hugePages1G ? "1" : "0"
    case .nrHugepages1G: String(p.nrHugepages1G)
    case .nrOvercommitHugepages1G: String(p.nrOvercommitHugepages1G)
    case .defaultHugePageSize: String(p.defaultHugePageSize.kilobytes)
    case .maxMapCount: String(p.maxMapCount)
    case .overcommitMemory: String(p.overcommitMemory.rawValue)
    case .ksm: p.ksm ? "1" : "0"
    case .taskSizeBits: String(p.taskSizeBits)
    }
  }

  /// Sets the key in `p` from `value`; false (and `p` unchanged) when the key cannot take it.
  func apply(_ value: String, to p: inout MachineProfile) -> Bool {
    /// Stores `parsed` in `field`; false when the value did not parse.
    func set<T>(_ field: WritableKeyPath<MachineProfile, T>, _ parsed: T?) -> Bool {
      guard let parsed else { return false }
      p[keyPath: field] = parsed
      return true
    }
    switch self {
    case .protectionKeys: return set(\.protectionKeys, MachineProfile.ProtectionKeys(rawValue: value))
    case .mmapMinAddr: return set(\.mmapMinAddr, Self.address(value))
    case .lsmMmapMinAddr: return set(\.lsmMmapMinAddr, Self.address(value))
    case .legacyVALayout: return set(\.legacyVALayout, Self.flag(value))
    case .thpEnabled: return set(\.thpEnabled, MachineProfile.THPEnabled(rawValue: value))
    case .thpDefrag: return set(\.thpDefrag, MachineProfile.THPDefrag(rawValue: value))
    case .shmemTHP: return set(\.shmemTHP, MachineProfile.ShmemTHP(rawValue: value))
    case .thpUseZeroPage: return set(\.thpUseZeroPage, Self.flag(value))
    case .thpPMDEnabled: return set(\.thpPMDEnabled, MachineProfile.THPSizeEnabled(rawValue: value))
    case .nrHugepages: return set(\.nrHugepages, Self.count(value))
    case .nrOvercommitHugepages: return set(\.nrOvercommitHugepages, Self.count(value))
    case .hugePages1G: return set(\.hugePages1G, Self.flag(value))
    case .nrHugepages1G: return set(\.nrHugepages1G, Self.count(value))
    case .nrOvercommitHugepages1G: return set(\.nrOvercommitHugepages1G, Self.count(value))
    case .defaultHugePageSize:
      return set(\.defaultHugePageSize, HugePageSize.allCases.first { String($0.kilobytes) == value })
    case .maxMapCount: return set(\.maxMapCount, Self.count(value))
    case .overcommitMemory: return set(\.overcommitMemory, Self.count(value).flatMap(MachineProfile.Overcommit.init))
    case .ksm: return set(\.ksm, Self.flag(value))
    case .taskSizeBits: return set(\.taskSizeBits, Self.count(value).flatMap { $0 == 47 || $0 == 56 ? $0 : nil })
    }
  }

  /// A minimum address: page aligned (the kernel's placement works in pages) and below 2^47, so
  /// that raising a hint to it (`round_hint_to_min`) cannot wrap.
  static func address(_ s: String) -> UInt64? {
    let lower = s.lowercased()
    let value = lower.hasPrefix("0x") ? UInt64(lower.dropFirst(2), radix: 16) : UInt64(lower, radix: 10)
    guard let value, Page.isAligned(value), value < Page.userAddressLimit else { return nil }
    return value
  }

  /// A decimal count as the kernel's int sysctls take it (0 to `INT_MAX`).
  static func count(_ s: String) -> Int? {
    guard s.allSatisfy(\.isASCII), let v = Int(s, radix: 10), v >= 0, v <= Int(Int32.max) else { return nil }
    return v
  }

  static func flag(_ s: String) -> Bool? {
    switch s {
    case "0": false
    case "1": true
    default: nil
    }
  }

  private func words(_ names: [String]) -> String { names.joined(separator: " | ") }
}
