/// The package's one seeded random number generator: SplitMix64 (Steele, Lea and Flood, 2014).
///
/// The conformance generator (`faultline conform --seed`), the explorer's sampled schedules
/// (`faultline explore --budget --seed`) and the stress tests draw from it, so a seed names the same
/// sequence on every platform and in every release: the sequence is part of what a printed seed
/// reproduces, so the constants below must never change.
package struct SplitMix64: RandomNumberGenerator, Sendable {
  /// The generator's whole state; each `next()` advances it by the golden-ratio increment.
  var state: UInt64

  /// A generator whose first output is a function of `seed` alone.
  package init(seed: UInt64) { state = seed }

  /// The next 64 bits: the state advanced by the golden-ratio increment, then mixed.
  package mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}
