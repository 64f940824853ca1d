import CoreMetrics
import Foundation
import PlumbCollector
import Prometheus
import Testing

@Suite("metrics exposition")
struct MetricsTests {
    @Test("every family gets its # HELP before its # TYPE, once, and the samples are kept")
    func helpInserted() {
        // As the collector makes them: swift-metrics handles (no help) from the factory the binaries bootstrap.
        let registry = PrometheusCollectorRegistry()
        let factory = CollectorMetrics.factory(registry: registry)
        CoreMetrics.Counter(label: "plumb_reports_ingested_total", factory: factory).increment(by: 3)
        CoreMetrics.Gauge(label: "plumb_pairs", dimensions: [("status", "agreeing")], factory: factory).record(7)
        CoreMetrics.Timer(label: "plumb_evaluation_duration_seconds", factory: factory).recordMilliseconds(4)
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        let text = addingHelp(to: buffer)
        let lines = text.split(separator: "\n").map(String.init)
        for name in ["plumb_reports_ingested_total", "plumb_pairs", "plumb_evaluation_duration_seconds"] {
            let type = lines.firstIndex { $0.hasPrefix("# TYPE \(name) ") }
            #expect(type != nil, "no TYPE for \(name)")
            if let type { #expect(lines[type - 1] == "# HELP \(name) \(metricHelp[name]!)") }
            #expect(lines.filter { $0.hasPrefix("# HELP \(name) ") }.count == 1)
        }
        #expect(lines.contains("plumb_reports_ingested_total 3"))
        #expect(lines.contains(#"plumb_pairs{status="agreeing"} 7.0"#))
        // The exposition ends with one newline, as promtool wants it.
        #expect(text.hasSuffix("\n") && !text.hasSuffix("\n\n"))
    }

    @Test("every metric the collector's sources create has a help text")
    func everyLabelHasHelp() throws {
        // The families are named in the sources as string literals (swift-metrics labels); a new one without help
        // would reach /metrics without # HELP, which promtool rejects.
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Sources/PlumbCollector")
        var names: Set<String> = []
        for file in try FileManager.default.contentsOfDirectory(atPath: sources.path) where file.hasSuffix(".swift") {
            let text = try String(contentsOf: sources.appendingPathComponent(file), encoding: .utf8)
            let regex = try NSRegularExpression(pattern: #"label: "(plumb_[a-z_]+)""#)
            for match in regex.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                names.insert(String(text[Range(match.range(at: 1), in: text)!]))
            }
            // Families named by prefix in ProbeSeries.
            for prefix in ["plumb_path", "plumb_nat", "plumb_endpoint"] where text.contains("name = \"\(prefix)\"") {
                for suffix in ["_probes_total"] { names.insert(prefix + suffix) }
                if prefix != "plumb_endpoint" {
                    for suffix in ["_rtt_seconds", "_datagrams_sent_total", "_datagrams_lost_total"] { names.insert(prefix + suffix) }
                }
            }
        }
        #expect(names.count > 20)
        for name in names.sorted() { #expect(metricHelp[name] != nil, "\(name) has no entry in metricHelp") }
    }
}
