import Faultline

/// The calls the engine gained after `conform` was written: mremap, mlock, mlock2, munlock and
/// mincore. Until the engine has them they are `ENOSYS`, and the generator leaves them out.
enum EngineExtensions {
  static let available = false

  static func step(_ op: ConformOp, mm: AddressSpace, window: ConformWindow) -> ConformResult {
    .failed(38)  // ENOSYS
  }
}
