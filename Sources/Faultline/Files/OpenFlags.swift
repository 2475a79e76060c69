/// The `open(2)` flag bits the Files layer understands, with Linux x86-64 values
/// (`include/uapi/asm-generic/fcntl.h`). Op scripts and `FileTable.open` take them as a plain
/// `Int32`, exactly as the system call does.
public enum OpenFlags {
  /// `O_RDONLY`.
  public static let readOnly: Int32 = 0
  /// `O_WRONLY`.
  public static let writeOnly: Int32 = 1
  /// `O_RDWR`.
  public static let readWrite: Int32 = 2
  /// `O_ACCMODE`: the mask of the three access modes above. The value 3 itself means "neither
  /// read nor write", as Linux's `OPEN_FMODE` reads it.
  public static let accessMode: Int32 = 3
  /// `O_CREAT`.
  public static let create: Int32 = 0o100
  /// `O_EXCL`.
  public static let exclusive: Int32 = 0o200
  /// `O_TRUNC`.
  public static let truncate: Int32 = 0o1000
  /// `O_APPEND`.
  public static let append: Int32 = 0o2000
  /// `O_DIRECTORY`.
  public static let directory: Int32 = 0o200000
  /// `O_PATH`: a location-only descriptor; `fget` (and so `mmap`, `ftruncate`) refuse it.
  public static let path: Int32 = 0o10000000

  /// Flags that survive `O_PATH` (`O_PATH_FLAGS` in `fs/open.c`, less `O_NOFOLLOW`/`O_CLOEXEC`,
  /// which the engine does not model).
  static let pathFlags: Int32 = directory | path
}
