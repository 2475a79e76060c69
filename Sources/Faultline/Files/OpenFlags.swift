/// The `open(2)` flag bits the Files layer understands, with Linux x86-64 values
/// (`include/uapi/asm-generic/fcntl.h`). The access mode (the low two bits) is a value, not a
/// bit: compare `intersection(.accessMode)` with `.readOnly`, `.writeOnly` or `.readWrite`.
public struct OpenFlags: OptionSet, SyscallFlags {
  /// The C value.
  public let rawValue: Int32
  /// The flags whose C value is `rawValue`.
  public init(rawValue: Int32) { self.rawValue = rawValue }
  /// `O_RDONLY`.
  public static let readOnly: OpenFlags = []
  /// `O_WRONLY`.
  public static let writeOnly = OpenFlags(rawValue: 1)
  /// `O_RDWR`.
  public static let readWrite = OpenFlags(rawValue: 2)
  /// `O_ACCMODE`: the mask of the three access modes above. The value 3 itself means "neither
  /// read nor write", as Linux's `OPEN_FMODE` reads it.
  public static let accessMode = OpenFlags(rawValue: 3)
  /// `O_CREAT`.
  public static let create = OpenFlags(rawValue: 0o100)
  /// `O_EXCL`.
  public static let exclusive = OpenFlags(rawValue: 0o200)
  /// `O_TRUNC`.
  public static let truncate = OpenFlags(rawValue: 0o1000)
  /// `O_APPEND`.
  public static let append = OpenFlags(rawValue: 0o2000)
  /// `O_DIRECTORY`.
  public static let directory = OpenFlags(rawValue: 0o200000)
  /// `O_PATH`: a location-only descriptor; `fget` (and so `mmap`, `ftruncate`) refuse it.
  public static let path = OpenFlags(rawValue: 0o10000000)

  /// Flags that survive `O_PATH` (`O_PATH_FLAGS` in `fs/open.c`, less `O_NOFOLLOW`/`O_CLOEXEC`,
  /// which the engine does not model).
  static let pathFlags: OpenFlags = [.directory, .path]
}
