import Foundation
import PlumbCore
import PlumbModelIO
import Testing

/// Mutates real inputs at random and checks that loading and importing never crash and that every failure
/// is a located diagnostic. Bounded in iterations and in time.
@Suite("Fuzzing the decoder and the importer")
struct FuzzTests {
    struct Mutator {
        var random: SplitMix64
        init(state: UInt64) { random = SplitMix64(seed: state) }
        mutating func below(_ n: Int) -> Int { random.below(n) }

        /// One random edit of the kinds people and tools make: cut, duplicate, swap lines, splice junk, retype a value.
        mutating func mutate(_ text: String) -> String {
            var lines = text.components(separatedBy: "\n")
            guard !lines.isEmpty else { return text }
            let junk = [
                "{", "}", "[", "]", ":", "-", "\"", "'", "#", "&a", "*a", "\t", "~", "null", "-1", "99999999999999999999", "0.0.0.0/0", "é", "\u{0}",
                "  ",
            ]
            switch below(7) {
            case 0: lines.remove(at: below(lines.count))
            case 1:
                let i = below(lines.count)
                lines.insert(lines[i], at: i)
            case 2: lines.swapAt(below(lines.count), below(lines.count))
            case 3:
                let i = below(lines.count)
                var line = Array(lines[i])
                line.insert(contentsOf: junk[below(junk.count)], at: below(line.count + 1))
                lines[i] = String(line)
            case 4:
                let i = below(lines.count)
                var line = Array(lines[i])
                if !line.isEmpty { line.remove(at: below(line.count)) }
                lines[i] = String(line)
            case 5:
                let i = below(lines.count)
                if let colon = lines[i].firstIndex(of: ":") { lines[i] = String(lines[i][...colon]) + " " + junk[below(junk.count)] }
            default:
                let i = below(lines.count)
                lines[i] = lines[i].replacingOccurrences(of: "10.", with: "300.")
            }
            return lines.joined(separator: "\n")
        }
    }

    @Test("mutated models: no crash, every failure located")
    func modelDecoder() async throws {
        let seeds = [
            try String(contentsOfFile: example("karma.yaml"), encoding: .utf8),
            try String(contentsOfFile: example("aws-nat-scenario.yaml"), encoding: .utf8),
        ]
        var mutator = Mutator(state: 0x5EED)
        let deadline = ContinuousClock.now + .seconds(20)
        var iterations = 0
        var invalid = 0
        while iterations < 600 && ContinuousClock.now < deadline {
            // CPU-bound: let the other tests (some of them timing-sensitive) share the two cooperative threads.
            await Task.yield()
            var text = seeds[iterations % seeds.count]
            for _ in 0...mutator.below(4) { text = mutator.mutate(text) }
            let loaded = ModelLoader.load(text: text, file: "fuzz.yaml")
            if !loaded.isValid {
                invalid += 1
                #expect(loaded.diagnostics.hasErrors)
                #expect(loaded.diagnostics.allSatisfy { $0.location.file == "fuzz.yaml" && $0.location.line >= 1 && $0.location.column >= 1 })
            } else if let topology = loaded.topology {
                _ = Network(topology).expectedMatrix()
            }
            iterations += 1
        }
        #expect(iterations >= 50)
        #expect(invalid > 0, "the mutations should break some models")
    }

    @Test("mutated describe-* files: no crash, every failure located")
    func importer() async throws {
        let files = AWSImporter.requiredFiles + AWSImporter.optionalFiles
        var originals: [String: String] = [:]
        for file in files {
            let path = (natScenarioFixture as NSString).appendingPathComponent(file)
            if let text = try? String(contentsOfFile: path, encoding: .utf8) { originals[file] = text }
        }
        var mutator = Mutator(state: 0xA115)
        let deadline = ContinuousClock.now + .seconds(20)
        var iterations = 0
        while iterations < 300 && ContinuousClock.now < deadline {
            await Task.yield()
            var documents: [String: DocumentNode] = [:]
            var parseFailures = 0
            let victim = files[mutator.below(files.count)]
            for (file, text) in originals {
                var content = text
                if file == victim { for _ in 0...mutator.below(3) { content = mutator.mutate(content) } }
                let parsed = DocumentParser.parse(content, file: file)
                if let node = parsed.node { documents[file] = node } else { parseFailures += 1 }
                #expect(parsed.node != nil || parsed.diagnostics.contains { $0.location.file == file })
            }
            let result = AWSImporter.run(documents: documents)
            if result.topology == nil {
                #expect(result.diagnostics.hasErrors)
            } else {
                _ = Validator.validate(result.topology!, sourceMap: SourceMap(file: "imported"))
            }
            iterations += 1
        }
        #expect(iterations >= 30)
    }
}
