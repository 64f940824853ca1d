import Foundation
import PlumbAgent
import PlumbFakes
import PlumbProbes
import PlumbWire
import Synchronization
import Testing

@Suite("discovery: IMDSv2 and local interfaces")
struct DiscoveryTests {
    static let instance = FakeIMDS.Instance(
        instanceId: "i-0abc", zone: "eu-west-1b", region: "eu-west-1",
        interfaces: [
            .init(
                mac: "02:00:00:00:00:02", interfaceId: "eni-static", deviceNumber: 1, subnetId: "subnet-private", privateIPv4s: ["10.0.2.50"],
                securityGroupIds: ["sg-zk"]),
            .init(
                mac: "02:00:00:00:00:01", interfaceId: "eni-primary", deviceNumber: 0, subnetId: "subnet-public",
                privateIPv4s: ["10.0.1.10", "10.0.1.11"],
                publicIPv4s: ["203.0.113.20"], securityGroupIds: ["sg-bastion", "sg-ssh"]),
        ])

    @Test("the fake IMDS enforces the token rules an agent must follow")
    func fakeIsStrict() async throws {
        let imds = try FakeIMDS(instance: Self.instance)
        defer { imds.stop() }
        func call(_ method: String, _ path: String, _ headers: [(String, String)]) async -> Int {
            await Curl.perform(HTTPRequest(method: method, url: imds.endpoint + path, headers: headers, body: method == "PUT" ? [] : nil)).status
        }
        #expect(await call("PUT", "/latest/api/token", []) == 400)
        #expect(await call("PUT", "/latest/api/token", [("X-aws-ec2-metadata-token-ttl-seconds", "0")]) == 400)
        #expect(await call("PUT", "/latest/api/token", [("X-aws-ec2-metadata-token-ttl-seconds", "21601")]) == 400)
        #expect(await call("PUT", "/latest/api/token", [("X-aws-ec2-metadata-token-ttl-seconds", "60"), ("X-Forwarded-For", "1.2.3.4")]) == 403)
        #expect(await call("PUT", "/2021-03-23/api/token", [("X-aws-ec2-metadata-token-ttl-seconds", "60")]) == 403)
        #expect(await call("GET", "/latest/meta-data/instance-id", []) == 401)
        #expect(await call("GET", "/latest/meta-data/instance-id", [("X-aws-ec2-metadata-token", "forged")]) == 401)
    }

    @Test("IMDSv2: instance, placement and every ENI with its device number, subnet, addresses and security groups")
    func imds() async throws {
        let imds = try FakeIMDS(instance: Self.instance)
        defer { imds.stop() }
        let discoverer = Discoverer(imds: IMDSClient(endpoint: imds.endpoint), overrides: .init(), logger: quietLogger)
        let identity = await discoverer.discover()
        #expect(identity.source == .imds)
        #expect(identity.instanceId == "i-0abc")
        #expect(identity.zone == "eu-west-1b")
        #expect(identity.region == "eu-west-1")
        #expect(identity.interfaces.map(\.interfaceId) == ["eni-primary", "eni-static"])
        let primary = identity.interfaces[0]
        #expect(primary.deviceNumber == 0)
        #expect(primary.subnetId == "subnet-public")
        #expect(primary.privateIPv4s == ["10.0.1.10", "10.0.1.11"])
        #expect(primary.publicIPv4s == ["203.0.113.20"])
        #expect(primary.securityGroupIds == ["sg-bastion", "sg-ssh"])
        #expect(identity.interfaces[1].publicIPv4s == [])  // 404 for public-ipv4s: no public address
        // One token for the whole pass: tokens are reused until they near expiry.
        #expect(imds.tokenRequests == 1)
    }

    @Test("a revoked token is replaced after the 401, and the pass still succeeds")
    func tokenRefreshOn401() async throws {
        let imds = try FakeIMDS(instance: Self.instance)
        defer { imds.stop() }
        let client = IMDSClient(endpoint: imds.endpoint)
        #expect(try await client.get("instance-id") == "i-0abc")
        imds.revokeTokens()
        #expect(try await client.get("instance-id") == "i-0abc")
        #expect(imds.tokenRequests == 2)
        #expect(imds.rejections[401] == 1)
    }

    @Test("a token is refreshed before it expires, without a 401")
    func tokenRefreshBeforeExpiry() async throws {
        let imds = try FakeIMDS(instance: Self.instance)
        defer { imds.stop() }
        // A clock the test moves, so a loaded machine cannot push the second request into the refresh margin; the
        // fake IMDS keeps the token for the TTL in real time, long enough for any machine.
        let now = Mutex<UInt64>(1_000_000_000)
        let client = IMDSClient(endpoint: imds.endpoint, tokenTTLSeconds: 120, clock: { now.withLock { $0 } })
        _ = try await client.get("instance-id")
        now.withLock { $0 += 50_000_000_000 }  // 50 s: outside the refresh margin (60 s, at most half the TTL)
        _ = try await client.get("instance-id")
        #expect(imds.tokenRequests == 1)
        now.withLock { $0 += 20_000_000_000 }  // 70 s: inside it, and the token has not expired yet
        _ = try await client.get("instance-id")
        #expect(imds.tokenRequests == 2)
        #expect(imds.rejections[401] == nil)
    }

    @Test("after IMDS answered once, a passing failure keeps that identity instead of flapping to the local one")
    func noFlapping() async throws {
        let imds = try FakeIMDS(instance: Self.instance)
        defer { imds.stop() }
        let discoverer = Discoverer(imds: IMDSClient(endpoint: imds.endpoint), overrides: .init(), logger: quietLogger)
        let first = await discoverer.discover()
        imds.setDisabled(true)
        let during = await discoverer.discover(previous: first)
        #expect(during == first)
        #expect(first.changes(to: during).isEmpty)
    }

    @Test("IMDS turned off (403) or absent: local interfaces plus the configured identity")
    func fallback() async throws {
        let imds = try FakeIMDS(instance: Self.instance)
        defer { imds.stop() }
        imds.setDisabled(true)
        let overrides = AgentConfiguration.IdentityOverrides(instanceId: "i-configured", zone: "lab-a")
        let disabled = await Discoverer(imds: IMDSClient(endpoint: imds.endpoint), overrides: overrides, logger: quietLogger).discover()
        #expect(disabled.source == .local)
        #expect(disabled.instanceId == "i-configured")
        #expect(disabled.zone == "lab-a")
        let absent = await Discoverer(imds: IMDSClient(endpoint: "http://127.0.0.1:\(freeTCPPort())"), overrides: overrides, logger: quietLogger)
            .discover()
        #expect(absent.source == .local)
        // Every kernel interface with a MAC and an IPv4 address is reported; loopback is not.
        let kernel = LocalInterfaces.list().filter { !$0.isLoopback && $0.mac != nil && !$0.addresses.isEmpty }
        #expect(Set(absent.interfaces.map(\.mac)) == Set(kernel.compactMap(\.mac)))
    }

    @Test("an ENI moving away, appearing, or changing addresses is noticed on the next pass")
    func changes() async throws {
        let imds = try FakeIMDS(instance: Self.instance)
        defer { imds.stop() }
        let discoverer = Discoverer(imds: IMDSClient(endpoint: imds.endpoint), overrides: .init(), logger: quietLogger)
        let before = await discoverer.discover()
        #expect(before.changes(to: before).isEmpty)
        var moved = Self.instance
        moved.interfaces.removeAll { $0.interfaceId == "eni-static" }
        moved.interfaces[0].privateIPv4s = ["10.0.1.10"]
        imds.update(moved)
        let after = await discoverer.discover()
        #expect(
            before.changes(to: after) == [
                "interface eni-static (02:00:00:00:00:02) left",
                "interface eni-primary addresses changed from [\"10.0.1.10\", \"10.0.1.11\"] to [\"10.0.1.10\"]",
            ])
        #expect(after.changes(to: before).first == "interface eni-static (02:00:00:00:00:02) appeared with 10.0.2.50")
    }
}
