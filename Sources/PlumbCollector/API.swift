import Foundation
import Hummingbird
import Logging
import NIOCore
import PlumbCore
import PlumbDiagram
import PlumbModelIO
import PlumbProbes
import PlumbStore
import PlumbWire
import Prometheus

/// Every route of the API, as `METHOD PATH` with `{name}` parameters: what `docs/openapi.yaml` must describe.
public let apiRoutes: [(method: String, path: String)] = [
    ("POST", "/v1/agents/register"), ("GET", "/v1/agents/{id}/plan"), ("POST", "/v1/agents/{id}/reports"),
    ("GET", "/v1/agents"), ("GET", "/v1/agents/{id}"),
    ("GET", "/v1/topology"), ("PUT", "/v1/topology"), ("POST", "/v1/topology/validate"), ("GET", "/v1/topology/versions"),
    ("GET", "/v1/explain"), ("GET", "/v1/matrix"), ("GET", "/v1/drift"), ("GET", "/v1/overview"), ("GET", "/v1/diagram"),
    ("GET", "/v1/alerts"), ("GET", "/v1/alerts/{id}"), ("POST", "/v1/alerts/{id}/acknowledge"),
    ("GET", "/v1/receivers"), ("GET", "/v1/deliveries"),
    ("GET", "/v1/status"), ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"),
    ("GET", "/"), ("POST", "/login"), ("POST", "/logout"), ("GET", "/assets/plumb.css"), ("GET", "/assets/plumb.js"),
]

/// The request context: Hummingbird's basic one plus the connection's peer address (identity checks at registration).
public struct CollectorRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The TCP peer (nil in router tests, which have no socket).
    public let peerAddress: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        peerAddress = source.channel.remoteAddress?.ipAddress
    }
}

/// Builds the router: every route of `apiRoutes`, JSON errors, auth, limits.
public func buildRouter(collector: Collector, configuration: CollectorConfiguration, registry: PrometheusCollectorRegistry) -> Router<
    CollectorRequestContext
> {
    let router = Router(context: CollectorRequestContext.self)
    router.add(middleware: AuthFailureMiddleware(guardian: collector.authFailures))
    router.add(middleware: JSONErrorMiddleware(logger: collector.logger))
    router.add(middleware: StoreDeadlineMiddleware(timeout: .milliseconds(Int64(configuration.storeTimeoutSeconds * 1000))))
    let limit = configuration.maxBodyBytes
    let now: @Sendable () -> Int64 = { wallClockMilliseconds() }

    // MARK: Agents
    router.post("/v1/agents/register") { request, context -> Response in
        // The token first, then the body: an unknown bearer costs a hash and a lookup, never a parse.
        let bearer = try bearerToken(request)
        guard try await collector.mayRegister(bearer: bearer) else {
            throw APIError(401, "unauthorized", "the enrollment token (or this agent's own token) is required")
        }
        try requireMediaType(.json, request)
        let registration = try decodeStrictJSON(
            Registration.self, try await request.body.collect(upTo: min(limit, smallDocumentBytes)), name: "registration")
        guard registration.version == 1 else {
            throw APIError(422, "unsupported_version", "registration version \(registration.version); this collector reads 1", field: "version")
        }
        let source = RegistrationSource(
            peer: context.peerAddress, forwardedFor: request.headers[values: .init("X-Forwarded-For")!].joined(separator: ","))
        return try json(try await collector.register(registration, bearer: bearer, source: source, now: now()))
    }
    router.get("/v1/agents/:id/plan") { request, context -> Response in
        let id = try context.parameters.require("id")
        _ = try await collector.authenticateAgent(id: id, bearer: try bearerToken(request))
        let (etag, plan) = try await collector.plan(agentId: id)
        if request.headers[.ifNoneMatch] == etag { return Response(status: .notModified, headers: [.eTag: etag]) }
        return try json(plan, headers: [.eTag: etag])
    }
    router.post("/v1/agents/:id/reports") { request, context -> Response in
        let id = try context.parameters.require("id")
        _ = try await collector.authenticateAgent(id: id, bearer: try bearerToken(request))
        try await collector.admit(agentId: id, now: now())
        try requireMediaType(.json, request)
        let body = try await request.body.collect(upTo: limit)
        let text = try utf8Text(body)
        let report: Report
        do {
            report = try JSONDecoder().decode(Report.self, from: Data(body.readableBytesView))
        } catch let error as DecodingError {
            throw APIError(400, "invalid_report", describe(error), field: field(of: error))
        } catch {
            throw APIError(400, "invalid_json", "the body is not JSON: \(error)")
        }
        return try json(try await collector.ingest(report, body: text, agentId: id, now: now()))
    }
    router.get("/v1/agents") { request, _ -> Response in
        try requireScope(.read, request, collector)
        var views: [AgentView] = []
        for agent in try await collector.listAgents() {
            views.append(AgentView(agent, instance: await collector.instance(ofAgent: agent.agentId), now: now()))
        }
        return try json(["agents": views])
    }
    router.get("/v1/agents/:id") { request, context -> Response in
        try requireScope(.read, request, collector)
        let id = try context.parameters.require("id")
        guard let agent = try await collector.store.agent(id: id) else {
            throw APIError(404, "unknown_agent", "no agent \(id)", field: "id")
        }
        return try json(AgentView(agent, instance: await collector.instance(ofAgent: id), now: now()))
    }

    // MARK: Topology
    router.get("/v1/topology") { request, _ -> Response in
        try requireScope(.read, request, collector)
        guard let latest = try await collector.store.latestTopology() else {
            throw APIError(404, "no_topology", "no topology has been loaded; PUT one")
        }
        return try json(latest)
    }
    router.put("/v1/topology") { request, _ -> Response in
        let token = try requireScope(.admin, request, collector)
        try requireMediaType(.model, request)
        let text = try utf8Text(try await request.body.collect(upTo: limit))
        let format = (request.headers[.contentType] ?? "").contains("json") ? "json" : "yaml"
        let author = request.uri.queryParameters["author"].map(String.init) ?? token.name
        let comment = request.uri.queryParameters["comment"].map(String.init)
        let version = try await collector.putTopology(text, format: format, file: "topology", author: author, now: now(), comment: comment)
        return try json(["version": version], status: .created)
    }
    router.post("/v1/topology/validate") { request, _ -> Response in
        try requireScope(.read, request, collector)
        try requireMediaType(.model, request)
        let text = try utf8Text(try await request.body.collect(upTo: limit))
        guard !text.isEmpty else { throw APIError(400, "empty_body", "send the topology document to validate as the body", field: "body") }
        // A JSON topology is an object; a JSON array, string or number is not a model to look into.
        if MediaTypes.json.accepts(request.headers[.contentType] ?? ""), text.first(where: { !$0.isWhitespace }) != "{" {
            throw APIError(400, "invalid_document", "a JSON topology is an object ({\"vpc\": …}); this body is not one", field: "body")
        }
        let (_, diagnostics) = try await collector.validateForRequest(text, file: "topology")
        return try json(ValidationView(diagnostics: diagnostics))
    }
    router.get("/v1/topology/versions") { request, _ -> Response in
        try requireScope(.read, request, collector)
        return try json(["versions": try await collector.store.topologyVersions()])
    }

    // MARK: Engine and drift
    router.get("/v1/explain") { request, _ -> Response in
        try requireScope(.read, request, collector)
        let query = request.uri.queryParameters
        guard let from = query["from"].map(String.init), let to = query["to"].map(String.init) else {
            throw APIError(400, "missing_parameter", "from and to are required", field: query["from"] == nil ? "from" : "to")
        }
        guard let port = query["port"].flatMap({ Int(String($0)) }), (0...65_535).contains(port) else {
            throw APIError(400, "missing_parameter", "port is required: a number from 0 to 65535", field: "port")
        }
        let proto: IPProtocol
        switch query["protocol"].map(String.init) ?? "tcp" {
        case "tcp": proto = .tcp
        case "udp": proto = .udp
        case "icmp": proto = .icmp
        case let other: throw APIError(400, "bad_parameter", "protocol '\(other)' is not tcp, udp or icmp", field: "protocol")
        }
        guard let live = await collector.live else { throw APIError(409, "no_topology", "no topology is loaded") }
        do {
            return try json(try live.network.explain(from: from, to: to, port: port, protocol: proto))
        } catch {
            throw APIError(422, "cannot_explain", "\(error)")
        }
    }
    router.get("/v1/matrix") { request, _ -> Response in
        try requireScope(.read, request, collector)
        return try json(MatrixView(await collector.pairsWithProbes()))
    }
    router.get("/v1/overview") { request, _ -> Response in
        try requireScope(.read, request, collector)
        return try json(try await collector.overview(now: now()))
    }
    router.get("/v1/diagram") { request, _ -> Response in
        try requireScope(.read, request, collector)
        guard await collector.live != nil else { throw APIError(409, "no_topology", "no topology is loaded") }
        let svg = await Page.diagram(collector: collector).svg
        let document = svg.replacingOccurrences(
            of: "</title>\n", with: "</title>\n<style>\n\(SVGRenderer.style)\n</style>\n", options: [], range: nil)
        return Response(
            status: .ok, headers: [.contentType: "image/svg+xml; charset=utf-8", .cacheControl: "no-cache"],
            body: .init(byteBuffer: ByteBuffer(string: "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + document)))
    }
    router.get("/v1/drift") { request, _ -> Response in
        try requireScope(.read, request, collector)
        let findings = await collector.currentFindings(now: now())
        let pairs = await collector.drift().map {
            DriftPairView(key: $0.key, probe: $0.probe, status: $0.state.status.rawValue, reason: $0.memory.reason, lastResult: $0.memory.lastResult)
        }
        return try json(DriftView(findings: findings, pairs: pairs))
    }

    // MARK: Alerts
    router.get("/v1/alerts") { request, _ -> Response in
        try requireScope(.read, request, collector)
        let query = request.uri.queryParameters
        var filter = AlertFilter()
        if let value = query["status"].map(String.init) {
            guard let status = Alert.Status(rawValue: value) else {
                throw APIError(400, "bad_parameter", "status must be firing or resolved", field: "status")
            }
            filter.status = status
        }
        if let value = query["kind"].map(String.init) {
            guard let kind = Finding.Kind(rawValue: value) else {
                throw APIError(
                    400, "bad_parameter", "kind must be one of \(Finding.Kind.allCases.map(\.rawValue).joined(separator: ", "))", field: "kind")
            }
            filter.kind = kind
        }
        if let value = query["severity"].map(String.init) {
            guard let severity = Finding.Severity(rawValue: value) else {
                throw APIError(400, "bad_parameter", "severity must be info, warning or critical", field: "severity")
            }
            filter.severity = severity
        }
        filter.component = query["component"].map(String.init)
        if let value = query["limit"] {
            guard let limit = Int(String(value)), (1...5_000).contains(limit) else {
                throw APIError(400, "bad_parameter", "limit must be a number from 1 to 5000", field: "limit")
            }
            filter.limit = limit
        }
        return try json(["alerts": try await collector.store.alerts(filter)])
    }
    router.get("/v1/alerts/:id") { request, context -> Response in
        try requireScope(.read, request, collector)
        let id = try context.parameters.require("id")
        guard let alert = try await collector.store.alert(id: id) else { throw APIError(404, "unknown_alert", "no alert \(id)", field: "id") }
        let events = try await collector.store.alertEvents(id: id).map { EventView(event: $0.event, atMs: $0.atMs) }
        return try json(AlertDetailView(alert: alert, events: events, explanation: await collector.explanation(for: alert)))
    }
    router.post("/v1/alerts/:id/acknowledge") { request, context -> Response in
        let token = try requireScope(.admin, request, collector)
        let id = try context.parameters.require("id")
        try requireMediaType(.json, request)
        let body = try await request.body.collect(upTo: smallDocumentBytes)
        let who = body.readableBytes == 0 ? token.name : try decodeStrictJSON(AcknowledgeRequest.self, body, name: "acknowledge").by
        return try json(try await collector.acknowledge(alertId: id, by: who, now: now()))
    }
    router.get("/v1/receivers") { request, _ -> Response in
        try requireScope(.read, request, collector)
        return try json(["receivers": configuration.receivers.map(ReceiverView.init)])
    }
    router.get("/v1/deliveries") { request, _ -> Response in
        try requireScope(.read, request, collector)
        let alert = request.uri.queryParameters["alert"].map(String.init)
        return try json(["deliveries": try await collector.store.deliveries(alertId: alert, limit: 500)])
    }

    // MARK: The page
    Page.add(to: router, collector: collector, configuration: configuration)

    // MARK: Health and metrics
    router.get("/healthz") { _, _ -> Response in try json(["status": "ok"]) }
    router.get("/readyz") { _, _ -> Response in
        guard await collector.live != nil else { throw APIError(503, "not_ready", "no topology is loaded; PUT /v1/topology or start with --model") }
        do {
            try await collector.store.ping()
        } catch {
            throw APIError(503, "store_unavailable", "the store does not answer (\(collector.store.summary)): \(error)", retryAfterSeconds: 2)
        }
        if let reason = await collector.degraded {
            throw APIError(
                503, "collector_degraded", "the collector cannot store what it receives (\(collector.store.summary)): \(reason)", retryAfterSeconds: 5
            )
        }
        return try json(["status": "ready"])
    }
    router.get("/v1/status") { request, _ -> Response in
        try requireScope(.read, request, collector)
        return try json(await collector.status())
    }
    router.get("/metrics") { _, _ -> Response in
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: addingHelp(to: buffer))))
    }
    return router
}

// MARK: - Helpers

/// Turns every error into `{"error": {"code", "message", "field"}}` with the right status; never a bare 500 page.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return errorResponse(error)
        } catch let error as StoreError {
            // The database is unreachable or refused the statement: the request can be tried again later.
            logger.error("store failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return errorResponse(
                APIError(503, "store_unavailable", "the collector's store cannot answer now; try again: \(error)", retryAfterSeconds: 2))
        } catch is NIOTooManyBytesError {
            return errorResponse(APIError(413, "too_large", "the request body is larger than the collector accepts (limits.maxBodyBytes)"))
        } catch let error as HTTPError where error.status == .notFound && !allowedMethods(request.uri.path).isEmpty {
            // The path is a route, the method is not one of its methods.
            let allowed = allowedMethods(request.uri.path)
            var response = errorResponse(
                APIError(
                    405, "method_not_allowed", "\(request.method) is not served on \(request.uri.path); it takes \(allowed.joined(separator: ", "))"))
            response.headers[.allow] = allowed.joined(separator: ", ")
            return response
        } catch let error as HTTPError {
            let code: String
            switch error.status {
            case .contentTooLarge: code = "too_large"
            case .notFound: code = "not_found"
            case .methodNotAllowed: code = "method_not_allowed"
            default: code = "http_\(error.status.code)"
            }
            let message =
                error.status == .contentTooLarge
                ? "the request body is larger than the collector accepts (limits.maxBodyBytes)"
                : (error.body ?? (error.status == .notFound ? "no route \(request.method) \(request.uri.path)" : error.status.reasonPhrase))
            return errorResponse(APIError(Int(error.status.code), code, message))
        } catch {
            logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return errorResponse(APIError(500, "internal", "the collector failed to handle the request: \(error)"))
        }
    }
}

/// The methods `apiRoutes` serve on `path` (a `{name}` matches one segment); empty when the path is no route.
func allowedMethods(_ path: String) -> [String] {
    // The most literal patterns win, as in the router: /v1/agents/register is not /v1/agents/{id}.
    let segments = path.split(separator: "/", omittingEmptySubsequences: false)
    var best = -1
    var methods: [String] = []
    for route in apiRoutes {
        let pattern = route.path.split(separator: "/", omittingEmptySubsequences: false)
        guard pattern.count == segments.count else { continue }
        let matches = zip(pattern, segments).allSatisfy { expected, actual in
            expected.hasPrefix("{") ? !actual.isEmpty : expected == actual
        }
        guard matches else { continue }
        let literal = pattern.filter { !$0.hasPrefix("{") }.count
        if literal > best {
            best = literal
            methods = []
        }
        if literal == best, !methods.contains(route.method) { methods.append(route.method) }
    }
    return methods
}

func errorResponse(_ error: APIError) -> Response {
    let body =
        (try? JSONEncoder.sorted.encode(ErrorBody(code: error.code, message: error.message, field: error.field, reason: error.reason))) ?? Data()
    var headers: HTTPFields = [.contentType: "application/json"]
    if error.status == 401 { headers[.wwwAuthenticate] = "Bearer" }
    if error.status == 403, error.code == "forbidden" { headers[AuthFailureMiddleware.failureMark] = "1" }
    if error.status == 503 || error.status == 429, let seconds = error.retryAfterSeconds { headers[.retryAfter] = "\(seconds)" }
    return Response(status: .init(code: error.status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
}

func json(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws -> Response {
    var allHeaders = headers
    allHeaders[.contentType] = "application/json"
    return Response(status: status, headers: allHeaders, body: .init(byteBuffer: ByteBuffer(bytes: try JSONEncoder.sorted.encode(value))))
}

func bearerToken(_ request: Request) throws -> String {
    guard let header = request.headers[.authorization], header.hasPrefix("Bearer "), header.count > 7 else {
        throw APIError(401, "unauthorized", "an Authorization: Bearer token is required")
    }
    return String(header.dropFirst(7))
}

/// The operator token of the request, when it has `scope` (admin includes read): 401 without a token, 403 for a token
/// that is not an operator token or lacks the scope.
@discardableResult
func requireScope(_ scope: TokenScope, _ request: Request, _ collector: Collector) throws -> OperatorToken {
    // The page's cookie opens reading only: a GET without an Authorization header. What changes state needs the header,
    // which a cross-site request cannot set.
    let bearer: String
    if request.method == .get, request.headers[.authorization] == nil, let cookie = Page.cookie(Page.cookieName, request) {
        bearer = cookie
    } else {
        bearer = try bearerToken(request)
    }
    guard let token = collector.operatorToken(bearer) else {
        throw APIError(403, "forbidden", "this route needs an operator token (\(scope.rawValue) or admin); this bearer is not one")
    }
    guard token.scope >= scope else {
        throw APIError(403, "forbidden", "this route needs an admin token; '\(token.name)' is a \(token.scope.rawValue) token")
    }
    return token
}

/// Decodes a small document strictly: unknown fields and malformed JSON are 400s with the location.
func decodeStrict<T: Decodable>(_ type: T.Type, _ buffer: ByteBuffer, name: String) throws -> T {
    let parsed = DocumentParser.parse(String(buffer: buffer), file: name)
    guard let node = parsed.node else {
        throw APIError(400, "invalid_json", parsed.diagnostics.map(\.description).joined(separator: "; "))
    }
    let decoded = DocumentDecoder.decode(T.self, from: node)
    let errors = (parsed.diagnostics + decoded.diagnostics).filter { $0.severity == .error }
    guard let value = decoded.value, errors.isEmpty else {
        throw APIError(
            400, errors.first?.code == "unknown-field" ? "unknown_field" : "invalid_document", errors.map(\.description).joined(separator: "; "))
    }
    return value
}

func describe(_ error: DecodingError) -> String {
    switch error {
    case .keyNotFound(let key, let context): return "missing field '\(path(context.codingPath + [key]))'"
    case .typeMismatch(_, let context), .valueNotFound(_, let context):
        return "wrong type at '\(path(context.codingPath))': \(context.debugDescription)"
    case .dataCorrupted(let context): return "malformed at '\(path(context.codingPath))': \(context.debugDescription)"
    @unknown default: return "\(error)"
    }
}

func field(of error: DecodingError) -> String? {
    switch error {
    case .keyNotFound(let key, let context): return path(context.codingPath + [key])
    case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context): return path(context.codingPath)
    @unknown default: return nil
    }
}

func path(_ keys: [any CodingKey]) -> String {
    keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().trimmingCharacters(in: CharacterSet(charactersIn: "."))
}

struct AcknowledgeRequest: Decodable { var by: String }

struct AgentView: Encodable {
    var agentId: String
    var instanceId: String
    var modelInstance: String?
    var version: String
    var capabilities: [ProbeKind]
    var interfaces: [InterfaceInfo]
    var registeredAtMs: Int64
    var lastSeenAtMs: Int64
    var lastSequence: Int64
    var silentForSeconds: Int64
    /// How the agent proved its instance at its last registration with the enrollment token.
    var verification: VerificationView?

    struct VerificationView: Encodable {
        var checks: [String]
        var sourceAddress: String?
        var accountId: String?
        var region: String?
        var verifiedAtMs: Int64
    }

    init(_ agent: AgentRecord, instance: String?, now: Int64) {
        agentId = agent.agentId
        instanceId = agent.registration.identity.instanceId
        modelInstance = instance
        version = agent.registration.agentVersion
        capabilities = agent.registration.capabilities
        interfaces = agent.registration.identity.interfaces
        registeredAtMs = agent.registeredAtMs
        lastSeenAtMs = agent.lastSeenAtMs
        lastSequence = agent.lastSequence
        silentForSeconds = max(0, (now - agent.lastSeenAtMs) / 1000)
        verification = agent.verification.map {
            VerificationView(
                checks: $0.checks, sourceAddress: $0.sourceAddress, accountId: $0.accountId, region: $0.region, verifiedAtMs: $0.verifiedAtMs)
        }
    }
}

struct ValidationView: Encodable {
    var valid: Bool
    var errors: Int
    var warnings: Int
    var diagnostics: [Item]
    struct Item: Encodable {
        var severity: String
        var code: String
        var location: String
        var message: String
    }

    init(diagnostics: [Diagnostic]) {
        errors = diagnostics.filter { $0.severity == .error }.count
        warnings = diagnostics.count - errors
        valid = errors == 0
        self.diagnostics = diagnostics.sortedByLocation().map {
            Item(severity: $0.severity.rawValue, code: $0.code, location: $0.location.description, message: $0.message)
        }
    }
}

struct MatrixView: Encodable {
    var pairs: [Row]
    var agreeing: Int
    var disagreeing: Int
    var unknown: Int
    struct Row: Encodable {
        var pair: String
        var source: String
        var target: String
        var purpose: String
        var kind: String
        var port: Int?
        var expected: String
        var observed: String
        var status: String
        var lastResult: String?
    }

    init(_ pairs: [(key: String, probe: PlannedProbe, state: PairState?, lastResult: String?)]) {
        self.pairs = pairs.map { pair in
            let status = pair.state?.status ?? .unknown
            let expected = pair.probe.expectReach ? "reach" : "block"
            let observed: String
            switch status {
            case .unknown: observed = "?"
            case .agreeing: observed = expected
            case .disagreeing: observed = pair.probe.expectReach ? "block" : "reach"
            }
            return Row(
                pair: pair.key, source: pair.probe.sourceInstance, target: pair.probe.targetName, purpose: pair.probe.purpose.rawValue,
                kind: pair.probe.kind, port: pair.probe.port ?? pair.probe.evaluatedPort, expected: expected, observed: observed,
                status: status.rawValue,
                lastResult: pair.lastResult)
        }
        agreeing = self.pairs.filter { $0.status == "agreeing" }.count
        disagreeing = self.pairs.filter { $0.status == "disagreeing" }.count
        unknown = self.pairs.count - agreeing - disagreeing
    }
}

struct DriftPairView: Encodable {
    var key: String
    var probe: PlannedProbe
    var status: String
    var reason: String?
    var lastResult: String?
}

struct DriftView: Encodable {
    var findings: [Finding]
    var pairs: [DriftPairView]
}

struct EventView: Encodable {
    var event: String
    var atMs: Int64
}

struct AlertDetailView: Encodable {
    var alert: Alert
    var events: [EventView]
    var explanation: Explanation?
}

struct ReceiverView: Encodable {
    var name: String
    var url: String
    var format: String
    var signed: Bool
    var kinds: [String]?
    var minimumSeverity: String?
    var repeatIntervalSeconds: Int?

    init(_ receiver: Receiver) {
        name = receiver.name
        url = receiver.url
        format = receiver.format.rawValue
        signed = receiver.secret != nil
        kinds = receiver.kinds?.map(\.rawValue)
        minimumSeverity = receiver.minimumSeverity?.rawValue
        repeatIntervalSeconds = receiver.effectiveRepeatIntervalSeconds
    }
}
