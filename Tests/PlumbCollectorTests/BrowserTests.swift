import Foundation
import PlumbCore
import PlumbModelIO
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Debian's chromium, headless: the page of a running collector as an operator's browser builds it.
enum Browser {
    static let path: String? = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
    /// CI sets this: there a missing browser fails the test instead of skipping it.
    static let required = ProcessInfo.processInfo.environment["PLUMB_REQUIRE_BROWSER"] == "1"

    /// The DOM after the page's scripts ran (`--dump-dom`), or a screenshot. Name resolution is mapped to nothing but
    /// loopback and background networking is off: the browser sends nothing beyond 127.0.0.1.
    static func run(_ url: String, directory: String, screenshot: String? = nil) async throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path!)
        var arguments = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions", "--no-pings",
            "--disable-domain-reliability", "--disable-client-side-phishing-detection", "--user-data-dir=\(directory)/chromium",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--window-size=1600,1000", "--virtual-time-budget=10000",
        ]
        if let screenshot { arguments.append("--screenshot=\(screenshot)") } else { arguments.append("--dump-dom") }
        process.arguments = arguments + [url]
        let output = URL(fileURLWithPath: directory + "/chromium-\(UUID().uuidString).out")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        let handle = try FileHandle(forWritingTo: output)
        defer { try? handle.close() }
        process.standardOutput = handle
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        // Polled with Task.sleep: a blocked thread would starve the cooperative pool the other tests run on.
        while process.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            throw BrowserError(description: "chromium did not finish within 60 s")
        }
        return (try? String(contentsOf: output, encoding: .utf8)) ?? ""
    }
}

struct BrowserError: Error, CustomStringConvertible { var description: String }

/// `plumb-collector demo --hold --keep-fault`: a real collector fed by real agents, with an alert firing.
final class HeldDemo {
    let process = Process()
    let directory: String
    let url: String
    let token: String

    init() async throws {
        directory = NSTemporaryDirectory() + "plumb-browser-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var candidates: [URL] = []
        if let bundle = Bundle.allBundles.first(where: { $0.bundlePath.hasSuffix(".xctest") }) {
            candidates.append(URL(fileURLWithPath: bundle.bundlePath).deletingLastPathComponent().appendingPathComponent("plumb-collector"))
        }
        candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("plumb-collector"))
        guard let binary = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw BrowserError(description: "plumb-collector is not built beside the test bundle (swift build --build-tests)")
        }
        let ready = directory + "/ready.json"
        process.executableURL = binary
        process.currentDirectoryURL = repositoryRoot
        process.arguments = [
            "demo", "--model", repositoryRoot.appendingPathComponent("examples/demo.yaml").path, "--hold", "300", "--keep-fault", "--ready-file",
            ready, "--step-timeout", "200",
        ]
        let log = URL(fileURLWithPath: directory + "/demo.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        // The rest of the suite runs meanwhile on two cores: the demo's pairs may take a while to agree all at once.
        let deadline = Date().addingTimeInterval(420)
        while !FileManager.default.fileExists(atPath: ready) {
            guard process.isRunning, Date() < deadline else {
                let printed = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
                if process.isRunning {
                    process.terminate()
                    process.waitUntilExit()
                }
                try? FileManager.default.removeItem(atPath: directory)
                throw BrowserError(description: "the demo did not get to its hold: \(printed.suffix(2_000))")
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        let document = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: ready))) as? [String: String]
        url = document?["url"] ?? ""
        token = document?["token"] ?? ""
    }

    func get(_ path: String) async throws -> [String: Any] {
        var request = URLRequest(url: URL(string: url + path)!)
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        let (data, _) = try await URLSession.shared.data(for: request)
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }

    func stop() {
        if process.isRunning {
            process.terminate()  // SIGTERM: the demo stops its agents and collector gracefully
            let deadline = Date().addingTimeInterval(20)
            while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

@Suite("the page in a real browser", .serialized, .enabled(if: Browser.path != nil || Browser.required, "chromium is not installed"))
struct BrowserTests {
    @Test("chromium builds the page of a live collector: every component drawn, the blamed one marked, the explanation filled")
    func page() async throws {
        guard Browser.path != nil else {
            Issue.record("chromium is required here (PLUMB_REQUIRE_BROWSER=1): apt-get install chromium")
            return
        }
        let demo = try await HeldDemo()
        defer { demo.stop() }
        let overview = try await demo.get("/v1/overview")
        let alerts = try #require(overview["alerts"] as? [[String: Any]])
        let alert = try #require(alerts.first, "the demo holds with its fault in place, so an alert fires")
        let alertId = try #require(alert["id"] as? String)
        let component = try #require(alert["component"] as? String)

        // Signed in by ?token= (the redirect drops it, the cookie carries it), the alert selected by the address.
        let dom = try await Browser.run("\(demo.url)/?token=\(demo.token)#alert=\(alertId)", directory: demo.directory)
        #expect(!dom.contains("action=\"/login\""), "the browser was not signed in")
        let topology = try #require(ModelLoader.load(path: repositoryRoot.appendingPathComponent("examples/demo.yaml").path).topology)
        for id in topology.subnets.map(\.id) + topology.instances.map(\.id) + topology.nats.map(\.id) + topology.endpoints.map(\.id) {
            #expect(elements(in: dom, component: id).count > 0, "\(id) is not in the DOM")
        }
        // The blamed component is marked by the script from /v1/overview, and nothing the alert does not blame is.
        let blamed = elements(in: dom, component: component).filter { $0.classes.contains("blamed") }
        #expect(!blamed.isEmpty, "\(component) is not marked blamed")
        let marked = Set(allElements(in: dom).filter { $0.classes.contains("blamed") }.flatMap(\.components))
        #expect(marked.isSubset(of: Set([component] + (overview["blamed"] as? [String: Any] ?? [:]).keys)), "marked: \(marked)")
        #expect(dom.contains("id=\"live\" class=\"ok\""), "the page is not polling the API")
        #expect(dom.contains("data-alert=\"\(alertId)\""), "the alert is not in the side panel")
        // The explanation panel: the alert's evidence and the hop-by-hop path from /v1/alerts/{id}.
        #expect(dom.contains("<h3>Evidence</h3>"))
        #expect(dom.contains("<table class=\"hops\">") && dom.contains("<td class=\"pass\">"), "the explanation panel is empty")

        // Can A reach B: the model's verdict and what the agents observed.
        let ask = try await Browser.run("\(demo.url)/?token=\(demo.token)#ask=app-1,db,5432,tcp", directory: demo.directory)
        #expect(ask.contains("data-verdict=\"allowed\""), "no verdict for app-1 → db:5432")
        #expect(ask.contains("<h3>The agents observed</h3>"))

        // The screenshot, kept as a CI artefact.
        let artefacts = ProcessInfo.processInfo.environment["PLUMB_ARTIFACTS"] ?? repositoryRoot.appendingPathComponent(".build/artifacts").path
        try FileManager.default.createDirectory(atPath: artefacts, withIntermediateDirectories: true)
        _ = try await Browser.run("\(demo.url)/?token=\(demo.token)#alert=\(alertId)", directory: demo.directory, screenshot: artefacts + "/page.png")
        #expect(FileManager.default.fileExists(atPath: artefacts + "/page.png"))
    }

    struct Element {
        var classes: [String]
        var components: [String]
    }

    /// Every element with a `data-component`, with its classes (as chromium serialises them: class before data-*).
    func allElements(in dom: String) -> [Element] {
        let regex = try! NSRegularExpression(pattern: #"<(?:g|tspan)\b[^>]*?class="([^"]*)"[^>]*?data-component="([^"]*)""#)
        return regex.matches(in: dom, range: NSRange(dom.startIndex..., in: dom)).map { match in
            Element(
                classes: String(dom[Range(match.range(at: 1), in: dom)!]).split(separator: " ").map(String.init),
                components: String(dom[Range(match.range(at: 2), in: dom)!]).split(separator: " ").map(String.init))
        }
    }

    func elements(in dom: String, component: String) -> [Element] {
        allElements(in: dom).filter { $0.components.contains(component) }
    }
}
