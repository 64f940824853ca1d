import Foundation
import Glibc
import PlumbProbes
import PlumbWire
import Synchronization
import Testing

@Suite("udp-echo and the responder")
struct UDPEchoTests {
    let runner = ProbeRunner()

    func responder(maxRepliesPerSecond: Double = 2_000) throws -> Responder {
        try Responder(
            address: "127.0.0.2", port: 0,
            identity: ResponderSelf(agentId: "agent-b", instanceId: "i-b", interfaceIds: ["00:00:00:00:00:00": "eni-lo"]),
            maxRepliesPerSecond: maxRepliesPerSecond)
    }

    func probe(_ port: Int, burst: Int = 5, timeoutMs: Int = 500, identity: ExpectedIdentity? = nil) -> ProbeSpec {
        ProbeSpec(
            id: "u", kind: .udpEcho, target: "127.0.0.2", port: port, timeoutMs: timeoutMs,
            expect: ProbeExpectation(verdict: .reach, identity: identity),
            burst: burst)
    }

    @Test("the reply carries the responder's agent, instance, ENI, MAC and the address the probe arrived on")
    func identity() async throws {
        let responder = try responder()
        defer { responder.stop() }
        let result = await runner.run(probe(responder.port))
        #expect(result.outcome == .ok)
        #expect(result.burst?.sent == 5)
        #expect(result.burst?.received == 5)
        #expect(result.burst?.lossRatio == 0)
        #expect(result.burst?.rttMinMs ?? -1 >= 0)
        #expect(result.sourceAddress == "127.0.0.1")
        let identity = try #require(result.identity)
        #expect(identity.agentId == "agent-b")
        #expect(identity.instanceId == "i-b")
        #expect(identity.address == "127.0.0.2")
        #expect(identity.interface == "lo")
        #expect(identity.mac == "00:00:00:00:00:00")
        #expect(identity.interfaceId == "eni-lo")
        #expect(result.checkFailures == nil)
        #expect(result.matchesExpectation)
    }

    @Test("an identity other than the expected one is a failed check, not a failed probe")
    func identityMismatch() async throws {
        let responder = try responder()
        defer { responder.stop() }
        let result = await runner.run(probe(responder.port, identity: ExpectedIdentity(instanceId: "i-zookeeper-1", interfaceId: "eni-lo")))
        #expect(result.outcome == .ok)
        #expect(result.checkFailures == ["identity: expected instance i-zookeeper-1, the responder answered as i-b"])
        #expect(!result.matchesExpectation)
        // The responder learns a new identity (an ENI moved in) without a restart.
        responder.update(ResponderSelf(agentId: "agent-z", instanceId: "i-zookeeper-1", interfaceIds: ["00:00:00:00:00:00": "eni-lo"]))
        let after = await runner.run(probe(responder.port, identity: ExpectedIdentity(instanceId: "i-zookeeper-1")))
        #expect(after.checkFailures == nil)
    }

    @Test("dropped replies are counted as loss")
    func loss() async throws {
        let responder = try responder()
        defer { responder.stop() }
        responder.inject(.init(dropSequences: [1, 3]))
        let result = await runner.run(probe(responder.port, timeoutMs: 300))
        #expect(result.outcome == .ok)
        #expect(result.burst?.received == 3)
        #expect(result.burst?.lossRatio == 0.4)
    }

    @Test("a burst without any reply is a timeout")
    func allLost() async throws {
        let responder = try responder()
        defer { responder.stop() }
        responder.inject(.init(dropSequences: Set(0..<5)))
        let result = await runner.run(probe(responder.port, timeoutMs: 200))
        #expect(result.outcome == .timeout)
        #expect(result.burst?.received == 0)
        #expect(result.burst?.lossRatio == 1)
        #expect(result.identity == nil)
    }

    @Test("duplicated replies are counted once and reported as duplicates")
    func duplicates() async throws {
        let responder = try responder()
        defer { responder.stop() }
        responder.inject(.init(duplicateSequences: [0]))
        let result = await runner.run(probe(responder.port, burst: 3))
        #expect(result.burst?.received == 3)
        #expect(result.burst?.duplicates == 1)
    }

    @Test("a closed port answers with ICMP port unreachable: refused, without waiting for the timeout")
    func refused() async throws {
        let port = closedUDPPort()
        let result = await runner.run(ProbeSpec(id: "u", kind: .udpEcho, target: "127.0.0.1", port: port, timeoutMs: 5_000))
        #expect(result.outcome == .refused)
        #expect((result.timings.totalMs ?? 5_000) < 4_000)
    }

    @Test("replies with another nonce are dropped")
    func foreignNonce() async throws {
        // A rogue echo that answers every request with a valid reply to some other probe.
        let rogue = UDPServer { request in
            var bytes = request
            bytes[4] = 2
            bytes[8] ^= 0xff  // flip the nonce
            return Array(bytes.prefix(64))
        }
        defer { rogue.stop() }
        let result = await runner.run(ProbeSpec(id: "u", kind: .udpEcho, target: "127.0.0.1", port: rogue.port, timeoutMs: 200, burst: 3))
        #expect(result.outcome == .timeout)
        #expect(result.burst?.received == 0)
    }

    @Test("malformed datagrams and requests too short to answer are ignored; the responder keeps answering")
    func malformed() async throws {
        let responder = try responder()
        defer { responder.stop() }
        #expect(exchange(Array("hello".utf8), to: responder.port, address: 0x7f00_0002) == nil)
        // A valid header without padding: answering would send more than was received.
        let short = Array(EchoPacket.request(sequence: 0, nonce: 1, sentAt: 1).prefix(24))
        #expect(exchange(short, to: responder.port, address: 0x7f00_0002) == nil)
        #expect(responder.statistics.malformed == 2)
        let result = await runner.run(probe(responder.port))
        #expect(result.outcome == .ok)
    }

    @Test("the responder caps its answers per second")
    func rateLimited() async throws {
        let responder = try responder(maxRepliesPerSecond: 10)
        defer { responder.stop() }
        let result = await runner.run(probe(responder.port, burst: 40, timeoutMs: 300))
        let received = try #require(result.burst?.received)
        #expect(received >= 5 && received <= 15)
        #expect(responder.statistics.rateLimited >= 25)
    }

    @Test("a flood from one address spends its own budget: the planned probes of another peer are all answered")
    func floodFromOneSource() async throws {
        let responder = try responder()
        defer { responder.stop() }
        // 127.0.0.3 sends valid requests, ten times more than the responder's whole budget, for the whole test.
        let flooder = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(flooder) }
        var source = sockaddr_in()
        source.sin_family = sa_family_t(AF_INET)
        source.sin_addr.s_addr = inet_addr("127.0.0.3")
        _ = withUnsafePointer(to: &source) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(flooder, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_addr.s_addr = inet_addr("127.0.0.2")
        target.sin_port = in_port_t(UInt16(responder.port).bigEndian)
        let flooding = Atomic<Bool>(true)
        let sent = Atomic<Int>(0)
        let destination = target
        let thread = Thread {
            var target = destination
            let request = EchoPacket.request(sequence: 1, nonce: 42, sentAt: 0)
            while flooding.load(ordering: .relaxed) {
                let count = withUnsafePointer(to: &target) { pointer in
                    pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                        request.withUnsafeBytes { sendto(flooder, $0.baseAddress, $0.count, 0, address, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                    }
                }
                if count > 0 { sent.add(1, ordering: .relaxed) }
                // About 20,000 a second: ten times what the responder answers in all.
                if sent.load(ordering: .relaxed) % 200 == 0 { usleep(10_000) }
            }
        }
        thread.start()
        defer { flooding.store(false, ordering: .relaxed) }
        try await Task.sleep(for: .milliseconds(300))
        // The planned peer (127.0.0.1): every burst answered in full while the flood goes on.
        for _ in 0..<5 {
            let result = await runner.run(probe(responder.port, burst: 10, timeoutMs: 500))
            #expect(result.outcome == .ok)
            #expect(result.burst?.received == 10, "\(String(describing: result.burst))")
            try await Task.sleep(for: .milliseconds(200))
        }
        flooding.store(false, ordering: .relaxed)
        #expect(sent.load(ordering: .relaxed) > 20_000, "the flood was a flood: \(sent.load(ordering: .relaxed))")
        #expect(responder.statistics.rateLimited > 1_000)
    }

    @Test("the TCP side writes the identity line for the address that was connected to")
    func tcpIdentity() async throws {
        let responder = try responder()
        defer { responder.stop() }
        let result = await runner.run(
            ProbeSpec(
                id: "t", kind: .tcp, target: "127.0.0.2", port: responder.port,
                expect: ProbeExpectation(identity: ExpectedIdentity(agentId: "agent-b")), readIdentity: true))
        #expect(result.outcome == .ok, "\(result)")
        #expect(result.identity?.address == "127.0.0.2", "\(result.detail ?? "")")
        #expect(result.identity?.instanceId == "i-b")
        #expect(result.identity?.interface == "lo")
        #expect(result.checkFailures == nil)
    }

    @Test("echo packets and identity lines survive a round trip")
    func codecs() {
        let identity = ResponderIdentity(
            agentId: "a b", instanceId: "i-1", mac: "02:00:00:00:00:01", address: "10.0.1.5", interface: "eth1", interfaceId: "eni-9")
        let request = EchoPacket.request(sequence: 7, nonce: 0xdead_beef, sentAt: 42)
        #expect(request.count == EchoPacket.requestSize)
        let header = request.withUnsafeBytes { EchoPacket.parseHeader($0) }
        #expect(header == EchoPacket.Header(type: 1, sequence: 7, nonce: 0xdead_beef, sentAt: 42))
        let reply = EchoPacket.reply(to: header!, identity: identity, requestLength: request.count)!
        #expect(reply.withUnsafeBytes { EchoPacket.parseIdentity($0) } == identity)
        #expect(EchoPacket.reply(to: header!, identity: identity, requestLength: 30) == nil)
        #expect(IdentityLine.decode(IdentityLine.encode(identity).trimmingCharacters()) == identity)
        #expect(IdentityLine.decode("SSH-2.0-OpenSSH_9.2") == nil)
    }
}

extension String {
    fileprivate func trimmingCharacters() -> String { String(self.dropLast(self.hasSuffix("\n") ? 1 : 0)) }
}
