import CFaultlineShims

/// Monotonic nanoseconds.
@inline(__always) public func nowNanoseconds() -> UInt64 { fl_now_ns() }

/// Keeps a value alive so the optimiser cannot drop the work that made it.
@inline(never) public func blackHole<T>(_ v: T) { withExtendedLifetime(v) {} }
