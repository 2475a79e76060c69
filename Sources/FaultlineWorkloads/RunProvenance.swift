import Foundation
import Glibc
import CFaultlineShims

// Where a bench run came from: the machine (CPU model, CPU count, kernel) and the commit, kept in
// its JSON and CSV so that two runs can be told apart.

extension MachineInfo {
  /// This machine: /proc/cpuinfo's first `model name`, the CPUs this process may use, and uname.
  public static func current() -> MachineInfo {
    var model = "unknown"
    if let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
      let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
      let colon = line.firstIndex(of: ":")
    {
      model = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    var u = utsname()
    var kernel = "unknown"
    if uname(&u) == 0 {
      func field<T>(_ t: T) -> String {
        withUnsafeBytes(of: t) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
      }
      kernel = "\(field(u.sysname)) \(field(u.release)) \(field(u.machine))"
    }
    return MachineInfo(cpuModel: model, cpuCount: Int(fl_online_cpus()), kernel: kernel)
  }
}

/// `git rev-parse HEAD` in the current directory, or `unknown` outside a checkout or without git.
public func currentCommit() -> String {
  let p = Process()
  p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
  p.arguments = ["git", "rev-parse", "HEAD"]
  let out = Pipe()
  p.standardOutput = out
  p.standardError = FileHandle.nullDevice
  do { try p.run() } catch { return "unknown" }
  let data = out.fileHandleForReading.readDataToEndOfFile()
  p.waitUntilExit()
  let hash = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
  return p.terminationStatus == 0 && !hash.isEmpty ? hash : "unknown"
}
