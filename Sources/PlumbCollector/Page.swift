import Foundation
import Hummingbird
import NIOCore
import PlumbCore
import PlumbDiagram
import PlumbStore
import Synchronization

/// The operator's page at `GET /`: the VPC drawn from the live model (server-rendered SVG), coloured by live state by a
/// small script that polls `GET /v1/overview` every second. No build step, no external asset: the stylesheet and the
/// script are compiled in and served from `/assets/`. Signing in stores a read (or admin) token in an `HttpOnly`,
/// `SameSite=Strict` cookie, which opens the `GET` routes of the API to the page's script; routes that change state
/// still need the `Authorization` header, so the cookie cannot be used to act on the operator's behalf.
enum Page {
    static let cookieName = "plumb_token"

    /// Adds `/`, `/login`, `/logout` and `/assets/…` to the router.
    static func add(to router: Router<CollectorRequestContext>, collector: Collector, configuration: CollectorConfiguration) {
        let secure = configuration.tls != nil
        router.get("/") { request, _ -> Response in
            if let token = request.uri.queryParameters["token"].map(String.init) {
                // Kiosks and tests: sign in once, then the address without the token.
                guard collector.operatorToken(token) != nil else {
                    return html(loginPage(error: "That token is not an operator token."), status: .unauthorized)
                }
                return signIn(token, secure: secure, location: "/")
            }
            guard let token = cookie(cookieName, request), collector.operatorToken(token) != nil else {
                return html(loginPage(error: nil))
            }
            return html(await mainPage(collector: collector))
        }
        router.post("/login") { request, _ -> Response in
            let body = String(buffer: try await request.body.collect(upTo: 16 * 1024))
            let token = formValue("token", in: body) ?? ""
            guard !token.isEmpty, collector.operatorToken(token) != nil else {
                return html(loginPage(error: "That token is not an operator token (read or admin)."), status: .unauthorized)
            }
            return signIn(token, secure: secure, location: "/")
        }
        router.post("/logout") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.location] = "/"
            headers[.setCookie] = "\(cookieName)=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict\(secure ? "; Secure" : "")"
            return Response(status: .seeOther, headers: headers)
        }
        router.get("/assets/plumb.css") { _, _ -> Response in asset(PageAssets.css, type: "text/css; charset=utf-8") }
        router.get("/assets/plumb.js") { _, _ -> Response in asset(PageAssets.script, type: "text/javascript; charset=utf-8") }
    }

    /// The drawing of the live model, cached per topology version (the layout is a pure function of the model).
    static func diagram(collector: Collector) async -> (version: Int?, svg: String) {
        guard let live = await collector.live else { return (nil, "") }
        return (live.version, DiagramCache.shared.svg(version: live.version, topology: live.topology))
    }

    static func mainPage(collector: Collector) async -> String {
        let (version, svg) = await diagram(collector: collector)
        guard let version, let live = await collector.live else {
            return shell(
                title: "Plumb",
                body: "<main class=\"empty\"><p>No topology is loaded yet: start the collector with --model, or PUT /v1/topology.</p></main>")
        }
        let topology = live.topology
        func options(_ ids: [String]) -> String { ids.map { "<option value=\"\(e($0))\">\(e($0))</option>" }.joined() }
        let instances = topology.instances.map(\.id).sorted()
        let targets = instances + topology.loadBalancers.map(\.id).sorted() + topology.endpoints.map(\.id).sorted()
        let body = """
            <header><h1>Plumb</h1><span class="vpc">\(e(topology.vpc.id))\(topology.name.map { " · " + e($0) } ?? "")</span>
            <span id="version" data-version="\(version)">topology v\(version)</span><span id="live" class="stale">connecting…</span><button id="zoom" type="button">Actual size</button>
            <form method="post" action="/logout"><button type="submit">Sign out</button></form></header>
            <main>
            <section id="diagram" aria-label="The VPC">\(svg)</section>
            <aside id="panel">
            <section id="alerts"><h2>Firing alerts <span id="alert-count">0</span></h2><ul id="alert-list"><li class="none">none</li></ul></section>
            <section id="selection"><h2>Selection</h2><div id="selection-body"><p class="hint">Select a component in the drawing or an alert. \
            Shift-click two instances to ask whether one reaches the other.</p></div></section>
            <section id="ask"><h2>Can A reach B?</h2>
            <form id="ask-form"><label>from <select name="from" id="ask-from"><option value="internet">internet</option>\(options(instances))</select></label>
            <label>to <select name="to" id="ask-to">\(options(targets))</select></label>
            <label>port <input name="port" id="ask-port" type="number" min="0" max="65535" value="22" required></label>
            <label>protocol <select name="protocol" id="ask-protocol"><option>tcp</option><option>udp</option><option>icmp</option></select></label>
            <button type="submit">Ask</button></form>
            <div id="ask-result"></div></section>
            <section id="pairs"><h2>Pairs by subnet</h2><p id="pair-totals"></p><table id="subnet-matrix"></table></section>
            </aside>
            </main>
            """
        return shell(title: "Plumb · \(topology.vpc.id)", body: body, script: true)
    }

    static func loginPage(error: String?) -> String {
        shell(
            title: "Plumb · sign in",
            body: """
                <main class="login"><h1>Plumb</h1><form method="post" action="/login">
                <label for="token">Operator token (read or admin)</label>
                <input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
                <button type="submit">Sign in</button>
                \(error.map { "<p class=\"error\" role=\"alert\">\(e($0))</p>" } ?? "")
                <p class="hint">Make one with <code>plumb-collector token add NAME --scope read</code>. It is kept in an HttpOnly cookie.</p>
                </form></main>
                """)
    }

    static func shell(title: String, body: String, script: Bool = false) -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(e(title))</title><link rel="stylesheet" href="/assets/plumb.css"></head>
        <body>\(body)\(script ? "<script src=\"/assets/plumb.js\"></script>" : "")</body></html>

        """
    }

    static func html(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.cacheControl] = "no-store"
        headers[.init("Content-Security-Policy")!] = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
        headers[.init("X-Content-Type-Options")!] = "nosniff"
        headers[.init("Referrer-Policy")!] = "no-referrer"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func asset(_ text: String, type: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        headers[.cacheControl] = "no-cache"
        headers[.init("X-Content-Type-Options")!] = "nosniff"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func signIn(_ token: String, secure: Bool, location: String) -> Response {
        var headers = HTTPFields()
        headers[.location] = location
        headers[.cacheControl] = "no-store"
        headers[.setCookie] = "\(cookieName)=\(token); Path=/; Max-Age=43200; HttpOnly; SameSite=Strict\(secure ? "; Secure" : "")"
        return Response(status: .seeOther, headers: headers)
    }

    /// A cookie's value from the request's `Cookie` headers.
    static func cookie(_ name: String, _ request: Request) -> String? {
        for header in request.headers[values: .cookie] {
            for part in header.split(separator: ";") {
                let pair = part.trimmingCharacters(in: .whitespaces)
                if pair.hasPrefix(name + "=") { return String(pair.dropFirst(name.count + 1)) }
            }
        }
        return nil
    }

    /// A field of an `application/x-www-form-urlencoded` body.
    static func formValue(_ name: String, in body: String) -> String? {
        for part in body.split(separator: "&") {
            let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard pieces.count == 2, pieces[0] == name else { continue }
            return String(pieces[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
        }
        return nil
    }

    static func e(_ text: String) -> String { SVGRenderer.escape(text) }
}

/// The SVG of the last topology version drawn.
final class DiagramCache: Sendable {
    static let shared = DiagramCache()
    private let cached = Mutex<(version: Int, svg: String)?>(nil)

    func svg(version: Int, topology: Topology) -> String {
        if let hit = cached.withLock({ $0 }), hit.version == version { return hit.svg }
        let svg = SVGRenderer.render(DiagramLayout().layout(topology))
        cached.withLock { $0 = (version, svg) }
        return svg
    }
}

/// `GET /v1/overview`: what the page colours the drawing with.
struct OverviewView: Encodable {
    var topologyVersion: Int?
    var generatedAtMs: Int64
    var role: String
    /// Firing alerts, newest first.
    var alerts: [Alert]
    /// Component id → the ids of the firing alerts that blame it.
    var blamed: [String: [String]]
    /// Model instance id → `live`, `silent` or `no-agent`.
    var instances: [String: String]
    /// Pairs per (source subnet, target subnet); `outside` for endpoints and NAT egress.
    var subnetPairs: [SubnetPairs]
    var agreeing: Int
    var disagreeing: Int
    var unknown: Int

    struct SubnetPairs: Encodable {
        var source: String
        var target: String
        var agreeing: Int
        var disagreeing: Int
        var unknown: Int
    }
}

extension Collector {
    /// The page's live state: firing alerts and whom they blame, agents by model instance, pairs per subnet pair.
    func overview(now: Int64) async throws -> OverviewView {
        let alerts = try await store.alerts(AlertFilter(status: .firing, limit: 500))
        var blamed: [String: [String]] = [:]
        for alert in alerts { blamed[alert.component, default: []].append(alert.id) }
        var instances: [String: String] = [:]
        let topology = live?.topology
        for instance in topology?.instances ?? [] { instances[instance.id] = "no-agent" }
        let silenceMs = Int64(configuration.silenceSeconds * 1000)
        for agent in try await listAgents() {
            guard let instance = instance(ofAgent: agent.agentId) else { continue }
            let state = now - agent.lastSeenAtMs > silenceMs ? "silent" : "live"
            if instances[instance] != "live" { instances[instance] = state }
        }
        var totals = (0, 0, 0)
        let counts = await subnetPairCounts()
        for count in counts.values {
            totals.0 += count[.agreeing] ?? 0
            totals.1 += count[.disagreeing] ?? 0
            totals.2 += count[.unknown] ?? 0
        }
        let pairs = counts.sorted { ($0.key.source, $0.key.target) < ($1.key.source, $1.key.target) }.map {
            OverviewView.SubnetPairs(
                source: $0.key.source, target: $0.key.target, agreeing: $0.value[.agreeing] ?? 0, disagreeing: $0.value[.disagreeing] ?? 0,
                unknown: $0.value[.unknown] ?? 0)
        }
        return OverviewView(
            topologyVersion: live?.version, generatedAtMs: now, role: await status().role, alerts: alerts, blamed: blamed, instances: instances,
            subnetPairs: pairs, agreeing: totals.0, disagreeing: totals.1, unknown: totals.2)
    }
}
