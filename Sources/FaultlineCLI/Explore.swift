import ArgumentParser
import Faultline
import FaultlineExplore

/// `faultline explore SCENARIO`: the deterministic interleaving explorer (issue 6).
public struct Explore: ParsableCommand {
  public init() {}
  public static let configuration = CommandConfiguration(
    abstract: "Run a fault against a writer through every interleaving of their yield points, checking DESIGN.md §4.",
    discussion: """
      Scenarios: \(Scenario.all.map(\.name).joined(separator: ", ")), or `all`. Each run starts \
      from a fresh machine; one logical thread runs at a time and hands control back at every \
      fault and writer hook point. Without --budget every interleaving is explored (depth-first); \
      --schedule replays one (thread names separated by commas, as printed). Exits non-zero \
      on any invariant violation or scheduler error.
      """)

  @Argument(help: "The scenario, or `all`.")
  public var scenario: String

  @Option(help: "The fault design (mmap_lock, spf, seq, vma_lock) or `all`.")
  public var design = "all"

  @Option(name: .customLong("fput-mode"), help: "File scenarios: synchronous, deferred or `all`.")
  public var fputMode = "all"

  @Option(help: "The scenario variant (read, write) or `all`.")
  public var variant = "all"

  @Option(help: "Sample this many random schedules instead of exploring them all.")
  public var budget: Int?

  @Option(help: "The seed of --budget's random choices.")
  public var seed: UInt64 = 1

  @Option(help: "Replay one schedule, e.g. F,F,W,F,W.")
  public var schedule: String?

  @Option(help: "The most schedules one exhaustive exploration runs.")
  public var limit = 20_000

  @OptionGroup var profileOptions: ProfileOptions

  @Flag(help: "Run the scenario with its writer broken on purpose (the checks must fail).")
  public var sabotage = false

  @Flag(help: "Print every schedule and its yield points, and an example schedule per outcome.")
  public var verbose = false

  public mutating func validate() throws {
    if scenario != "all" && Scenario.named(scenario) == nil {
      throw ValidationError("unknown scenario \(scenario); one of \(Scenario.all.map(\.name).joined(separator: ", ")), all")
    }
    if design != "all" && FaultDesign(rawValue: design) == nil {
      throw ValidationError("unknown design \(design); one of \(FaultDesign.allCases.map(\.rawValue).joined(separator: ", ")), all")
    }
    if fputMode != "all" && FputMode(rawValue: fputMode) == nil {
      throw ValidationError("unknown fput mode \(fputMode); synchronous, deferred or all")
    }
    if let budget, budget <= 0 { throw ValidationError("--budget must be positive") }
    if limit <= 0 { throw ValidationError("--limit must be positive") }
  }

  public mutating func run() throws {
    let scenarios = scenario == "all" ? Scenario.all : [Scenario.named(scenario)!]
    let designs = design == "all" ? FaultDesign.allCases : [FaultDesign(rawValue: design)!]
    let modes = fputMode == "all" ? FputMode.allCases : [FputMode(rawValue: fputMode)!]
    let mode: Explorer.Mode =
      if let schedule { .replay(parseSchedule(schedule)) } else if let budget { .random(budget: budget, seed: seed) } else {
        .exhaustive(limit: limit)
      }
    let profile = try profileOptions.resolve()
    var failures = 0
    var anonMunmap: [Explorer.Result] = []
    var fileMunmap: [Explorer.Result] = []
    for sc in scenarios {
      let variants = variant == "all" ? sc.variants : sc.variants.filter { $0 == variant }
      if variants.isEmpty {
        print("\(sc.name): no variant \(variant) (has \(sc.variants.joined(separator: ", ")))")
        continue
      }
      for d in designs {
        for m in sc.usesFputMode ? modes : [FputMode.synchronous] {
          var group: [Explorer.Result] = []
          for v in variants {
            var config = ScenarioConfig(design: d, variant: v)
            config.fputMode = m
            config.sabotage = sabotage
            config.profile = profile
            let result = Explorer(scenario: sc, config: config, mode: mode).explore()
            failures += result.violating.count
            group.append(result)
          }
          print(ExploreReport.block(group, verbose: verbose))
          if sc.name == Scenario.faultMunmap.name { anonMunmap += group }
          if sc.name == Scenario.fileFaultMunmapUmount.name { fileMunmap += group }
        }
      }
    }
    if !anonMunmap.isEmpty {
      print("Side effects, anonymous fault vs munmap (interleavings in which each showed):")
      print(ExploreReport.anonSideEffects(anonMunmap))
    }
    if !fileMunmap.isEmpty {
      print("Side effects, file fault vs munmap + close + umount (interleavings in which each showed):")
      print(ExploreReport.fileSideEffects(fileMunmap))
    }
    print("violations: \(failures)")
    if failures > 0 { throw ExitCode.failure }
  }
}
