import PlumbCore

/// A look at YAML text before it is parsed, for the two costs a parser cannot bound by itself:
///
/// - **size**: the values a text can hold are estimated from its separators (`,` `[` `{` `:`, `- ` and line breaks),
///   a bound a parser does not exceed, so a 4 MiB `[1,1,1,…]` is refused before two million nodes are built;
/// - **aliases**: the reader compares mapping keys whole, so an alias used as a key (`*a : x`), or a list or mapping
///   used as a key (`? …`, `[…]: x`), would be compared expanded. Plumb's documents only have plain keys, so such a
///   key is refused when the text has aliases at all, with its location. The number of aliases is bounded too.
///
/// The scan is lexical: it knows quoted scalars, comments and block scalars (`|`, `>`), which is enough to find every
/// `*` that begins an alias; it may over-count one in a continued plain scalar, which only makes the bound tighter.
enum YAMLPrescan {
    static func check(_ text: String, file: String, limits: DocumentLimits) -> Diagnostic? {
        var separators = 1
        var previous: UInt8 = 0
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: ","), UInt8(ascii: "["), UInt8(ascii: "{"), UInt8(ascii: ":"), UInt8(ascii: "\n"): separators += 1
            // A '-' counts when a blank follows it (a block entry), not inside names such as i-app-1.
            case UInt8(ascii: " "), UInt8(ascii: "\t"): if previous == UInt8(ascii: "-") { separators += 1 }
            default: break
            }
            previous = byte
        }
        if separators > limits.maxValues {
            return Diagnostic(
                .error, at: SourceLocation(file: file, line: 1, column: 1), code: "too-large",
                "the document may hold up to \(separators) values, more than the \(limits.maxValues) accepted; split it or raise the limit")
        }
        guard text.utf8.contains(UInt8(ascii: "*")) else { return nil }
        var scanner = Scanner(Array(text.utf8))
        let scan = scanner.run()
        if scan.aliases > limits.maxAliases {
            return Diagnostic(
                .error, at: SourceLocation(file: file, line: 1, column: 1), code: "too-large",
                "the document has \(scan.aliases) YAML aliases (*name), more than the \(limits.maxAliases) accepted; write the values out")
        }
        if scan.aliases > 0, let key = scan.complexKey {
            return Diagnostic(
                .error, at: SourceLocation(file: file, line: key.line, column: key.column), code: "malformed",
                "mapping keys must be plain text, not an alias, a list or a mapping")
        }
        return nil
    }

    struct Result {
        var aliases = 0
        var complexKey: (line: Int, column: Int)?
    }

    struct Scanner {
        let bytes: [UInt8]
        var index = 0
        var line = 1
        var lineStart = 0
        var result = Result()

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        func byte(at offset: Int) -> UInt8? { offset < bytes.count ? bytes[offset] : nil }
        static func isBlank(_ byte: UInt8?) -> Bool {
            byte == nil || byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r")
        }
        static func isFlowEnd(_ byte: UInt8?) -> Bool {
            byte == UInt8(ascii: ",") || byte == UInt8(ascii: "]") || byte == UInt8(ascii: "}")
        }

        mutating func noteComplexKey(at offset: Int) {
            if result.complexKey == nil { result.complexKey = (line, offset - lineStart + 1) }
        }

        /// Whether `:` follows `offset` after blanks on the same line, as a mapping indicator.
        func keyIndicatorFollows(_ offset: Int) -> Bool {
            var cursor = offset
            while let current = byte(at: cursor), current == UInt8(ascii: " ") || current == UInt8(ascii: "\t") { cursor += 1 }
            guard byte(at: cursor) == UInt8(ascii: ":") else { return false }
            let after = byte(at: cursor + 1)
            return Self.isBlank(after) || Self.isFlowEnd(after)
        }

        mutating func newline(after offset: Int) {
            line += 1
            lineStart = offset + 1
        }

        /// Skips the lines of a block scalar: those more indented than `indent`, and blank ones.
        mutating func skipBlockScalar(indent: Int) {
            // The rest of the header line.
            while let current = byte(at: index), current != UInt8(ascii: "\n") { index += 1 }
            while index < bytes.count {
                // At a line break: look at the next line.
                let next = index + 1
                var cursor = next
                while byte(at: cursor) == UInt8(ascii: " ") { cursor += 1 }
                let blank = byte(at: cursor) == nil || byte(at: cursor) == UInt8(ascii: "\n") || byte(at: cursor) == UInt8(ascii: "\r")
                guard blank || cursor - next > indent else { return }
                newline(after: index)
                index = next
                while let current = byte(at: index), current != UInt8(ascii: "\n") { index += 1 }
                if index >= bytes.count { return }
            }
        }

        mutating func run() -> Result {
            var atNodeStart = true
            var flowDepth = 0
            var lineIndent = 0
            var indenting = true
            while index < bytes.count {
                let current = bytes[index]
                if current == UInt8(ascii: "\n") {
                    newline(after: index)
                    index += 1
                    atNodeStart = true
                    indenting = true
                    lineIndent = 0
                    continue
                }
                if indenting {
                    if current == UInt8(ascii: " ") {
                        lineIndent += 1
                        index += 1
                        continue
                    }
                    indenting = false
                }
                if current == UInt8(ascii: " ") || current == UInt8(ascii: "\t") || current == UInt8(ascii: "\r") {
                    index += 1
                    continue
                }
                if current == UInt8(ascii: "#"), index == 0 || Self.isBlank(bytes[index - 1]) {
                    while let next = byte(at: index), next != UInt8(ascii: "\n") { index += 1 }
                    continue
                }
                if atNodeStart {
                    switch current {
                    case UInt8(ascii: "\""):
                        skipDoubleQuoted()
                        atNodeStart = false
                        continue
                    case UInt8(ascii: "'"):
                        skipSingleQuoted()
                        atNodeStart = false
                        continue
                    case UInt8(ascii: "*"):
                        let start = index
                        index += 1
                        // The reader's anchor names are letters, digits, '-' and '_'.
                        while let next = byte(at: index),
                            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(next | 0x20) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(next)
                                || next == UInt8(ascii: "-") || next == UInt8(ascii: "_")
                        {
                            index += 1
                        }
                        result.aliases += 1
                        if keyIndicatorFollows(index) { noteComplexKey(at: start) }
                        atNodeStart = false
                        continue
                    case UInt8(ascii: "&"), UInt8(ascii: "!"):
                        // A property: the node starts after it.
                        while let next = byte(at: index), !Self.isBlank(next) { index += 1 }
                        continue
                    case UInt8(ascii: "?") where Self.isBlank(byte(at: index + 1)):
                        noteComplexKey(at: index)
                        index += 1
                        continue
                    case UInt8(ascii: "-") where Self.isBlank(byte(at: index + 1)):
                        index += 1
                        continue
                    case UInt8(ascii: "|"),
                        UInt8(ascii: ">") where flowDepth == 0:
                        skipBlockScalar(indent: lineIndent)
                        atNodeStart = false
                        continue
                    default: break
                    }
                }
                switch current {
                case UInt8(ascii: "["), UInt8(ascii: "{"):
                    flowDepth += 1
                    atNodeStart = true
                case UInt8(ascii: "]"), UInt8(ascii: "}"):
                    flowDepth = max(0, flowDepth - 1)
                    atNodeStart = false
                    if keyIndicatorFollows(index + 1) { noteComplexKey(at: index) }
                case UInt8(ascii: ","):
                    atNodeStart = flowDepth > 0 ? true : atNodeStart
                case UInt8(ascii: ":") where Self.isBlank(byte(at: index + 1)) || (flowDepth > 0 && Self.isFlowEnd(byte(at: index + 1))):
                    atNodeStart = true
                default:
                    // A plain scalar: nothing in it starts a node until an indicator does.
                    atNodeStart = false
                }
                index += 1
            }
            return result
        }

        mutating func skipDoubleQuoted() {
            index += 1
            while index < bytes.count {
                let current = bytes[index]
                if current == UInt8(ascii: "\\") {
                    if byte(at: index + 1) == UInt8(ascii: "\n") { newline(after: index + 1) }
                    index += 2
                    continue
                }
                if current == UInt8(ascii: "\n") { newline(after: index) }
                index += 1
                if current == UInt8(ascii: "\"") { return }
            }
        }

        mutating func skipSingleQuoted() {
            index += 1
            while index < bytes.count {
                let current = bytes[index]
                if current == UInt8(ascii: "\n") { newline(after: index) }
                index += 1
                if current == UInt8(ascii: "'") {
                    if byte(at: index) == UInt8(ascii: "'") {
                        index += 1
                        continue
                    }
                    return
                }
            }
        }
    }
}
