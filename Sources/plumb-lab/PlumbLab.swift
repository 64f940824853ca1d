import ArgumentParser
import Foundation
import PlumbCore
import PlumbFakes
import PlumbIdentity
import PlumbModelIO
import PlumbProbes
import PlumbWire
import Synchronization

/// The lab's helper: reads the lab model and generates what deploy/lab/lab.sh builds, and runs the lab's stand-ins
/// (instance metadata, the internet's endpoints, the webhook receiver). Not part of a deployment.
@main
struct PlumbLab: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plumb-lab",
        abstract: "The network-namespace lab's helper (see docs/lab.md): layout and firewall rules from a model, and the lab's stand-in services.",
        subcommands: [Layout.self, FirewallCommand.self, IMDS.self, HTTP.self, WebhookReceiver.self])
}

func loadModel(_ path: String) throws -> Topology {
    let loaded = ModelLoader.load(path: path)
    let errors = loaded.diagnostics.filter { $0.severity == .error }
    guard let topology = loaded.topology, errors.isEmpty else {
        throw ValidationError(errors.map(\.description).joined(separator: "\n"))
    }
    return topology
}

/// Serves until the process is stopped (SIGTERM's default action ends it; the stand-ins keep no state to flush).
func waitForSignal() -> Never {
    while true { sleep(3_600) }
}

struct Layout: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the lab's layout: subnet, eni, public, listen, lb and endpoint lines for lab.sh.")
    @Option(help: "The lab model.") var model: String

    func run() throws { print(try LabLayout(topology: loadModel(model)).describe(), terminator: "") }
}

struct FirewallCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "firewall", abstract: "Print iptables-restore input: an instance's or load balancer's security groups, or the router's NACLs.")
    @Option(help: "The lab model.") var model: String
    @Option(help: "An instance (id or name): its security groups.") var instance: String?
    @Option(name: .customLong("load-balancer"), help: "A load balancer (id or name): its security groups.") var loadBalancer: String?
    @Flag(help: "The router: network ACLs and the internet gateway.") var router = false

    func run() throws {
        let firewall = Firewall(layout: LabLayout(topology: try loadModel(model)))
        if let instance {
            print(try firewall.instance(instance), terminator: "")
        } else if let loadBalancer {
            print(try firewall.loadBalancer(loadBalancer), terminator: "")
        } else if router {
            print(firewall.router(), terminator: "")
        } else {
            throw ValidationError("give --instance, --load-balancer or --router")
        }
    }
}

struct IMDS: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Serve IMDSv2 for one instance, inside its namespace: the ENIs are the model's ENIs whose MAC is on a link here now, so an ENI moved to another namespace shows up there."
    )
    @Option(help: "The lab model.") var model: String
    @Option(help: "The instance id.") var instance: String
    @Option(help: "The address to listen on.") var address = "169.254.169.254"
    @Option(help: "The port.") var port = 80
    @Option(
        help:
            "A PEM RSA private key: serve /latest/dynamic/instance-identity/document and its signature, signed with it as AWS signs them (the lab's collector trusts its certificate)."
    )
    var identityKey: String?
    @Option(help: "The account id in the identity document (default: the model's vpc.account, else 000000000000).") var account: String?

    func run() throws {
        let topology = try loadModel(model)
        guard let own = topology.instances.first(where: { $0.id == instance }) else {
            throw ValidationError("no instance \(instance) in \(model)")
        }
        let zone = topology.subnets.first { $0.id == own.interfaces.first?.subnet }?.zone ?? "us-east-1a"
        var proof: InstanceIdentityProof?
        if let identityKey {
            guard let pem = try? String(contentsOfFile: identityKey, encoding: .utf8) else { throw ValidationError("cannot read \(identityKey)") }
            let signer: InstanceIdentitySigner
            do {
                signer = try InstanceIdentitySigner(pem: pem)
            } catch {
                throw ValidationError("\(identityKey): not a PEM RSA private key (\(error))")
            }
            let document = InstanceIdentityDocument(
                accountId: account ?? topology.vpc.account ?? "000000000000", instanceId: own.id,
                region: topology.vpc.region ?? String(zone.dropLast()),
                availabilityZone: zone, privateIp: own.interfaces.first.map { $0.privateIp.description }, pendingTime: "2026-01-01T00:00:00Z",
                instanceType: "t3.micro", imageId: "ami-0lab0000000000000")
            proof = try signer.proof(for: document.text)
        }
        var catalog: [String: FakeIMDS.Interface] = [:]
        for eni in topology.instances.flatMap(\.interfaces) {
            guard let mac = eni.mac?.lowercased(), let subnet = topology.subnets.first(where: { $0.id == eni.subnet }) else { continue }
            catalog[mac] = FakeIMDS.Interface(
                mac: mac, interfaceId: eni.id, deviceNumber: eni.deviceIndex ?? 0, subnetId: subnet.id, subnetCIDR: subnet.cidr.description,
                vpcId: topology.vpc.id, privateIPv4s: [eni.privateIp.description] + (eni.secondaryIps ?? []).map(\.description),
                publicIPv4s: [eni.elasticIp ?? eni.publicIp].compactMap { $0?.description }, securityGroupIds: eni.securityGroups)
        }
        let byMAC = catalog
        let signed = proof
        let current: @Sendable () -> FakeIMDS.Instance = {
            let present = Set(LocalInterfaces.list().compactMap { $0.mac?.lowercased() })
            let interfaces = byMAC.filter { present.contains($0.key) }.values.sorted { $0.deviceNumber < $1.deviceNumber }
            return FakeIMDS.Instance(
                instanceId: own.id, zone: zone, region: String(zone.dropLast()), interfaces: interfaces, identityDocument: signed?.document,
                identitySignature: signed?.signature)
        }
        let server = try FakeIMDS(instance: current(), address: address, port: port)
        Thread.detachNewThread {
            var last = current()
            while true {
                Thread.sleep(forTimeInterval: 1)
                let now = current()
                if now != last {
                    server.update(now)
                    last = now
                }
            }
        }
        announce("imds for \(own.id) on \(address):\(port)")
        waitForSignal()
    }
}

struct HTTP: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve plain HTTP: a fixed answer (an S3 or application stand-in) or the caller's address (--egress-echo).")
    @Option(help: "The address to listen on.") var address: String
    @Option(help: "The port.") var port: Int
    @Option(help: "The answer's body.") var text = "ok"
    @Flag(help: "Answer with the caller's source address, as checkip-style services do.") var egressEcho = false

    func run() throws {
        let text = self.text
        let echo = egressEcho
        _ = try MiniHTTPServer(address: address, port: port) { request in
            echo ? EgressEchoService.answer(request) : .text(text + "\n")
        }
        announce("http on \(address):\(port)")
        waitForSignal()
    }
}

struct WebhookReceiver: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "receiver",
        abstract:
            "A webhook receiver: verifies Plumb-Signature as docs/alerts.md describes and appends one JSON line per delivery to a file (at, key, event, signatureValid, payload)."
    )
    @Option(help: "The address to listen on.") var address = "127.0.0.1"
    @Option(help: "The port.") var port: Int
    @Option(help: "The shared secret.") var secret: String
    @Option(help: "The file deliveries are appended to.") var log: String
    @Option(help: "Refuse timestamps older than this many seconds (replay protection).") var tolerance = 300

    func run() throws {
        // Appends: a restarted receiver keeps what it logged before.
        guard FileManager.default.fileExists(atPath: log) || FileManager.default.createFile(atPath: log, contents: nil),
            let handle = FileHandle(forWritingAtPath: log)
        else { throw ValidationError("cannot write \(log)") }
        handle.seekToEndOfFile()
        let output = Mutex(handle)
        let key = Array(secret.utf8)
        let tolerance = Int64(self.tolerance)
        _ = try MiniHTTPServer(address: address, port: port) { request in
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let timestamp = request.headers["plumb-timestamp"] ?? ""
            let given = request.headers["plumb-signature"] ?? ""
            let expected = "v1=" + hexString(SHA256.hmac(key: key, message: Array("\(timestamp).".utf8) + request.body))
            let fresh = Int64(timestamp).map { abs(now / 1000 - $0) <= tolerance } ?? false
            let valid = fresh && constantTimeEqual(Array(given.utf8), Array(expected.utf8))
            let payload = (try? JSONSerialization.jsonObject(with: Data(request.body))) != nil ? request.text : "null"
            let line =
                "{\"at\":\(now),\"key\":\(quoted(request.headers["idempotency-key"] ?? "")),\"event\":\(quoted(request.headers["plumb-event"] ?? "")),\"signatureValid\":\(valid),\"payload\":\(payload.replacingOccurrences(of: "\n", with: " "))}\n"
            output.withLock { $0.write(Data(line.utf8)) }
            return valid ? .text("ok\n") : .text("bad signature\n", status: 401)
        }
        announce("receiver on \(address):\(port), writing \(log)")
        waitForSignal()
    }
}

/// A line on standard output, flushed (the lab's logs show when each stand-in came up).
func announce(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func quoted(_ text: String) -> String {
    String(decoding: (try? JSONEncoder().encode(text)) ?? Data("\"\"".utf8), as: UTF8.self)
}
