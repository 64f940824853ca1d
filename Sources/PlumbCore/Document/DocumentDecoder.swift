/// Decodes `Decodable` values from a ``DocumentNode`` tree and reports problems with their source location.
///
/// Beyond what a plain decoder does, it
/// - reports fields that the type does not read (`unknown field 'cidrr'`), instead of silently ignoring them;
/// - records the location of every decoded node, so later validation can point at a field (``SourceMap``);
/// - keeps going after a broken list element when the element type is wrapped in ``Recovered``, so one
///   run reports every broken resource, not just the first.
public enum DocumentDecoder {
    /// The outcome of a decode: the value (nil when the root itself was broken), diagnostics and locations.
    public struct Result<Value> {
        /// The decoded value; nil when the document could not be decoded at all.
        public var value: Value?
        /// Every problem found, in document order.
        public var diagnostics: [Diagnostic]
        /// Where each decoded field is, by path (`subnets[2].cidr`).
        public var sourceMap: SourceMap
    }

    /// Decodes `type` from `node`.
    public static func decode<T: Decodable>(_ type: T.Type, from node: DocumentNode) -> Result<T> {
        let context = DecodingContext(file: node.location.file)
        let decoder = NodeDecoder(node: node, codingPath: [], context: context)
        var value: T?
        do {
            value = try decoder.decodeChecked(T.self)
        } catch {
            context.record(error, at: [])
        }
        return Result(value: value, diagnostics: context.diagnostics, sourceMap: SourceMap(locations: context.locations, file: context.file))
    }
}

/// Source locations of decoded fields, by path (`subnets[2].cidr`).
public struct SourceMap: Sendable {
    /// Locations by path.
    public var locations: [String: SourceLocation]
    /// The file the document came from.
    public var file: String

    /// Creates a map.
    public init(locations: [String: SourceLocation] = [:], file: String) {
        self.locations = locations
        self.file = file
    }

    /// The location of `path`, or of its nearest recorded ancestor, or the top of the file.
    public func location(_ path: String) -> SourceLocation {
        var current = Substring(path)
        while true {
            if let found = locations[String(current)] { return found }
            guard let cut = current.lastIndex(where: { $0 == "." || $0 == "[" }) else { break }
            current = current[..<cut]
        }
        return locations[""] ?? SourceLocation(file: file, line: 1, column: 1)
    }
}

/// Wraps a list element so that a broken element is reported and skipped instead of failing the whole list.
public struct Recovered<Wrapped: Decodable>: Decodable {
    /// The element, or nil when it could not be decoded (the problem was recorded).
    public var value: Wrapped?

    public init(from decoder: any Decoder) throws {
        do {
            value = try Wrapped(from: decoder)
        } catch {
            guard let nodeDecoder = decoder as? NodeDecoder else { throw error }
            nodeDecoder.context.record(error, at: decoder.codingPath)
            nodeDecoder.skipUnknownFieldCheck = true
            value = nil
        }
    }
}

/// Renders a coding path as `subnets[2].cidr`.
func pathString(_ codingPath: [any CodingKey]) -> String {
    var text = ""
    for key in codingPath {
        if let index = key.intValue {
            text += "[\(index)]"
        } else {
            if !text.isEmpty { text += "." }
            text += key.stringValue
        }
    }
    return text
}

final class DecodingContext {
    let file: String
    var diagnostics: [Diagnostic] = []
    var locations: [String: SourceLocation] = [:]

    init(file: String) { self.file = file }

    func location(of codingPath: [any CodingKey]) -> SourceLocation {
        SourceMap(locations: locations, file: file).location(pathString(codingPath))
    }

    func record(_ error: any Error, at fallbackPath: [any CodingKey]) {
        let path: [any CodingKey]
        let message: String
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            path = context.codingPath
            let owner = pathString(context.codingPath)
            message = "missing field '\(key.stringValue)'\(owner.isEmpty ? "" : " in \(owner)")"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
            DecodingError.dataCorrupted(let context):
            path = context.codingPath
            let at = pathString(context.codingPath)
            message = at.isEmpty ? context.debugDescription : "\(at): \(context.debugDescription)"
        default:
            path = fallbackPath
            message = "\(error)"
        }
        diagnostics.append(Diagnostic(.error, at: location(of: path), code: "malformed", message))
    }
}

struct IndexKey: CodingKey {
    var stringValue: String { "\(index)" }
    var intValue: Int? { index }
    let index: Int
    init(_ index: Int) { self.index = index }
    init?(stringValue: String) { nil }
    init?(intValue: Int) { index = intValue }
}

final class NodeDecoder: Decoder {
    let node: DocumentNode
    let codingPath: [any CodingKey]
    let context: DecodingContext
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    var accessedKeys: Set<String> = []
    var usedKeyedContainer = false
    var skipUnknownFieldCheck = false

    init(node: DocumentNode, codingPath: [any CodingKey], context: DecodingContext) {
        self.node = node
        self.codingPath = codingPath
        self.context = context
        context.locations[pathString(codingPath)] = node.location
    }

    /// Decodes `T` from this node, then reports the mapping keys `T` never looked at.
    func decodeChecked<T: Decodable>(_ type: T.Type) throws -> T {
        let value = try T(from: self)
        if usedKeyedContainer, !skipUnknownFieldCheck, case .mapping(let entries) = node.value {
            let known = accessedKeys.sorted().joined(separator: ", ")
            for entry in entries where !accessedKeys.contains(entry.key) {
                let owner = pathString(codingPath)
                context.diagnostics.append(
                    Diagnostic(
                        .error, at: entry.keyLocation, code: "unknown-field",
                        "unknown field '\(entry.key)'\(owner.isEmpty ? " at the top level" : " in \(owner)"); known fields here: \(known)"))
            }
        }
        return value
    }

    func typeMismatch(_ expected: String, _ type: Any.Type) -> DecodingError {
        .typeMismatch(type, .init(codingPath: codingPath, debugDescription: "expected \(expected), found \(node.kindDescription)"))
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .mapping(let entries) = node.value else { throw typeMismatch("a mapping", [String: Any].self) }
        usedKeyedContainer = true
        return KeyedDecodingContainer(KeyedContainer<Key>(decoder: self, entries: entries))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .sequence(let items) = node.value else { throw typeMismatch("a list", [Any].self) }
        return UnkeyedContainer(decoder: self, items: items)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { SingleValueContainer(decoder: self) }

    func child(_ node: DocumentNode, key: any CodingKey) -> NodeDecoder {
        NodeDecoder(node: node, codingPath: codingPath + [key], context: context)
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: NodeDecoder
    let byKey: [String: DocumentNode]
    let keys: [String]

    init(decoder: NodeDecoder, entries: [DocumentNode.Entry]) {
        self.decoder = decoder
        var byKey: [String: DocumentNode] = [:]
        for entry in entries { byKey[entry.key] = entry.value }
        self.byKey = byKey
        keys = entries.map(\.key)
    }

    var codingPath: [any CodingKey] { decoder.codingPath }
    var allKeys: [Key] { keys.compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool {
        decoder.accessedKeys.insert(key.stringValue)
        return byKey[key.stringValue] != nil
    }

    private func node(_ key: Key) throws -> DocumentNode {
        decoder.accessedKeys.insert(key.stringValue)
        guard let node = byKey[key.stringValue] else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "missing field '\(key.stringValue)'"))
        }
        return node
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        if case .null = try node(key).value { return true }
        return false
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try decoder.child(try node(key), key: key).decodeChecked(T.self)
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard contains(key), let value = byKey[key.stringValue] else { return nil }
        if case .null = value.value { return nil }
        return try decoder.child(value, key: key).decodeChecked(T.self)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try decoder.child(try node(key), key: key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try decoder.child(try node(key), key: key).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder { decoder }
    func superDecoder(forKey key: Key) throws -> any Decoder { decoder.child(try node(key), key: key) }
}

private struct UnkeyedContainer: UnkeyedDecodingContainer {
    let decoder: NodeDecoder
    let items: [DocumentNode]
    var currentIndex = 0

    init(decoder: NodeDecoder, items: [DocumentNode]) {
        self.decoder = decoder
        self.items = items
    }

    var codingPath: [any CodingKey] { decoder.codingPath }
    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    private mutating func next() throws -> (DocumentNode, IndexKey) {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(Any.self, .init(codingPath: codingPath, debugDescription: "the list has no more elements"))
        }
        defer { currentIndex += 1 }
        return (items[currentIndex], IndexKey(currentIndex))
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd else { return false }
        if case .null = items[currentIndex].value {
            currentIndex += 1
            return true
        }
        return false
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let (node, key) = try next()
        return try decoder.child(node, key: key).decodeChecked(T.self)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let (node, key) = try next()
        return try decoder.child(node, key: key).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let (node, key) = try next()
        return try decoder.child(node, key: key).unkeyedContainer()
    }

    mutating func superDecoder() throws -> any Decoder {
        let (node, key) = try next()
        return decoder.child(node, key: key)
    }
}

private struct SingleValueContainer: SingleValueDecodingContainer {
    let decoder: NodeDecoder
    var codingPath: [any CodingKey] { decoder.codingPath }

    func decodeNil() -> Bool {
        if case .null = decoder.node.value { return true }
        return false
    }

    private func text(_ expected: String, _ type: Any.Type) throws -> (String, Bool) {
        guard case .scalar(let text, let quoted) = decoder.node.value else { throw decoder.typeMismatch(expected, type) }
        return (text, quoted)
    }

    func decode(_ type: Bool.Type) throws -> Bool {
        switch try text("true or false", type).0 {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default: throw decoder.typeMismatch("true or false", type)
        }
    }

    func decode(_ type: String.Type) throws -> String { try text("a string", type).0 }

    private func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        guard let value = T(try text("a whole number", type).0) else { throw decoder.typeMismatch("a whole number", type) }
        return value
    }

    func decode(_ type: Double.Type) throws -> Double {
        guard let value = Double(try text("a number", type).0) else { throw decoder.typeMismatch("a number", type) }
        return value
    }

    func decode(_ type: Float.Type) throws -> Float { Float(try decode(Double.self)) }
    func decode(_ type: Int.Type) throws -> Int { try integer(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try integer(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try integer(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try integer(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try integer(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try integer(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(type) }

    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decoder.decodeChecked(T.self) }
}
