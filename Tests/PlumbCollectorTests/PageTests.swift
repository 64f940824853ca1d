import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import PlumbCollector
import PlumbCore
import PlumbModelIO
import Prometheus
import Testing

@Suite("the page")
struct PageTests {
    func app(_ harness: Harness) -> some ApplicationProtocol {
        Application(router: buildRouter(collector: harness.collector, configuration: harness.configuration, registry: PrometheusCollectorRegistry()))
    }

    func text(_ response: TestResponse) -> String { String(buffer: response.body) }

    @Test("sign-in: the form without a cookie, ?token= sets an HttpOnly SameSite=Strict cookie and drops the token from the address")
    func signIn() async throws {
        let harness = try await Harness.make()
        defer { harness.cleanup() }
        try await app(harness).test(.router) { client in
            let anonymous = try await client.execute(uri: "/", method: .get)
            #expect(anonymous.status == .ok)
            #expect(text(anonymous).contains("<form method=\"post\" action=\"/login\">"))
            #expect(!text(anonymous).contains("<svg"))

            let wrong = try await client.execute(uri: "/?token=nope", method: .get)
            #expect(wrong.status == .unauthorized)
            #expect(wrong.headers[.setCookie] == nil)

            let kiosk = try await client.execute(uri: "/?token=operator-secret", method: .get)
            #expect(kiosk.status == .seeOther)
            #expect(kiosk.headers[.location] == "/")
            let cookie = try #require(kiosk.headers[.setCookie])
            #expect(cookie.hasPrefix("plumb_token=operator-secret;"))
            #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/"))

            let form = try await client.execute(
                uri: "/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "token=operator-secret"))
            #expect(form.status == .seeOther)
            #expect(form.headers[.setCookie]?.hasPrefix("plumb_token=operator-secret;") == true)
            let badForm = try await client.execute(
                uri: "/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"], body: ByteBuffer(string: "token=x"))
            #expect(badForm.status == .unauthorized)
            #expect(text(badForm).contains("not an operator token"))

            // Signed in: the drawing of every subnet, instance and NAT, and the script.
            let page = try await client.execute(uri: "/", method: .get, headers: [.cookie: "plumb_token=operator-secret"])
            #expect(page.status == .ok)
            #expect(page.headers[.init("Content-Security-Policy")!]?.contains("default-src 'self'") == true)
            let html = text(page)
            let topology = try #require(ModelLoader.load(path: karmaPath).topology)
            for id in topology.subnets.map(\.id) + topology.instances.map(\.id) + topology.nats.map(\.id) {
                #expect(html.contains("data-component=\"\(id)\"") || html.contains("data-component=\"\(id) "), "\(id) is not on the page")
            }
            #expect(html.contains("<script src=\"/assets/plumb.js\"></script>"))
            let script = try await client.execute(uri: "/assets/plumb.js", method: .get)
            #expect(script.status == .ok && text(script).contains("/v1/overview"))
            #expect(try await client.execute(uri: "/assets/plumb.css", method: .get).status == .ok)

            let out = try await client.execute(uri: "/logout", method: .post)
            #expect(out.status == .seeOther && out.headers[.setCookie]?.contains("Max-Age=0") == true)
        }
    }

    @Test("the cookie opens GET routes only: acknowledging still needs the Authorization header")
    func cookieReadsOnly() async throws {
        let harness = try await Harness.make()
        defer { harness.cleanup() }
        try await app(harness).test(.router) { client in
            let cookie: HTTPFields = [.cookie: "plumb_token=operator-secret"]
            let overview = try await client.execute(uri: "/v1/overview", method: .get, headers: cookie)
            #expect(overview.status == .ok)
            let body = try JSONSerialization.jsonObject(with: Data(overview.body.readableBytesView)) as? [String: Any]
            #expect(body?["topologyVersion"] as? Int == 1)
            #expect((body?["instances"] as? [String: String])?["i-nat"] == "no-agent")
            #expect(try await client.execute(uri: "/v1/overview", method: .get, headers: [.cookie: "plumb_token=wrong"]).status == .forbidden)
            #expect(try await client.execute(uri: "/v1/overview", method: .get).status == .unauthorized)
            let acknowledge = try await client.execute(uri: "/v1/alerts/x/acknowledge", method: .post, headers: cookie)
            #expect(acknowledge.status == .unauthorized)
            let svg = try await client.execute(uri: "/v1/diagram", method: .get, headers: cookie)
            #expect(svg.status == .ok && svg.headers[.contentType]?.hasPrefix("image/svg+xml") == true)
            #expect(text(svg).hasPrefix("<?xml") && text(svg).contains("<style>"))
        }
    }

    @Test("the overview counts pairs per subnet pair and gives each model instance its agent's state")
    func overview() async throws {
        let harness = try await Harness.make()
        defer { harness.cleanup() }
        let tokens = try await harness.registerAll(karmaInstances)
        try await harness.collector.replanIfNeeded(now: 2_000, force: true)
        try await app(harness).test(.router) { client in
            let response = try await client.execute(uri: "/v1/overview", method: .get, headers: [.authorization: "Bearer operator-secret"])
            let body = try #require(try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
            let instances = try #require(body["instances"] as? [String: String])
            #expect(instances.count == karmaInstances.count)
            #expect(instances.values.allSatisfy { $0 == "live" || $0 == "silent" }, "\(instances)")
            let pairs = try #require(body["subnetPairs"] as? [[String: Any]])
            let total = pairs.map { ($0["agreeing"] as! Int) + ($0["disagreeing"] as! Int) + ($0["unknown"] as! Int) }.reduce(0, +)
            #expect(total > 0 && total == (body["unknown"] as? Int))
            #expect(pairs.contains { $0["target"] as? String == "outside" })
        }
        _ = tokens
    }
}
