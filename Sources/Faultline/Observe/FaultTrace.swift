import CFaultlineShims
import Synchronization

/// An optional event stream in ftrace's text format (`<event>: addr=0x… design=… tid=…`), for
/// the abort paths. Off by default; `enabled` turns it on. Keeps the last `capacity` lines.
/// Guards: `lock` guards `lines` and `dropped`.
public final class FaultTrace: @unchecked Sendable {
  private let on = Atomic<Bool>(false)
  /// Whether events are recorded.
  public var enabled: Bool {
    get { on.load(ordering: .relaxed) }
    set { on.store(newValue, ordering: .relaxed) }
  }
  /// The most lines kept; the oldest go first.
  public let capacity: Int
  private let lock = PThreadMutex()
  private var lines: [String] = []
  private var dropped = 0

  /// A stream, off until `enabled` is set, that keeps the last `capacity` lines.
  public init(capacity: Int = 4096) { self.capacity = capacity }

  /// Records one event; `event` is evaluated only when the stream is on, so an abort path pays
  /// no string work while tracing is off.
  func record(_ event: @autoclosure () -> String, addr: UInt64, design: FaultDesign) {
    guard enabled else { return }
    let line = "\(event()): addr=0x\(String(addr, radix: 16)) design=\(design) tid=\(fl_gettid())"
    lock.withLock {
      if lines.count == capacity {
        lines.removeFirst()
        dropped += 1
      }
      lines.append(line)
    }
  }

  /// The recorded lines, oldest first, and empties the buffer.
  public func drain() -> [String] {
    lock.withLock {
      let out = lines
      lines = []
      return out
    }
  }
}
