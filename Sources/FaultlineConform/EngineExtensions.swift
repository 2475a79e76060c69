import Faultline

/// The calls the engine gained after `conform` was first written: mremap, mlock, mlock2,
/// munlock and mincore.
enum EngineExtensions {
  /// Whether the engine has them (the generator draws them only then).
  static let available = true

  static func step(_ op: ConformOp, cpu: CPU, window: ConformWindow) -> ConformResult {
    func call(_ body: () throws(Errno) -> Void) -> ConformResult {
      do throws(Errno) {
        try body()
        return .returned(0)
      } catch {
        return .failed(error.rawValue)
      }
    }
    switch op {
    case .mremap(let old, let oldSize, let newSize, let flags, let newAddress):
      do throws(Errno) {
        let a = try cpu.mremap(old, oldSize, newSize, flags: flags, newAddress: newAddress)
        if op.placementFree && !window.contains(a, newSize) { try? cpu.munmap(a, newSize) }
        return .returned(a)
      } catch {
        return .failed(error.rawValue)
      }
    case .mlock(let addr, let length):
      return call { () throws(Errno) in try cpu.mlock(addr, length) }
    case .mlock2(let addr, let length, let flags):
      return call { () throws(Errno) in try cpu.mlock(addr, length, flags: flags) }
    case .munlock(let addr, let length):
      return call { () throws(Errno) in try cpu.munlock(addr, length) }
    case .mincore(let addr, let length):
      do throws(Errno) {
        return .vector(try cpu.mincore(addr, length))
      } catch {
        return .failed(error.rawValue)
      }
    default:
      return .failed(38)  // ENOSYS: not an extension call
    }
  }
}
