/// A line of a script that could not be read: where, and why.
public struct ReplayParseError: Error, Equatable, Sendable, CustomStringConvertible {
  /// The 1-based line number.
  public var line: Int
  public var message: String

  public init(line: Int, message: String) {
    self.line = line
    self.message = message
  }

  /// `LINE: message`; the command line prefixes the file name.
  public var description: String { "\(line): \(message)" }
}
