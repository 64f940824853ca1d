import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PlumbCollector
import PlumbCore
import PlumbProbes
import PlumbStore
import PlumbTestSupport
import PlumbWire
import Prometheus
import Testing

/// Hostile input at the door (issue 23): the token before the body, JSON parsed as JSON, media types and UTF-8
/// checked, model documents parsed at a bounded cost, failed authentications counted and slowed.
@Suite("hostile input: the token first, JSON as JSON, bounded models, slowed failures")
struct HostileInputTests {
    static let operatorAuth: HTTPFields = [.authorization: "Bearer operator-secret"]

    func app(_ harness: Harness) -> some ApplicationProtocol {
        Application(router: buildRouter(collector: harness.collector, configuration: harness.configuration, registry: PrometheusCollectorRegistry()))
    }

    func errorCode(_ response: TestResponse) -> String? {
        (try? JSONDecoder().decode(ErrorBody.self, from: Data(response.body.readableBytesView)))?.error.code
    }

    /// 2^levels copies of one value from a few hundred bytes.
    static func aliasBomb(levels: Int) -> String {
        var text = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n"
        for level in 1...levels {
            let previous = "*a\(level - 1)"
            text += "a\(level): &a\(level) [\(Array(repeating: previous, count: 9).joined(separator: ", "))]\n"
        }
        return text
    }

    @Test("registration: a wrong token is refused before the body is read, however large or hostile")
    func registrationTokenFirst() async throws {
        let harness = try await Harness.make()
        defer { harness.cleanup() }
        try await app(harness).test(.router) { client in
            let bomb = Self.aliasBomb(levels: 9)
            let array = "[" + Array(repeating: "1", count: 1_000_000).joined(separator: ",") + "]"
            for body in [bomb, array] {
                let started = ContinuousClock.now
                let response = try await client.execute(
                    uri: "/v1/agents/register", method: .post, headers: [.authorization: "Bearer wrong"], body: ByteBuffer(string: body))
                #expect(response.status == .unauthorized)
                #expect(ContinuousClock.now - started < .seconds(1))
            }
            // With the enrollment token, a body that is YAML rather than JSON is refused as not JSON (no alias is
            // ever expanded), and a body over 64 KiB is too large.
            let yaml = try await client.execute(
                uri: "/v1/agents/register", method: .post, headers: [.authorization: "Bearer enroll-secret"], body: ByteBuffer(string: bomb))
            #expect(yaml.status == .badRequest)
            #expect(errorCode(yaml) == "invalid_json")
            let large = try await client.execute(
                uri: "/v1/agents/register", method: .post, headers: [.authorization: "Bearer enroll-secret"], body: ByteBuffer(string: array))
            #expect(large.status == .contentTooLarge)
        }
    }

    @Test("registration and acknowledgement: emoji as escaped surrogate pairs are accepted; invalid UTF-8 and other media types are not")
    func textAndMediaTypes() async throws {
        let harness = try await Harness.make()
        defer { harness.cleanup() }
        try await app(harness).test(.router) { client in
            var document = String(decoding: try JSONEncoder().encode(registration("i-db")), as: UTF8.self)
            document = document.replacingOccurrences(of: #""agentVersion":"test""#, with: #""agentVersion":"test \ud83d\ude80 \\ud83d""#)
            let enroll: HTTPFields = [.authorization: "Bearer enroll-secret", .contentType: "application/json"]
            let registered = try await client.execute(uri: "/v1/agents/register", method: .post, headers: enroll, body: ByteBuffer(string: document))
            #expect(registered.status == .ok, "\(String(buffer: registered.body))")
            #expect(try await harness.store.agent(id: "i-db")?.registration.agentVersion == "test 🚀 \\ud83d")

            var invalid = ByteBuffer(bytes: Array(try JSONEncoder().encode(registration("i-app-1"))))
            invalid.setBytes([0xC3, 0x28], at: 20)
            let badText = try await client.execute(uri: "/v1/agents/register", method: .post, headers: enroll, body: invalid)
            #expect(badText.status == .badRequest)
            #expect(errorCode(badText) == "invalid_utf8")

            let form = try await client.execute(
                uri: "/v1/agents/register", method: .post,
                headers: [.authorization: "Bearer enroll-secret", .contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: document))
            #expect(form.status == .unsupportedMediaType)
            #expect(String(buffer: form.body).contains("application/json"))

            let xml = try await client.execute(
                uri: "/v1/topology/validate", method: .post, headers: [.authorization: "Bearer operator-secret", .contentType: "application/xml"],
                body: ByteBuffer(string: "<vpc/>"))
            #expect(xml.status == .unsupportedMediaType)

            // Acknowledge: an emoji name through escapes.
            let ack = try await client.execute(
                uri: "/v1/alerts/none/acknowledge", method: .post,
                headers: [.authorization: "Bearer operator-secret", .contentType: "application/json"],
                body: ByteBuffer(string: #"{"by": "al\u00efce \ud83d\udc4d"}"#))
            #expect(ack.status == .notFound, "the body was read: only the alert is missing (\(String(buffer: ack.body)))")
        }
    }

    @Test("reports: invalid UTF-8 is refused with 400, never stored with replacement characters")
    func reportUTF8() async throws {
        let harness = try await Harness.make()
        defer { harness.cleanup() }
        let tokens = try await harness.registerAll(["i-app-1"])
        try await app(harness).test(.router) { client in
            let now = wallClockMilliseconds()
            let plan = try await harness.collector.plan(agentId: "i-app-1").plan
            var report = Report(agentId: "i-app-1", sequence: 1, createdAtMs: now, results: [result(for: plan.probes[0], agrees: true, at: now)])
            report.results[0].detail = "MARK"
            var bytes = Array(try JSONEncoder().encode(report))
            let mark = Array("MARK".utf8)
            let at = try #require((0...(bytes.count - 4)).first { Array(bytes[$0..<$0 + 4]) == mark })
            bytes.replaceSubrange(at..<at + 4, with: [0x41, 0xFF, 0xFE, 0x42])
            let response = try await client.execute(
                uri: "/v1/agents/i-app-1/reports", method: .post, headers: [.authorization: "Bearer \(tokens["i-app-1"]!)"],
                body: ByteBuffer(bytes: bytes))
            #expect(response.status == .badRequest)
            #expect(errorCode(response) == "invalid_utf8")
            #expect(try await harness.store.results(agentId: "i-app-1", since: .min, limit: 10).isEmpty)
        }
    }

    @Test("topology documents: an alias bomb and a huge array are refused quickly with a diagnostic; ordinary aliases still read")
    func boundedModels() async throws {
        let harness = try await Harness.make()
        defer { harness.cleanup() }
        try await app(harness).test(.router) { client in
            for (name, body, code) in [
                ("alias bomb", Self.aliasBomb(levels: 10), "too-large"),
                ("a million-value array", "[" + Array(repeating: "1", count: 1_100_000).joined(separator: ",") + "]", "too-large"),
                ("an alias as a key", "a: &k [1, 2]\n*k : 3\n", "malformed"),
            ] {
                let started = ContinuousClock.now
                let response = try await client.execute(
                    uri: "/v1/topology/validate", method: .post, headers: Self.operatorAuth, body: ByteBuffer(string: body))
                let elapsed = ContinuousClock.now - started
                #expect(response.status == .ok, "\(name)")
                let text = String(buffer: response.body)
                #expect(text.contains(code), "\(name): \(text.prefix(300))")
                #expect(elapsed < .seconds(3), "\(name) took \(elapsed)")
            }
            // The karma model with an anchor and an alias for its tags reads as before.
            var text = try String(contentsOfFile: karmaPath, encoding: .utf8)
            text += "\n# aliases are still read\n"
            let validated = try await client.execute(
                uri: "/v1/topology/validate", method: .post, headers: Self.operatorAuth, body: ByteBuffer(string: text))
            #expect(String(buffer: validated.body).contains(#""valid":true"#))
        }
    }

    @Test("failed authentications are counted per route and a source that keeps failing is slowed with 429 and Retry-After")
    func authFailuresSlowed() async throws {
        let harness = try await Harness.make()
        defer { harness.cleanup() }
        try await app(harness).test(.router) { client in
            // 20 failures are free; the bucket refills one a second, so on a busy machine a few more may pass first.
            var statuses: [HTTPResponse.Status] = []
            while statuses.count < 200, statuses.last != .tooManyRequests {
                statuses.append(try await client.execute(uri: "/v1/agents", method: .get, headers: [.authorization: "Bearer nope"]).status)
            }
            #expect(statuses.prefix(20).allSatisfy { $0 == .forbidden })
            #expect(statuses.last == .tooManyRequests)
            // Slowed, the source gets 429 whatever it sends, a right token too, until a failure's worth has refilled
            // (a second): tried right after a 429 (again, if the machine was too busy to do it within that second).
            var slowedSeen = false
            for _ in 0..<20 where !slowedSeen {
                while try await client.execute(uri: "/v1/agents", method: .get, headers: [.authorization: "Bearer nope"]).status != .tooManyRequests {
                }
                let slowed = try await client.execute(uri: "/v1/agents", method: .get, headers: Self.operatorAuth)
                if slowed.status == .tooManyRequests {
                    slowedSeen = true
                    #expect(slowed.headers[.retryAfter] != nil)
                    #expect(slowed.headers[HTTPField.Name("X-Plumb-Auth-Failure")!] == nil)
                } else {
                    #expect(slowed.status == .ok)
                }
            }
            #expect(slowedSeen, "the source is slowed whatever it sends")
            // Health is never slowed.
            #expect(try await client.execute(uri: "/healthz", method: .get).status == .ok)
        }
    }
}

/// A PostgreSQL that stops answering (issue 23): requests answer 503 with Retry-After within the store timeout,
/// `/readyz` within a second, descriptors stay bounded, and reports are stored again once it answers.
@Suite("store outage: 503 in time, not a hang", .enabled(if: TestPostgres.url != nil), .serialized)
struct StoreOutageTests {
    @Test("200 reports in flight during a PostgreSQL outage: each 503 with Retry-After within the deadline; /readyz in a second; fds bounded")
    func outage() async throws {
        let server = try #require(TestPostgres.url)
        let name = "plumb_outage_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        _ = try await PostgresStore.maintenance(url: server, ["CREATE DATABASE \(name)"], logger: quiet)
        defer { Task { _ = try? await PostgresStore.maintenance(url: server, ["DROP DATABASE IF EXISTS \(name) WITH (FORCE)"], logger: quiet) } }
        let direct = try #require(TestPostgres.url(database: name))
        var components = try #require(URLComponents(string: direct))
        let proxy = try TCPProxy(upstreamPort: try #require(components.port))
        defer { proxy.stop() }
        components.port = proxy.port
        let url = try #require(components.string)

        var configuration = CollectorConfiguration()
        configuration.modelPath = karmaPath
        configuration.database = url
        configuration.operatorToken = "operator-secret"
        configuration.enrollmentToken = "enroll-secret"
        configuration.storeTimeoutSeconds = 2
        configuration.maxReportsPerSecondPerAgent = 1_000
        let store = try await PostgresStore.open(url: url, passwordFile: nil, logger: quiet)
        let collector = Collector(store: store, configuration: configuration, logger: quiet, collectorId: "outage")
        try await collector.start(now: wallClockMilliseconds())
        let registered = try await collector.register(registration("i-app-1"), bearer: "enroll-secret", now: wallClockMilliseconds())
        let plan = try await collector.plan(agentId: "i-app-1").plan
        // Real sockets: each request on its own connection, as 200 agents would.
        let app = Application(
            router: buildRouter(collector: collector, configuration: configuration, registry: PrometheusCollectorRegistry()),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        do {
            try await app.test(.live) { client in
                let auth: HTTPFields = [.authorization: "Bearer \(registered.agentToken)", .contentType: "application/json"]
                func report(_ sequence: Int64) throws -> ByteBuffer {
                    let now = wallClockMilliseconds()
                    return ByteBuffer(
                        bytes: try JSONEncoder().encode(
                            Report(
                                agentId: "i-app-1", sequence: sequence, createdAtMs: now,
                                results: [result(for: plan.probes[0], agrees: true, at: now)])))
                }
                // Before the outage the store answers (on a machine busy with the rest of the suite, perhaps not within
                // the first 2 s: then the agent's retry).
                var first = HTTPResponse.Status.serviceUnavailable
                for _ in 0..<10 where first != .ok {
                    first = try await client.execute(uri: "/v1/agents/i-app-1/reports", method: .post, headers: auth, body: report(1)).status
                }
                #expect(first == .ok)
                let descriptorsBefore = openDescriptors()
                proxy.blackhole()
                // 200 agents at once, each on its own connection (the test client has one): raw HTTP/1.1 over sockets.
                let port = try #require(client.port)
                var pending: [(fd: Int32, started: ContinuousClock.Instant)] = []
                for sequence in Int64(2)...201 {
                    let body = try report(sequence)
                    let head =
                        "POST /v1/agents/i-app-1/reports HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(registered.agentToken)\r\n"
                        + "Content-Type: application/json\r\nContent-Length: \(body.readableBytes)\r\nConnection: close\r\n\r\n"
                    pending.append((try Self.send(port: port, bytes: Array(head.utf8) + Array(body.readableBytesView)), .now))
                }
                // The answers are read on a thread of their own: a blocking read on one of the few cooperative threads
                // would starve the server it waits for.
                let requests = pending
                let readings = await withCheckedContinuation { (continuation: CheckedContinuation<[(Int, Duration, String?)], Never>) in
                    Thread {
                        var readings: [(Int, Duration, String?)] = []
                        for (fd, started) in requests {
                            let text = Self.readAll(fd)
                            let status = text.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) } ?? 0
                            let retryAfter = text.split(separator: "\r\n").first { $0.lowercased().hasPrefix("retry-after:") }.map(String.init)
                            readings.append((status, ContinuousClock.now - started, retryAfter))
                        }
                        continuation.resume(returning: readings)
                    }.start()
                }
                let answers = readings.map { (HTTPResponse.Status(code: $0.0), $0.1, $0.2) }
                #expect(answers.count == 200)
                #expect(answers.allSatisfy { $0.0 == .serviceUnavailable }, "\(Set(answers.map(\.0.code)))")
                #expect(answers.allSatisfy { $0.2 != nil }, "Retry-After on every 503")
                let slowest = answers.map(\.1).max() ?? .zero
                // The store's wait is 2 s; alone this run answers within ~2.1 s. The bound leaves room for a machine busy with
                // the rest of the suite (2 cores) and stays under the 15 s a read waits: a request held for the outage
                // would never be answered at all.
                #expect(slowest < .seconds(12), "the slowest answer took \(slowest)")
                let startedReady = ContinuousClock.now
                let ready = try await client.execute(uri: "/readyz", method: .get)
                let readyTook = ContinuousClock.now - startedReady
                #expect(ready.status == .serviceUnavailable)
                // 0.8 s of waiting for the store; alone it answers in 0.80 s, under the whole suite's load a little later.
                #expect(readyTook < .seconds(3))
                let descriptorsAfter = openDescriptors()
                #expect(descriptorsAfter - descriptorsBefore < 40, "descriptors \(descriptorsBefore) -> \(descriptorsAfter)")
                // The figures, for the record (docs/security.md quotes them).
                print(
                    "store outage: 200 reports answered 503 in at most \(slowest) (median \(answers.map(\.1).sorted()[100])), /readyz 503 in \(readyTook), descriptors \(descriptorsBefore) -> \(descriptorsAfter)"
                )
                // The database answers again: the agent's next send is stored.
                proxy.restore()
                var stored = false
                for attempt in 0..<20 where !stored {
                    let response = try await client.execute(uri: "/v1/agents/i-app-1/reports", method: .post, headers: auth, body: report(202))
                    stored = response.status == .ok
                    if !stored { try await Task.sleep(for: .milliseconds(250 * (attempt + 1))) }
                }
                #expect(stored)
            }
        } catch {
            Issue.record("the outage run failed: \(error)")
        }
        await collector.resign()
        await store.close()
    }

    /// Connects to 127.0.0.1:`port` and sends `bytes`; the socket is returned open for the answer.
    static func send(port: Int, bytes: [UInt8]) throws -> Int32 {
        guard let fd = connectLoopback(port: port) else { throw POSIXError(.ECONNREFUSED) }
        var timeout = timeval(tv_sec: 15, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        return fd
    }

    /// Reads until the peer closes (or 15 s pass), then closes the socket.
    static func readAll(_ fd: Int32) -> String {
        defer { close(fd) }
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(fd, &buffer, buffer.count)
            guard count > 0 else { break }
            data += buffer[0..<count]
        }
        return String(decoding: data, as: UTF8.self)
    }

    func openDescriptors() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
    }
}
