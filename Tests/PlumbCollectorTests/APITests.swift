import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import PlumbCollector
import PlumbCore
import PlumbModelIO
import PlumbProbes
import PlumbStore
import PlumbWire
import Prometheus
import Testing

@Suite("the collector API")
struct APITests {
    func app(_ harness: Harness) -> some ApplicationProtocol {
        Application(router: buildRouter(collector: harness.collector, configuration: harness.configuration, registry: PrometheusCollectorRegistry()))
    }

    static let operatorAuth: HTTPFields = [.authorization: "Bearer operator-secret"]

    func body(_ value: some Encodable) throws -> ByteBuffer { ByteBuffer(bytes: try JSONEncoder().encode(value)) }

    func errorCode(_ response: TestResponse) -> String? {
        (try? JSONDecoder().decode(ErrorBody.self, from: Data(response.body.readableBytesView)))?.error.code
    }

    @Test("register, plan with ETag and 304, report once, replay acknowledged but not stored twice")
    func agentFlow() async throws {
        let harness = try await Harness.make()
        defer { harness.cleanup() }
        try await app(harness).test(.router) { client in
            let registered = try await client.execute(
                uri: "/v1/agents/register", method: .post, headers: [.authorization: "Bearer enroll-secret"], body: try body(registration("i-app-1")))
            #expect(registered.status == .ok)
            let response = try JSONDecoder().decode(RegistrationResponse.self, from: Data(registered.body.readableBytesView))
            #expect(response.agentId == "i-app-1")
            let auth: HTTPFields = [.authorization: "Bearer \(response.agentToken)"]

            let plan = try await client.execute(uri: "/v1/agents/i-app-1/plan", method: .get, headers: auth)
            #expect(plan.status == .ok)
            let etag = try #require(plan.headers[.eTag])
            let decoded = try JSONDecoder().decode(Plan.self, from: Data(plan.body.readableBytesView))
            #expect(decoded.probes.contains { $0.id.hasPrefix("egress:") })
            var conditional = auth
            conditional[.ifNoneMatch] = etag
            #expect(try await client.execute(uri: "/v1/agents/i-app-1/plan", method: .get, headers: conditional).status == .notModified)

            let now = wallClockMilliseconds()
            let report = Report(
                agentId: "i-app-1", sequence: 1, createdAtMs: now,
                results: decoded.probes.prefix(3).map { result(for: $0, agrees: true, at: now - 100) })
            let first = try await client.execute(uri: "/v1/agents/i-app-1/reports", method: .post, headers: auth, body: try body(report))
            #expect(first.status == .ok)
            #expect(
                try JSONDecoder().decode(ReportAcknowledgement.self, from: Data(first.body.readableBytesView)) == .init(sequence: 1, stored: true))
            let replay = try await client.execute(uri: "/v1/agents/i-app-1/reports", method: .post, headers: auth, body: try body(report))
            #expect(
                try JSONDecoder().decode(ReportAcknowledgement.self, from: Data(replay.body.readableBytesView)) == .init(sequence: 1, stored: false))
            #expect(try await harness.store.results(agentId: "i-app-1", since: 0, limit: 100).count == 3)

            // The agent's own token refreshes its registration; it does not open another agent's routes.
            let again = try await client.execute(uri: "/v1/agents/register", method: .post, headers: auth, body: try body(registration("i-app-1")))
            #expect(again.status == .ok)
            let refreshed = try JSONDecoder().decode(RegistrationResponse.self, from: Data(again.body.readableBytesView))
            #expect(refreshed.lastSequence == 1)
        }
    }

    @Test("auth: no token 401, wrong token 401, agent token on operator routes 403, another agent's routes 401")
    func auth() async throws {
        let harness = try await Harness.make()
        defer { harness.cleanup() }
        let tokens = try await harness.registerAll(["i-app-1", "i-app-2"])
        try await app(harness).test(.router) { client in
            let none = try await client.execute(uri: "/v1/agents", method: .get)
            #expect(none.status == .unauthorized)
            #expect(errorCode(none) == "unauthorized")
            #expect(try await client.execute(uri: "/v1/agents", method: .get, headers: [.authorization: "Bearer nope"]).status == .forbidden)
            #expect(
                try await client.execute(uri: "/v1/agents", method: .get, headers: [.authorization: "Bearer \(tokens["i-app-1"]!)"]).status
                    == .forbidden)
            let other = try await client.execute(
                uri: "/v1/agents/i-app-2/plan", method: .get, headers: [.authorization: "Bearer \(tokens["i-app-1"]!)"])
            #expect(other.status == .unauthorized)
            let register = try await client.execute(
                uri: "/v1/agents/register", method: .post, headers: [.authorization: "Bearer wrong"], body: try body(registration("i-db")))
            #expect(register.status == .unauthorized)
            #expect(try await client.execute(uri: "/v1/agents", method: .get, headers: Self.operatorAuth).status == .ok)
        }
    }

    @Test("bad input: malformed JSON 400, unknown field 400, oversized 413, too many results 413, wrong agent 422, unknown route 404 — never 500")
    func badInput() async throws {
        let harness = try await Harness.make()
        defer { harness.cleanup() }
        let tokens = try await harness.registerAll(["i-app-1"])
        let auth: HTTPFields = [.authorization: "Bearer \(tokens["i-app-1"]!)"]
        try await app(harness).test(.router) { client in
            let malformed = try await client.execute(
                uri: "/v1/agents/i-app-1/reports", method: .post, headers: auth, body: ByteBuffer(string: "{not json"))
            #expect(malformed.status == .badRequest)
            let missing = try await client.execute(
                uri: "/v1/agents/i-app-1/reports", method: .post, headers: auth, body: ByteBuffer(string: #"{"agentId":"i-app-1","sequence":1}"#))
            #expect(missing.status == .badRequest)
            #expect(try JSONDecoder().decode(ErrorBody.self, from: Data(missing.body.readableBytesView)).error.field != nil)
            var unknown = String(decoding: try JSONEncoder().encode(registration("i-db")), as: UTF8.self)
            unknown.insert(contentsOf: #""colour":"blue","#, at: unknown.index(after: unknown.startIndex))
            let strict = try await client.execute(
                uri: "/v1/agents/register", method: .post, headers: [.authorization: "Bearer enroll-secret"], body: ByteBuffer(string: unknown))
            #expect(strict.status == .badRequest)
            #expect(errorCode(strict) == "unknown_field")
            let huge = try await client.execute(
                uri: "/v1/agents/i-app-1/reports", method: .post, headers: auth,
                body: ByteBuffer(repeating: UInt8(ascii: " "), count: 5 * 1024 * 1024))
            #expect(huge.status == .contentTooLarge)
            let many = Report(
                agentId: "i-app-1", sequence: 1, createdAtMs: 0,
                results: (0..<5_001).map { _ in result(for: ProbeSpec(id: "x", kind: .tcp, target: "t", port: 1), agrees: true, at: 0) })
            #expect(
                try await client.execute(uri: "/v1/agents/i-app-1/reports", method: .post, headers: auth, body: try body(many)).status
                    == .contentTooLarge)
            let wrong = Report(agentId: "i-db", sequence: 1, createdAtMs: 0, results: [])
            #expect(
                try await client.execute(uri: "/v1/agents/i-app-1/reports", method: .post, headers: auth, body: try body(wrong)).status
                    == .unprocessableContent)
            let nowhere = try await client.execute(uri: "/v2/nothing", method: .get)
            #expect(nowhere.status == .notFound)
            #expect(errorCode(nowhere) == "not_found")
            let badTopology = try await client.execute(
                uri: "/v1/topology", method: .put, headers: Self.operatorAuth, body: ByteBuffer(string: "vpc: {id: 1"))
            #expect(badTopology.status == .unprocessableContent)
        }
    }

    @Test("per-agent rate limit: a burst over twice the rate at one instant is refused with 429; the bucket refills")
    func rateLimit() async throws {
        let harness = try await Harness.make()
        defer { harness.cleanup() }
        _ = try await harness.registerAll(["i-app-1"])
        var refused = 0
        for _ in 0..<60 {
            do { try await harness.collector.admit(agentId: "i-app-1", now: 5_000) } catch let error as APIError {
                #expect(error.status == 429)
                refused += 1
            }
        }
        #expect(refused == 60 - 40)  // 20 reports/s, a burst of twice that
        try await harness.collector.admit(agentId: "i-app-1", now: 6_000)  // a second later: 20 more tokens
    }

    @Test("operator routes: topology versions, validate, explain, matrix, health, readiness and metrics")
    func operatorRoutes() async throws {
        let harness = try await Harness.make()
        defer { harness.cleanup() }
        _ = try await harness.registerAll(karmaInstances)
        try await app(harness).test(.router) { client in
            let topology = try await client.execute(uri: "/v1/topology", method: .get, headers: Self.operatorAuth)
            #expect(topology.status == .ok)
            let text = try String(contentsOfFile: karmaPath, encoding: .utf8)
            let put = try await client.execute(
                uri: "/v1/topology?author=alice&comment=again", method: .put, headers: Self.operatorAuth,
                body: ByteBuffer(string: text + "\n# edited\n"))
            #expect(put.status == .created)
            let versions = try await client.execute(uri: "/v1/topology/versions", method: .get, headers: Self.operatorAuth)
            #expect(String(buffer: versions.body).contains("\"author\":\"alice\""))
            let validate = try await client.execute(
                uri: "/v1/topology/validate", method: .post, headers: Self.operatorAuth,
                body: ByteBuffer(string: "vpc: {id: v, cidrBlocks: [10.0.0.0/99]}"))
            #expect(String(buffer: validate.body).contains("\"valid\":false"))
            let explain = try await client.execute(
                uri: "/v1/explain?from=i-app-1&to=s3&port=443", method: .get, headers: Self.operatorAuth)
            #expect(explain.status == .ok)
            #expect(String(buffer: explain.body).contains("\"verdict\":\"allowed\""))
            #expect(try await client.execute(uri: "/v1/explain?from=i-app-1&to=s3", method: .get, headers: Self.operatorAuth).status == .badRequest)
            let matrix = try await client.execute(uri: "/v1/matrix", method: .get, headers: Self.operatorAuth)
            #expect(String(buffer: matrix.body).contains("\"unknown\":"))
            #expect(try await client.execute(uri: "/healthz", method: .get).status == .ok)
            #expect(try await client.execute(uri: "/readyz", method: .get).status == .ok)
            #expect(try await client.execute(uri: "/metrics", method: .get).status == .ok)
            #expect(try await client.execute(uri: "/v1/receivers", method: .get, headers: Self.operatorAuth).status == .ok)
        }
    }

    @Test("docs/openapi.yaml describes exactly the routes the router serves")
    func openAPI() async throws {
        let harness = try await Harness.make()
        defer { harness.cleanup() }
        let router = buildRouter(collector: harness.collector, configuration: harness.configuration, registry: PrometheusCollectorRegistry())
        let served = Set(router.routes.map { "\($0.method.rawValue) \(String(describing: $0.path).replacingOccurrences(of: ":id", with: "{id}"))" })
        let text = try String(contentsOf: repositoryRoot.appendingPathComponent("docs/openapi.yaml"), encoding: .utf8)
        let node = try #require(DocumentParser.parse(text, file: "openapi.yaml").node)
        var documented: Set<String> = []
        func entries(_ node: DocumentNode?) -> [DocumentNode.Entry] {
            guard let node, case .mapping(let entries) = node.value else { return [] }
            return entries
        }
        for path in entries(node["paths"]) {
            for method in entries(path.value) where ["get", "put", "post", "delete", "patch"].contains(method.key) {
                documented.insert("\(method.key.uppercased()) \(path.key)")
            }
        }
        #expect(
            served == documented,
            "served but not documented: \(served.subtracting(documented).sorted()); documented but not served: \(documented.subtracting(served).sorted())"
        )
        #expect(Set(apiRoutes.map { "\($0.method) \($0.path)" }) == served)
    }
}
