/// Renders a `Diagram` as SVG: every box a `<g class="box KIND …" data-component="ID …">`, every named component in a
/// line a `<tspan class="ref" data-component="ID">`, every path a `<path class="edge KIND" data-from data-to>`. The page's
/// script marks state by toggling classes on those; `plumb diagram` writes the same drawing without state.
public enum SVGRenderer {
    /// The stylesheet of the drawing (embedded in standalone SVG; the page includes it too).
    public static let style = """
        .box > rect { fill: #fff; stroke: #8a94a6; stroke-width: 1; rx: 4; }
        .box.internet > rect { fill: #f4f7fb; stroke: #c5cedb; stroke-dasharray: 4 3; }
        .box.vpc > rect { fill: #fbfcfe; stroke: #3b6fb6; stroke-width: 2; }
        .box.zone > rect { fill: none; stroke: #b8c2d1; stroke-dasharray: 6 4; }
        .box.subnet.public > rect { fill: #eef8ee; stroke: #4c9a4c; }
        .box.subnet.private > rect { fill: #eef3fb; stroke: #4a74b4; }
        .box.instance > rect, .box.collapsed > rect { fill: #fff; }
        .box.nat > rect, .box.nat-instance > rect { fill: #fff8ec; stroke: #d08b1a; }
        .box.bastion > rect { fill: #f6efff; stroke: #7d55c7; }
        .box.load-balancer > rect { fill: #eefafa; stroke: #2a9d9d; }
        .box.endpoint > rect { fill: #f7f7f7; stroke: #777; }
        .box.internet-gateway > rect { fill: #eef8ee; stroke: #4c9a4c; stroke-width: 2; }
        .box text { font: 11px ui-monospace, SFMono-Regular, Menlo, monospace; fill: #334; }
        .box text.title { font: bold 12px system-ui, sans-serif; fill: #112; }
        .box.subnet > text.title, .box.vpc > text.title, .box.zone > text.title { font-size: 13px; }
        .box text .static { fill: #a05a00; font-weight: bold; }
        .badge { font: bold 9px system-ui, sans-serif; }
        .edge { fill: none; stroke: #9aa6b8; stroke-width: 1.4; marker-end: url(#arrow); }
        .edge.route { stroke: #4a74b4; }
        .edge.egress { stroke: #d08b1a; }
        .edge.listener { stroke: #2a9d9d; }
        .edge.endpoint { stroke: #888; stroke-dasharray: 5 3; }
        .box.blamed > rect { stroke: #d11; stroke-width: 3; fill: #fff0f0; }
        .ref.blamed { fill: #d11; font-weight: bold; text-decoration: underline; }
        .box.silent { opacity: 0.45; }
        .box.silent > rect { stroke-dasharray: 3 2; }
        .box.no-agent > rect { stroke-dasharray: 1 3; }
        .box.disagreeing > rect { stroke: #e07000; stroke-width: 2.5; }
        .box.selected > rect { stroke: #111; stroke-width: 3; }
        .edge.blamed { stroke: #d11; stroke-width: 2.5; }
        """

    /// The SVG element; `standalone` adds the XML declaration and the stylesheet (for a file).
    public static func render(_ diagram: Diagram, standalone: Bool = false) -> String {
        var out = ""
        if standalone { out += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" }
        out +=
            "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"vpc\" class=\"plumb-diagram\" viewBox=\"0 0 \(n(diagram.width)) \(n(diagram.height))\" "
        out += "width=\"\(n(diagram.width))\" height=\"\(n(diagram.height))\" role=\"img\" aria-label=\"\(escape(diagram.title))\">\n"
        out += "<title>\(escape(diagram.title))</title>\n"
        out +=
            "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">"
        out += "<path d=\"M0,0 L10,5 L0,10 z\" fill=\"#9aa6b8\"/></marker></defs>\n"
        if standalone { out += "<style>\n\(style)\n</style>\n" }
        out += "<rect x=\"0\" y=\"0\" width=\"\(n(diagram.width))\" height=\"\(n(diagram.height))\" fill=\"#ffffff\"/>\n"
        // Containers first, so what they hold is drawn over them; paths over the containers, under the members.
        let containers: Set<Diagram.Box.Kind> = [.internet, .vpc, .zone, .subnet]
        for box in diagram.boxes where containers.contains(box.kind) { out += render(box) }
        out += "<g class=\"edges\">\n"
        for edge in diagram.edges { out += render(edge) }
        out += "</g>\n"
        for box in diagram.boxes where !containers.contains(box.kind) { out += render(box) }
        out += "</svg>\n"
        return out
    }

    static func render(_ box: Diagram.Box) -> String {
        let classes = (["box", box.kind.rawValue] + box.tags).joined(separator: " ")
        var out = "<g class=\"\(escape(classes))\""
        if !box.components.isEmpty { out += " data-component=\"\(escape(box.components.joined(separator: " ")))\"" }
        if let first = box.components.first { out += " id=\"c-\(escape(identifier(first)))\"" }
        if let members = box.members { out += " data-members=\"\(escape(members.joined(separator: " ")))\"" }
        out += ">\n"
        out += "<rect x=\"\(n(box.x))\" y=\"\(n(box.y))\" width=\"\(n(box.width))\" height=\"\(n(box.height))\"/>\n"
        var y = box.y + 15
        out += "<text class=\"title\" x=\"\(n(box.x + 8))\" y=\"\(n(y))\">\(escape(box.title))</text>\n"
        if box.kind == .subnet, let tag = box.tags.first {
            out += "<text class=\"badge\" x=\"\(n(box.x + box.width - 8))\" y=\"\(n(y))\" text-anchor=\"end\">\(tag.uppercased())</text>\n"
        }
        for line in box.lines {
            y += DiagramLayout.lineHeight
            let tags = line.tags.isEmpty ? "" : " class=\"\(escape(line.tags.joined(separator: " ")))\""
            out += "<text\(tags) x=\"\(n(box.x + 8))\" y=\"\(n(y))\">\(references(line))</text>\n"
        }
        out += "</g>\n"
        return out
    }

    /// The line's text with each component it names wrapped in a `tspan` that carries the id.
    static func references(_ line: Diagram.Line) -> String {
        var ranges: [(range: Range<String.Index>, id: String)] = []
        for id in line.components.sorted(by: { $0.count > $1.count }) {
            for found in occurrences(of: id, in: line.text) where !ranges.contains(where: { $0.range.overlaps(found) }) {
                ranges.append((found, id))
            }
        }
        guard !ranges.isEmpty else { return escape(line.text) }
        ranges.sort { $0.range.lowerBound < $1.range.lowerBound }
        var out = ""
        var cursor = line.text.startIndex
        for (range, id) in ranges {
            out += escape(String(line.text[cursor..<range.lowerBound]))
            let extra = line.tags.contains("static") ? " static" : ""
            out += "<tspan class=\"ref\(extra)\" data-component=\"\(escape(id))\">\(escape(String(line.text[range])))</tspan>"
            cursor = range.upperBound
        }
        out += escape(String(line.text[cursor...]))
        return out
    }

    /// Where `needle` occurs in `text`, whole words only (not inside a longer id).
    static func occurrences(of needle: String, in text: String) -> [Range<String.Index>] {
        guard !needle.isEmpty else { return [] }
        var found: [Range<String.Index>] = []
        var start = text.startIndex
        while start < text.endIndex {
            guard text[start...].hasPrefix(needle) else {
                start = text.index(after: start)
                continue
            }
            let end = text.index(start, offsetBy: needle.count)
            let before = start == text.startIndex ? nil : text[text.index(before: start)]
            let after = end == text.endIndex ? nil : text[end]
            if !isIdentifierCharacter(before), !isIdentifierCharacter(after) { found.append(start..<end) }
            start = end
        }
        return found
    }

    static func isIdentifierCharacter(_ character: Character?) -> Bool {
        guard let character else { return false }
        return character.isLetter || character.isNumber || character == "-" || character == "_"
    }

    static func render(_ edge: Diagram.Edge) -> String {
        guard let start = edge.points.first, let end = edge.points.last else { return "" }
        let horizontal = abs(end.x - start.x) > abs(end.y - start.y)
        let bend = horizontal ? (end.x - start.x) / 2 : (end.y - start.y) / 2
        let c1 = horizontal ? Diagram.Point(x: start.x + bend, y: start.y) : Diagram.Point(x: start.x, y: start.y + bend)
        let c2 = horizontal ? Diagram.Point(x: end.x - bend, y: end.y) : Diagram.Point(x: end.x, y: end.y - bend)
        var out = "<path class=\"edge \(edge.kind.rawValue)\" data-from=\"\(escape(edge.from))\" data-to=\"\(escape(edge.to))\" "
        out += "d=\"M\(n(start.x)),\(n(start.y)) C\(n(c1.x)),\(n(c1.y)) \(n(c2.x)),\(n(c2.y)) \(n(end.x)),\(n(end.y))\">"
        out += "<title>\(escape(edge.from)) → \(escape(edge.to))\(edge.label.map { " (\(escape($0)))" } ?? "")</title></path>\n"
        return out
    }

    /// XML text and attribute escaping.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    /// An id usable as an XML id: letters, digits, `-`, `_`, `.`; anything else becomes `_`.
    static func identifier(_ text: String) -> String {
        String(text.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : "_" })
    }

    /// A coordinate: at most one decimal, no trailing `.0`.
    static func n(_ value: Double) -> String {
        let rounded = (value * 10).rounded() / 10
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
    }
}
