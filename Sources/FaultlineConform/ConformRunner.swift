import Faultline

/// One disagreement between the engine and the host kernel.
public struct Disagreement: Sendable, CustomStringConvertible {
  /// The op's index in the sequence.
  public let index: Int
  public let op: ConformOp
  public let host: ConformResult
  public let engine: ConformResult
  /// What differs, in words.
  public let reason: String

  public var description: String {
    var s = "op \(index + 1): \(op.callText): the engine \(reason)"
    if case .maps(let h) = host, case .maps(let e) = engine {
      s += "\n  host maps:\n" + h.map { "    \($0)\n" }.joined()
      s += "  engine maps:\n" + e.map { "    \($0)\n" }.joined()
    }
    return s
  }
}

/// The outcome of one sequence on both sides.
public struct SequenceOutcome: Sendable {
  public let ops: [ConformOp]
  public let host: [ConformResult]
  public let engine: [ConformResult]
  public let disagreements: [Disagreement]
  /// Whether the host answered differently when the sequence ran again (`ConformRunner.run`).
  public var hostVaried = false
  public var agrees: Bool { disagreements.isEmpty }
}

/// Runs sequences on the host and the engine, compares them, and minimises a disagreement.
public struct ConformRunner {
  public let probe: HostProbe
  public let engine: EngineRunner
  public let window: ConformWindow
  /// Replaces the engine's results before comparison (tests inject a wrong answer this way).
  public var engineFilter: (@Sendable ([ConformOp], [ConformResult]) -> [ConformResult])?
  /// How many more times a disagreeing sequence runs on the host (see `run`).
  public var hostRetries = 2

  public init(probe: HostProbe, engine: EngineRunner) {
    self.probe = probe
    self.engine = engine
    window = probe.window
  }

  public enum Failure: Error, CustomStringConvertible {
    case host(HostProbe.Failure)
    case engine(Errno)
    public var description: String {
      switch self {
      case .host(let f): f.description
      case .engine(let e): "engine: \(e)"
      }
    }
  }

  /// Runs `ops` on both sides and compares every result.
  ///
  /// A sequence that disagrees runs on the host again, up to `hostRetries` times, for as long as
  /// each run answers differently from the one before: the host is not always deterministic
  /// (khugepaged may collapse a range into a huge page in the background at any moment, and a
  /// huge page may not be had and fall back to 4 KiB pages). The outcome is the host run that
  /// disagrees least, so a sequence agrees when the engine matches any answer the host gave;
  /// a host that answers the same twice ends the retries.
  public func run(_ ops: [ConformOp]) throws(Failure) -> SequenceOutcome {
    var eng: [ConformResult]
    do throws(Errno) { eng = try engine.run(ops) } catch { throw .engine(error) }
    if let engineFilter { eng = engineFilter(ops, eng) }
    var best: SequenceOutcome?
    var previous: [ConformResult]?
    for _ in 0...max(hostRetries, 0) {
      let host: [ConformResult]
      do throws(HostProbe.Failure) { host = try probe.run(ops) } catch { throw .host(error) }
      // The same answer (modulo placement, as the comparison has it): the host is steady here.
      if let previous, compare(ops, host: previous, engine: host).isEmpty { break }
      let found = compare(ops, host: host, engine: eng)
      if best == nil || found.count < best!.disagreements.count {
        best = SequenceOutcome(ops: ops, host: host, engine: eng, disagreements: found)
      }
      best!.hostVaried = previous != nil
      if found.isEmpty { break }
      previous = host
    }
    return best!
  }

  /// The disagreements between one host run and the engine's results.
  func compare(_ ops: [ConformOp], host: [ConformResult], engine eng: [ConformResult]) -> [Disagreement] {
    var comparator = ConformComparator(window: window)
    var found: [Disagreement] = []
    for i in ops.indices {
      if let why = comparator.compare(ops[i], host: host[i], engine: eng[i]) {
        found.append(Disagreement(index: i, op: ops[i], host: host[i], engine: eng[i], reason: why))
      }
    }
    return found
  }

  /// The shortest sequence found that still disagrees on the same call as `outcome`'s first
  /// disagreement (the failing op is kept last: what follows it cannot matter), with its
  /// outcome. A candidate the host cannot run counts as not failing.
  public func minimize(_ outcome: SequenceOutcome, budget: Int = 5000) -> (SequenceOutcome, tests: Int) {
    guard let first = outcome.disagreements.first else { return (outcome, 0) }
    let name = first.op.name
    let prefix = Array(outcome.ops[...first.index])
    let runner = self
    var m = Minimizer(budget: budget) { candidate in
      guard candidate.last?.name == name, let o = try? runner.run(candidate) else { return false }
      return o.disagreements.contains { $0.index == candidate.count - 1 }
    }
    let ops = m.minimize(prefix)
    let final = (try? run(ops)) ?? outcome
    return (final, m.tests)
  }
}

/// The figures of a run of many sequences.
public struct ConformSummary: Sendable {
  public var sequences = 0
  public var ops = 0
  /// Ops whose results agreed.
  public var agreements = 0
  /// Ops whose results differed.
  public var disagreements = 0
  /// Sequences with at least one disagreement: (sequence index, outcome).
  public var failing: [(Int, SequenceOutcome)] = []
  /// Sequences the host could not run (a child crash or timeout), with why.
  public var hostFailures: [(Int, String)] = []
  /// Sequences that disagreed at first and where a second host run answered differently
  /// (`ConformRunner.run`).
  public var hostVaried = 0
}

extension ConformRunner {
  /// Runs sequences `indices` of `seed` from `generator`, calling `progress(done, summary, outcome)`
  /// after each (`outcome` is `nil` when the host could not run it).
  public func runSequences<S: Sequence<Int>>(
    seed: UInt64, indices: S, length: Int, generator: ConformGenerator,
    progress: (Int, ConformSummary, SequenceOutcome?) -> Void = { _, _, _ in }
  ) -> ConformSummary {
    var summary = ConformSummary()
    for i in indices {
      var last: SequenceOutcome?
      let ops = generator.sequence(seed: seed, index: i, length: length)
      summary.sequences += 1
      do throws(Failure) {
        let outcome = try run(ops)
        summary.ops += ops.count
        summary.disagreements += outcome.disagreements.count
        summary.agreements += ops.count - outcome.disagreements.count
        if !outcome.agrees { summary.failing.append((i, outcome)) }
        if outcome.hostVaried { summary.hostVaried += 1 }
        last = outcome
      } catch {
        summary.hostFailures.append((i, error.description))
      }
      progress(summary.sequences, summary, last)
    }
    return summary
  }
}
