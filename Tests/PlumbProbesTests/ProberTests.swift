import Glibc
import PlumbFakes
import PlumbProbes
import PlumbWire
import Testing

@Suite("tcp, icmp, http and dns probes")
struct ProberTests {
    let runner = ProbeRunner()

    @Test("tcp: an open port is ok with a connect time; a closed one is refused")
    func tcpOpenAndRefused() async throws {
        let server = try MiniHTTPServer { _ in .text("ok") }
        defer { server.stop() }
        let open = await runner.run(ProbeSpec(id: "t", kind: .tcp, target: "127.0.0.1", port: server.port))
        #expect(open.outcome == .ok)
        #expect(open.timings.connectMs ?? -1 >= 0)
        #expect(open.matchesExpectation)
        let closed = await runner.run(
            ProbeSpec(id: "t", kind: .tcp, target: "127.0.0.1", port: freeTCPPort(), expect: ProbeExpectation(verdict: .block)))
        #expect(closed.outcome == .refused)
        #expect(closed.outcome.reached)
        // Refused means the host was reached: an expected-deny flow that is refused did cross the network.
        #expect(!closed.matchesExpectation)
    }

    @Test("tcp: a name that does not resolve is a dns-failure result, not an error")
    func tcpBadName() async {
        let result = await runner.run(ProbeSpec(id: "t", kind: .tcp, target: "no-such-host.invalid", port: 80, timeoutMs: 2_000))
        #expect(result.outcome == .dnsFailure)
    }

    @Test("icmp: loopback answers through whichever socket this process may open")
    func icmp() async {
        let result = await runner.run(ProbeSpec(id: "i", kind: .icmp, target: "127.0.0.1", timeoutMs: 1_000, burst: 3))
        if let method = ICMPSupport.method() {
            #expect(result.outcome == .ok)
            #expect(result.method == method)
            #expect(result.burst?.received == 3)
        } else {
            #expect(result.outcome == .unsupported)
            #expect(result.detail?.contains("ping_group_range") == true)
        }
    }

    @Test("http: status, body match and phase timings in order")
    func http() async throws {
        let server = try MiniHTTPServer { request in
            request.path == "/health" ? .text("service ok\n") : .text("missing\n", status: 404)
        }
        defer { server.stop() }
        let ok = await runner.run(
            ProbeSpec(id: "h", kind: .http, target: server.url + "/health", timeoutMs: 2_000, expect: ProbeExpectation(bodyContains: "ok")))
        #expect(ok.outcome == .ok)
        #expect(ok.httpStatus == 200)
        #expect(ok.checkFailures == nil)
        let timings = ok.timings
        let dns = try #require(timings.dnsMs)
        let connect = try #require(timings.connectMs)
        let firstByte = try #require(timings.firstByteMs)
        let total = try #require(timings.totalMs)
        #expect(dns <= connect && connect <= firstByte && firstByte <= total)
        #expect(timings.tlsMs == nil)
        #expect(ok.sourceAddress == "127.0.0.1")

        let missing = await runner.run(
            ProbeSpec(id: "h", kind: .http, target: server.url + "/other", timeoutMs: 2_000, expect: ProbeExpectation(bodyContains: "ok")))
        #expect(missing.outcome == .ok)
        #expect(missing.httpStatus == 404)
        #expect(missing.checkFailures == ["status: expected 200–399, got 404", "body: does not contain \"ok\""])
    }

    @Test("http: a server slower than the timeout is a timeout; a closed port is refused")
    func httpTimeoutAndRefused() async throws {
        let slow = try MiniHTTPServer { _ in
            usleep(1_500_000)
            return .text("late")
        }
        defer { slow.stop() }
        let late = await runner.run(ProbeSpec(id: "h", kind: .http, target: slow.url + "/", timeoutMs: 300))
        #expect(late.outcome == .timeout)
        let refused = await runner.run(ProbeSpec(id: "h", kind: .http, target: "http://127.0.0.1:\(freeTCPPort())/", timeoutMs: 1_000))
        #expect(refused.outcome == .refused)
    }

    @Test("egress echo: the public address the endpoint saw is reported and checked against the NAT's Elastic IP")
    func egressEcho() async throws {
        let echo = try MiniHTTPServer(handler: EgressEchoService.answer)
        defer { echo.stop() }
        let matching = await runner.run(
            ProbeSpec(
                id: "e", kind: .http, target: echo.url + "/", timeoutMs: 2_000, expect: ProbeExpectation(egressIP: "127.0.0.1"), egressEcho: true))
        #expect(matching.egressIP == "127.0.0.1")
        #expect(matching.checkFailures == nil)
        let json = await runner.run(
            ProbeSpec(
                id: "e", kind: .http, target: echo.url + "/?format=json", timeoutMs: 2_000, expect: ProbeExpectation(egressIP: "203.0.113.10"),
                egressEcho: true))
        #expect(json.egressIP == "127.0.0.1")
        #expect(json.checkFailures == ["egress IP: expected 203.0.113.10, the echo endpoint saw 127.0.0.1"])
    }

    @Test(
        "egress echo: the address is read from the shapes echo services answer with",
        arguments: [
            ("203.0.113.10\n", "203.0.113.10"),
            ("{\"ip\": \"198.51.100.7\"}", "198.51.100.7"),
            ("{\"origin\": \"198.51.100.7, 10.0.0.1\"}", "198.51.100.7"),
            ("{\"headers\": {\"x\": \"1.2.3\"}, \"source_ip\": \"192.0.2.44\"}", "192.0.2.44"),
            ("<html>Current IP Address: 203.0.113.99</html>", "203.0.113.99"),
            ("version 1.2.3.4.5 then 999.1.1.1 then 10.9.8.7.", "10.9.8.7"),
        ])
    func egressParse(text: String, address: String) {
        #expect(EgressEcho.address(in: text) == address)
    }

    @Test("egress echo: a response without an address yields none")
    func egressParseNone() {
        #expect(EgressEcho.address(in: "<html>rate limited</html>") == nil)
        #expect(EgressEcho.address(in: "") == nil)
    }

    @Test("dns: the system resolver answers for localhost")
    func dnsSystem() async {
        let result = await runner.run(ProbeSpec(id: "d", kind: .dns, target: "localhost", timeoutMs: 2_000))
        #expect(result.outcome == .ok)
        #expect(result.answers?.contains("127.0.0.1") == true)
    }

    @Test("dns: a given server is asked directly; NXDOMAIN and silence are told apart")
    func dnsServer() async {
        let server = UDPServer { query in
            guard query.count > 12 else { return nil }
            var reply = query
            reply[2] = 0x81  // response, recursion desired
            let name = String(decoding: query[13..<min(query.count, 15)], as: UTF8.self)
            if name == "db" {
                reply[3] = 0x80
                reply[7] = 1  // one answer
                reply += [0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 2, 30]
            } else {
                reply[3] = 0x83  // NXDOMAIN
            }
            return reply
        }
        defer { server.stop() }
        let found = await runner.run(ProbeSpec(id: "d", kind: .dns, target: "db.internal", timeoutMs: 1_000, server: "127.0.0.1:\(server.port)"))
        #expect(found.outcome == .ok)
        #expect(found.answers == ["10.0.2.30"])
        let missing = await runner.run(ProbeSpec(id: "d", kind: .dns, target: "nope.internal", timeoutMs: 1_000, server: "127.0.0.1:\(server.port)"))
        #expect(missing.outcome == .dnsFailure)
        #expect(missing.detail?.contains("NXDOMAIN") == true)

        let silent = UDPServer { _ in nil }
        defer { silent.stop() }
        let nothing = await runner.run(ProbeSpec(id: "d", kind: .dns, target: "db.internal", timeoutMs: 200, server: "127.0.0.1:\(silent.port)"))
        #expect(nothing.outcome == .timeout)
    }

    @Test("a cancelled probe returns promptly instead of waiting for its timeout")
    func cancellation() async throws {
        let silent = UDPServer { _ in nil }
        defer { silent.stop() }
        let runner = self.runner
        let task = Task { await runner.run(ProbeSpec(id: "u", kind: .udpEcho, target: "127.0.0.1", port: silent.port, timeoutMs: 10_000)) }
        try await Task.sleep(for: .milliseconds(100))
        let clock = ContinuousClock()
        let started = clock.now
        task.cancel()
        let result = await task.value
        #expect(clock.now - started < .seconds(5))
        #expect(result.outcome == .timeout)
    }
}
