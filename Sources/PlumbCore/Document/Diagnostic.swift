/// A position in a source document.
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
    /// The file name as the user gave it.
    public var file: String
    /// Line, starting at 1.
    public var line: Int
    /// Column, starting at 1.
    public var column: Int

    /// Creates a location.
    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// `FILE:LINE:COLUMN`.
    public var description: String { "\(file):\(line):\(column)" }
}

/// One problem found in a model or an import.
public struct Diagnostic: Hashable, Sendable, CustomStringConvertible {
    /// How bad the problem is.
    public enum Severity: String, Sendable, Codable {
        /// The model cannot be evaluated, or it breaks its own intent.
        case error
        /// Legal in AWS, but probably a mistake.
        case warning
    }

    /// How bad it is.
    public var severity: Severity
    /// Where it is.
    public var location: SourceLocation
    /// What is wrong, and what to do.
    public var message: String
    /// A stable short code for tooling (`dangling-reference`, `unknown-field`, …).
    public var code: String

    /// Creates a diagnostic.
    public init(_ severity: Severity, at location: SourceLocation, code: String, _ message: String) {
        self.severity = severity
        self.location = location
        self.code = code
        self.message = message
    }

    /// `FILE:LINE:COLUMN: error: message`.
    public var description: String { "\(location): \(severity.rawValue): \(message)" }
}

extension Array where Element == Diagnostic {
    /// True when at least one diagnostic is an error.
    public var hasErrors: Bool { contains { $0.severity == .error } }

    /// Sorted by file, line and column, errors first on the same spot.
    public func sortedByLocation() -> [Diagnostic] {
        sorted {
            ($0.location.file, $0.location.line, $0.location.column, $0.severity == .error ? 0 : 1)
                < ($1.location.file, $1.location.line, $1.location.column, $1.severity == .error ? 0 : 1)
        }
    }
}

/// A diagnostic can be thrown where one problem stops the work (an unreadable file).
extension Diagnostic: Error {}
