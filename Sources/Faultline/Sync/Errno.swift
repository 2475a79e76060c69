@_exported import SystemPackage

/// The error every system call of the engine throws is swift-system's `Errno`, with Linux's
/// values; it is re-exported so that users need not import SystemPackage themselves.
public typealias Errno = SystemPackage.Errno
