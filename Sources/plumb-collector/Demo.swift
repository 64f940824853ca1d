import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Metrics
import PlumbAgent
import PlumbCollector
import PlumbCore
import PlumbFakes
import PlumbModelIO
import PlumbProbes
import Prometheus
import ServiceLifecycle
import Synchronization
import UnixSignals

/// `plumb-collector demo`: the main job on one machine, without root and without setup.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the local demo: a collector on SQLite, an agent per instance of examples/demo.yaml on loopback addresses, "
            + "an injected fault, the alert, its signed webhook, and the repair.")

    @Option(help: "The demo model.") var model = "examples/demo.yaml"
    @Option(help: "Seconds to wait for each step before giving up.") var stepTimeout: Double = 60
    @Flag(help: "Keep the demo's directory (database, spools) afterwards.") var keep = false
    @Option(help: "The collector's port on 127.0.0.1 (default: a free one).") var port: Int?
    @Option(help: "Seconds to keep everything running after the script, to look at the page (GET /) and /metrics.") var hold: Double = 0
    @Flag(help: "Leave the fault in place (no repair), so the hold shows the alert.") var keepFault = false
    @Option(help: "Write {\"url\", \"token\"} to this file once the script is done (for scripts driving the hold).") var readyFile: String?
    @Option(help: "Failed authentications a source may make before it is slowed (limits.authFailuresPerSource; an API fuzzer needs many).")
    var authFailuresPerSource: Double?

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .error
            return handler
        }
        let logger = Logger(label: "plumb-demo")
        let loaded = ModelLoader.load(path: model)
        guard let topology = loaded.topology, loaded.isValid else {
            throw ValidationError(
                "\(model) is not a valid model (run from the repository root): \(loaded.diagnostics.map(\.description).joined(separator: "; "))")
        }
        let directory = NSTemporaryDirectory() + "plumb-demo-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { if !keep { try? FileManager.default.removeItem(atPath: directory) } }
        let started = ContinuousClock.now
        func say(_ text: String) {
            let seconds = Double((ContinuousClock.now - started) / .milliseconds(100)) / 10
            print(String(format: "[%5.1fs] ", seconds) + text)
            fflush(nil)  // each step as it happens, also into a pipe or a file
        }

        // The services outside the VPC: S3 and SQS stand-ins, and a webhook receiver that checks signatures.
        let endpoints = try topology.endpoints.map { endpoint -> (String, String, Int) in
            guard endpoint.url != nil, let address = endpoint.addresses?.first?.network.description, let port = endpoint.port else {
                throw ValidationError("endpoint \(endpoint.id) needs url, addresses and port in the demo model")
            }
            return (endpoint.id, address, port)
        }
        let standIns = StandIns()
        for (id, address, port) in endpoints {
            let server = try MiniHTTPServer(address: address, port: port) { _ in .text("\(id) ok\n") }
            standIns.servers.withLock { $0[id] = server }
        }
        let secret = "demo-webhook-secret"
        let inbox = DemoInbox()
        let receiver = try MiniHTTPServer { request in
            let timestamp = request.headers["plumb-timestamp"] ?? ""
            let expected = WebhookPayload.signature(body: request.body, secret: secret, timestamp: Int64(timestamp) ?? 0)
            inbox.add(event: request.headers["plumb-event"] ?? "?", body: request.text, verified: request.headers["plumb-signature"] == expected)
            return .text("thanks\n")
        }
        defer { receiver.stop() }

        // The collector, on SQLite, with the model and the receiver.
        var configuration = CollectorConfiguration()
        configuration.modelPath = model
        configuration.database = directory + "/plumb.sqlite"
        configuration.host = "127.0.0.1"
        configuration.port = port ?? freeTCPPort()
        if let authFailuresPerSource { configuration.authFailuresPerSource = authFailuresPerSource }
        configuration.operatorToken = "demo-operator-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        configuration.enrollmentToken = "demo-enrollment-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        configuration.receivers = [Receiver(name: "demo-receiver", url: receiver.url + "/plumb", format: .plumb, secret: secret)]
        configuration.evaluationIntervalSeconds = 1
        configuration.silenceSeconds = 20
        configuration.reportIntervalMs = 1_000
        configuration.planRefreshMs = 2_000
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(CollectorMetrics.factory(registry: registry))
        let app = try await buildApplication(configuration: configuration, logger: logger, registry: registry)
        let collectorURL = "http://127.0.0.1:\(configuration.port)"

        // One agent per instance, its responder on the instance's address.
        var services: [any Service] = [app]
        for instance in topology.instances {
            guard let primary = instance.interfaces.min(by: { ($0.deviceIndex ?? 0) < ($1.deviceIndex ?? 0) }) else { continue }
            var agent = AgentConfiguration()
            agent.collectorURL = collectorURL
            agent.enrollmentToken = configuration.enrollmentToken
            agent.agentId = instance.id
            agent.identity.instanceId = instance.id
            agent.responderAddress = primary.privateIp.description
            agent.responderPort = 7471
            agent.spoolDirectory = directory + "/agent-\(instance.id)"
            agent.imdsEnabled = false
            services.append(AgentService(configuration: agent, version: "demo", logger: logger))
        }
        let group = ServiceGroup(
            configuration: .init(services: services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        let api = DemoAPI(base: collectorURL, token: configuration.operatorToken!)

        say(
            "Plumb demo: collector on \(collectorURL) (SQLite \(configuration.sqlitePath)), \(services.count - 1) agents on 127.0.x.x, model \(model)"
        )
        let stopped = DemoFlag()
        let outcome: Result<Void, any Error> = await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                try? await group.run()
                stopped.value.store(true, ordering: .relaxed)
            }
            let result: Result<Void, any Error>
            do {
                try await script(api: api, standIns: standIns, inbox: inbox, say: say)
                if hold > 0 {
                    let page = "\(collectorURL)/?token=\(configuration.operatorToken!)"
                    if let readyFile {
                        let ready = try JSONSerialization.data(withJSONObject: ["url": collectorURL, "token": configuration.operatorToken!])
                        try ready.write(to: URL(fileURLWithPath: readyFile), options: .atomic)
                    }
                    say("Holding for \(Int(hold)) s (Ctrl-C ends it). The page: \(page)  Metrics: \(collectorURL)/metrics")
                    let until = ContinuousClock.now + .milliseconds(Int(hold * 1000))
                    while ContinuousClock.now < until && !stopped.value.load(ordering: .relaxed) { try await Task.sleep(for: .milliseconds(200)) }
                }
                result = .success(())
            } catch {
                result = .failure(error)
            }
            await group.triggerGracefulShutdown()
            await tasks.waitForAll()
            return result
        }
        standIns.servers.withLock { $0.values.forEach { $0.stop() } }
        switch outcome {
        case .success: say("Done. Stopped the agents and the collector\(keep ? "; kept \(directory)" : "").")
        case .failure(let error):
            say("The demo failed: \(error)")
            throw ExitCode(1)
        }
    }

    private func script(api: DemoAPI, standIns: StandIns, inbox: DemoInbox, say: (String) -> Void) async throws {
        let timeout = Duration.milliseconds(Int(stepTimeout * 1000))
        say("Waiting for the agents to register, fetch their plans and agree with the model…")
        let matrix = try await waitFor("every planned pair agrees with the model", timeout: timeout) { () -> [String: Any]? in
            guard let matrix = await api.get("/v1/matrix"), let pairs = matrix["pairs"] as? [[String: Any]], !pairs.isEmpty,
                (matrix["unknown"] as? Int) == 0, (matrix["disagreeing"] as? Int) == 0
            else { return nil }
            return matrix
        }
        let pairs = (matrix["pairs"] as? [[String: Any]]) ?? []
        say("Live matrix: \(pairs.count) planned pairs, all agree with the model (expected = observed):")
        print(String(repeating: " ", count: 9) + "source     target       purpose         probe          expected  observed")
        for pair in pairs.prefix(40) {
            let port = (pair["port"] as? Int).map { ":\($0)" } ?? ""
            print(
                "         \(pad(pair["source"], 10)) \(pad(pair["target"], 12)) \(pad(pair["purpose"], 15)) \(pad("\(pair["kind"] ?? "")\(port)", 14)) "
                    + "\(pad(pair["expected"], 9)) \(pad(pair["observed"], 8))")
        }

        say("Injecting a fault: the S3 endpoint stops answering.")
        let faultAt = ContinuousClock.now
        standIns.servers.withLock { $0["s3"]?.stop() }
        let alert = try await waitFor("an alert fires", timeout: timeout) { () -> [String: Any]? in
            guard let list = await api.get("/v1/alerts?status=firing"), let alerts = list["alerts"] as? [[String: Any]] else { return nil }
            return alerts.first
        }
        let id = alert["id"] as? String ?? ""
        say(
            "ALERT \(alert["severity"] ?? "") \(alert["kind"] ?? "") blaming \(alert["componentType"] ?? "") \(alert["component"] ?? "") after "
                + "\(seconds(since: faultAt)) s: \(alert["summary"] ?? "")")
        for line in ((alert["evidence"] as? [String]) ?? []).prefix(4) { print("         evidence: \(line)") }
        if let detail = await api.get("/v1/alerts/\(id)"), let explanation = detail["explanation"] as? [String: Any],
            let hops = explanation["hops"] as? [[String: Any]]
        {
            print("         intended path \(explanation["source"] ?? "") → \(explanation["destination"] ?? ""):")
            for hop in hops.prefix(8) { print("           \(pad(hop["component"], 14)) \(hop["detail"] ?? "")") }
        }
        let firing = try await waitFor("the webhook for the firing alert", timeout: timeout) { () -> DemoInbox.Delivery? in
            inbox.deliveries.first { $0.event == "firing" }
        }
        say("Webhook received (\(firing.event)), signature \(firing.verified ? "verified" : "WRONG"): \(firing.body.prefix(160))…")
        guard firing.verified else { throw DemoFailure(description: "the webhook signature did not verify") }

        if keepFault {
            say("Leaving the fault in place (--keep-fault).")
            return
        }
        say("Repairing: S3 answers again.")
        let repairAt = ContinuousClock.now
        try standIns.servers.withLock { servers in
            servers["s3"] = try MiniHTTPServer(address: "127.0.9.10", port: 8080) { _ in .text("s3 ok\n") }
        }
        _ = try await waitFor("the alert resolves", timeout: timeout) { () -> Bool? in
            guard let list = await api.get("/v1/alerts?status=resolved"), let alerts = list["alerts"] as? [[String: Any]] else { return nil }
            return alerts.contains { $0["id"] as? String == id } ? true : nil
        }
        say("RESOLVED \(alert["kind"] ?? "") on \(alert["component"] ?? "") after \(seconds(since: repairAt)) s.")
        let resolved = try await waitFor("the webhook for the resolution", timeout: timeout) { () -> DemoInbox.Delivery? in
            inbox.deliveries.first { $0.event == "resolved" }
        }
        say("Webhook received (\(resolved.event)), signature \(resolved.verified ? "verified" : "WRONG").")
    }

    private func waitFor<T>(_ what: String, timeout: Duration, _ check: () async -> T?) async throws -> T {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let value = await check() { return value }
            try await Task.sleep(for: .milliseconds(500))
        }
        throw DemoFailure(description: "timed out waiting for \(what)")
    }

    private func seconds(since start: ContinuousClock.Instant) -> String {
        String(format: "%.1f", Double((ContinuousClock.now - start) / .milliseconds(100)) / 10)
    }

    private func pad(_ value: Any?, _ width: Int) -> String {
        let text = value.map { "\($0)" } ?? ""
        return text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }
}

struct DemoFailure: Error, CustomStringConvertible { var description: String }

/// Set when the services stopped (a signal during the hold).
final class DemoFlag: Sendable {
    let value = Atomic<Bool>(false)
}

/// The endpoint stand-ins, by endpoint id.
final class StandIns: Sendable {
    let servers = Mutex<[String: MiniHTTPServer]>([:])
}

/// What the demo's webhook receiver got.
final class DemoInbox: Sendable {
    struct Delivery: Sendable {
        var event: String
        var body: String
        var verified: Bool
    }

    private let state = Mutex<[Delivery]>([])

    func add(event: String, body: String, verified: Bool) { state.withLock { $0.append(Delivery(event: event, body: body, verified: verified)) } }

    var deliveries: [Delivery] { state.withLock { $0 } }
}

/// The operator side of the API, as a user would call it.
struct DemoAPI: Sendable {
    var base: String
    var token: String

    func get(_ path: String) async -> [String: Any]? {
        let response = await Curl.perform(
            PlumbProbes.HTTPRequest(url: base + path, headers: [("Authorization", "Bearer \(token)")], timeoutMs: 5_000))
        guard response.failure == nil, response.status == 200 else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any]
    }
}
