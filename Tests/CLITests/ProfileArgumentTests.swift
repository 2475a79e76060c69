import ArgumentParser
import Faultline
import Foundation
import Testing

@testable import FaultlineCLI

/// `--profile` on the commands that build an engine, and `faultline profile` (nothing is run).
@Suite struct ProfileArgumentTests {
  /// A file in a fresh temporary directory, removed at the end.
  final class TempFile {
    let dir: String
    let path: String

    init(_ contents: String) throws {
      dir = FileManager.default.temporaryDirectory.appendingPathComponent("profile-\(UUID().uuidString)").path
      try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
      path = dir + "/p.txt"
      try contents.write(toFile: path, atomically: true, encoding: .utf8)
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }
  }

  @Test func theDefaultIsTheHost() throws {
    #expect(try ProfileOptions.parse([]).resolve() == .host)
    #expect(try Bench.parse([]).profileOptions.resolve() == .host)
    #expect(try Demo.parse([]).profileOptions.resolve() == .host)
    #expect(try Explore.parse(["all"]).profileOptions.resolve() == .host)
    #expect(try Replay.parsedOptionsProfile(["f.strace"]) == .host)
    #expect(try Conform.parse([]).profileOptions.profile == "host")
    #expect(try Profile.parse([]).profileOptions.resolve() == .host)
  }

  @Test(arguments: [("host", MachineProfile.host), ("reference", .reference), ("x86-pku", .x86PKU)])
  func namedProfilesResolve(_ name: String, _ want: MachineProfile) throws {
    #expect(try ProfileOptions.parse(["--profile", name]).resolve() == want)
    #expect(try Bench.parse(["--profile", name]).profileOptions.resolve() == want)
    #expect(try Demo.parse(["--profile", name]).profileOptions.resolve() == want)
    #expect(try Explore.parse(["all", "--profile", name]).profileOptions.resolve() == want)
    #expect(try Replay.parsedOptionsProfile(["f.strace", "--profile", name]) == want)
    #expect(try Profile.parse(["--profile", name]).profileOptions.resolve() == want)
  }

  @Test func aFileResolvesToWhatItSaysOverReference() throws {
    let file = try TempFile("# mine\nprotection_keys x86\nmax_map_count 1000\n")
    var want = MachineProfile.reference
    want.protectionKeys = .x86
    want.maxMapCount = 1000
    #expect(try ProfileOptions.parse(["--profile", file.path]).resolve() == want)
    #expect(try Bench.parse(["--profile", file.path]).profileOptions.resolve() == want)
    #expect(try Replay.parsedOptionsProfile(["f.strace", "--profile", file.path]) == want)
  }

  @Test func whatProfilePrintsReadsBack() throws {
    let file = try TempFile(MachineProfile.x86PKU.text)
    #expect(try ProfileOptions.parse(["--profile", file.path]).resolve() == .x86PKU)
  }

  @Test func aBadFileIsAValidationErrorNamingTheFileAndTheLine() throws {
    let file = try TempFile("protection_keys x86\n\nfoo 1\n")
    do {
      var o = ProfileOptions()
      o.profile = file.path
      _ = try o.resolve()
      Issue.record("a bad file resolved")
    } catch let error as ValidationError {
      #expect(error.message.contains(file.path) && error.message.contains("line 3: unknown key 'foo'"), "\(error)")
    }
    // Parsing a command refuses it too, with the same message.
    for parse in [
      { try Bench.parse(["--profile", file.path]) as Any },
      { try Demo.parse(["--profile", file.path]) as Any },
      { try Explore.parse(["all", "--profile", file.path]) as Any },
      { try Replay.parse(["f.strace", "--profile", file.path]) as Any },
      { try Profile.parse(["--profile", file.path]) as Any },
    ] {
      do {
        _ = try parse()
        Issue.record("a bad file parsed")
      } catch {
        let message = Bench.message(for: error)
        #expect(message.contains(file.path) && message.contains("line 3"), "\(message)")
      }
    }
  }

  @Test func anUnreadableFileOrUnknownNameIsRefused() {
    #expect(throws: (any Error).self) { try Bench.parse(["--profile", "/nonexistent/profile.txt"]) }
    #expect(throws: (any Error).self) { try Demo.parse(["--profile", "x86_pku"]) }
    do {
      var o = ProfileOptions()
      o.profile = "/nonexistent/profile.txt"
      _ = try o.resolve()
      Issue.record("an unreadable file resolved")
    } catch {
      #expect((error as? ValidationError)?.message.contains("/nonexistent/profile.txt") == true)
    }
  }

  @Test func conformRefusesAnyProfileButTheHost() throws {
    #expect(try Conform.parse(["--profile", "host"]).profileOptions.profile == "host")
    let file = try TempFile(MachineProfile.host.text)
    for other in ["reference", "x86-pku", file.path] {
      do {
        _ = try Conform.parse(["--profile", other])
        Issue.record("conform took --profile \(other)")
      } catch {
        #expect(Conform.message(for: error).contains("host"))
      }
    }
  }
}

extension Replay {
  /// The profile `faultline replay ARGS` gives its executor.
  static func parsedOptionsProfile(_ args: [String]) throws -> MachineProfile {
    try parse(args).parsedOptions().profile
  }
}
