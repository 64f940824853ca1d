/// A parsed YAML or JSON document, with the source location of every node.
///
/// The I/O layer builds it (PlumbModelIO parses text with a YAML parser); the core decodes it
/// with ``DocumentDecoder`` so that every problem can name its file, line and column.
public struct DocumentNode: Sendable {
    /// The shape of a node.
    public indirect enum Value: Sendable {
        /// A scalar. `quoted` is true for quoted YAML scalars and JSON strings.
        case scalar(String, quoted: Bool)
        /// A mapping, in document order.
        case mapping([Entry])
        /// A sequence.
        case sequence([DocumentNode])
        /// An explicit null (`null`, `~`, or an empty value).
        case null
    }

    /// One key of a mapping.
    public struct Entry: Sendable {
        /// The key text.
        public var key: String
        /// Where the key is.
        public var keyLocation: SourceLocation
        /// The value.
        public var value: DocumentNode

        /// Creates an entry.
        public init(key: String, keyLocation: SourceLocation, value: DocumentNode) {
            self.key = key
            self.keyLocation = keyLocation
            self.value = value
        }
    }

    /// The node's content.
    public var value: Value
    /// Where the node starts.
    public var location: SourceLocation

    /// Creates a node.
    public init(_ value: Value, at location: SourceLocation) {
        self.value = value
        self.location = location
    }

    /// The value of `key` when this node is a mapping.
    public subscript(key: String) -> DocumentNode? {
        guard case .mapping(let entries) = value else { return nil }
        return entries.first { $0.key == key }?.value
    }

    /// The scalar text, if this node is a scalar.
    public var scalar: String? {
        if case .scalar(let text, _) = value { return text }
        return nil
    }

    /// The elements, if this node is a sequence.
    public var elements: [DocumentNode]? {
        if case .sequence(let items) = value { return items }
        return nil
    }

    /// A word for the kind of node, for error messages.
    public var kindDescription: String {
        switch value {
        case .scalar(let text, let quoted): quoted ? "the string \"\(text)\"" : "the value '\(text)'"
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .null: "null"
        }
    }
}
