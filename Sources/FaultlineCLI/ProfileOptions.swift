import ArgumentParser
import Faultline
import Foundation

/// `--profile host|reference|x86-pku|FILE`: the machine every engine a command builds models.
/// Each subcommand that builds a `Machine` takes it as an `@OptionGroup`.
struct ProfileOptions: ParsableArguments {
  @Option(
    name: .customLong("profile"),
    help: ArgumentHelp(
      "The machine the engine models: \(MachineProfile.names.joined(separator: ", ")), or a profile file.",
      discussion: """
        host (the default) is this machine's CPU features and kernel settings; reference is the \
        engine without protection keys and with mmap_min_addr 4096; x86-pku is reference with \
        protection keys. A file holds `key value` lines as `faultline profile` prints them; keys \
        it leaves out keep reference's values.
        """,
      valueName: "name|file"))
  var profile = "host"

  init() {}

  /// Reads the file now, so that a bad one stops the command before it runs.
  mutating func validate() throws { _ = try resolve() }

  /// The named profile, or the one the file holds (its missing keys from `.reference`).
  ///
  /// - Throws: `ValidationError` naming the file when it cannot be read, or naming the file and
  ///   the line when it does not parse.
  func resolve() throws -> MachineProfile {
    if let named = MachineProfile.named(profile) { return named }
    let text: String
    do {
      text = String(decoding: try Data(contentsOf: URL(fileURLWithPath: profile)), as: UTF8.self)
    } catch {
      throw ValidationError(
        "--profile \(profile): not one of \(MachineProfile.names.joined(separator: ", ")) and not a readable file "
          + "(\(error.localizedDescription))")
    }
    do {
      return try MachineProfile(text: text)
    } catch {
      throw ValidationError("--profile \(profile): \(error)")
    }
  }
}
