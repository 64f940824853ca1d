import Foundation
import PlumbCore
import PlumbDiagram

/// `plumb-bench diagram [--sizes 10,200,2000,10000] [--seconds S]`: the page's drawing (layout and SVG) of generated
/// models, against encoding the same model as JSON (what `GET /v1/topology` does) measured in the same run.
enum DiagramBench {
    static func run(_ arguments: [String]) throws {
        var sizes = [10, 200, 2_000, 10_000]
        var seconds = 1.0
        var iterator = arguments.makeIterator()
        while let flag = iterator.next() {
            guard let value = iterator.next() else { fatalError("missing value after \(flag)") }
            switch flag {
            case "--sizes": sizes = value.split(separator: ",").compactMap { Int($0) }
            case "--seconds": seconds = Double(value)!
            default: fatalError("unknown option \(flag): --sizes N,N,… --seconds S")
            }
        }
        print("instances  subnets  layout+SVG (median)  JSON of the model  ratio  SVG bytes  boxes  collapsed  drawing (px)")
        for size in sizes {
            var options = Options([])
            options.instances = size
            options.subnets = min(250, max(3, size / 40))
            options.groups = max(8, min(500, size / 20))
            options.acls = max(2, min(50, size / 200))
            let topology = generate(options)
            var svg = ""
            var diagram: Diagram?
            let draw = median(seconds: seconds) {
                let layout = DiagramLayout().layout(topology)
                svg = SVGRenderer.render(layout)
                diagram = layout
            }
            let encoder = JSONEncoder()
            let json = median(seconds: seconds) { _ = try? encoder.encode(topology) }
            let boxes = diagram?.boxes.count ?? 0
            let collapsed = diagram?.boxes.filter { $0.kind == .collapsed }.count ?? 0
            print(
                String(
                    format: "%9d  %7d  %16.2f ms  %14.2f ms  %5.2f  %9d  %5d  %9d  %.0f×%.0f", size, topology.subnets.count, draw * 1000,
                    json * 1000, draw / json, svg.utf8.count, boxes, collapsed, diagram?.width ?? 0, diagram?.height ?? 0))
        }
    }

    /// The median wall time of `body` over about `seconds` (at least 5 runs).
    static func median(seconds: Double, _ body: () -> Void) -> Double {
        var times: [Double] = []
        let start = Date()
        while times.count < 5 || Date().timeIntervalSince(start) < seconds {
            let begin = DispatchTime.now().uptimeNanoseconds
            body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - begin) / 1e9)
            if times.count >= 1_000 { break }
        }
        return times.sorted()[times.count / 2]
    }
}
