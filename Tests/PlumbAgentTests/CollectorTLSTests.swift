import Foundation
import PlumbAgent
import PlumbProbes
import Testing

@Suite("the agent's collector URL: https with a CA file, plain HTTP to loopback only unless insecure")
struct CollectorTLSTests {
    /// Loads a configuration file with `collector:` set to `body`.
    func load(_ body: String) throws -> AgentConfiguration {
        let directory = NSTemporaryDirectory() + "plumb-agent-tls-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/agent.yaml"
        try "collector:\n\(body)".write(toFile: path, atomically: true, encoding: .utf8)
        return try AgentConfiguration.load(path: path)
    }

    @Test("http:// to a host that is not on the loopback is refused, and the message says what to do")
    func plainHTTPToAnotherHostIsRefused() throws {
        let error = #expect(throws: AgentConfiguration.Invalid.self) { try load("  url: http://10.0.0.5:7470\n") }
        let message = error?.description ?? ""
        #expect(message.contains("http://10.0.0.5:7470"), "\(message)")
        #expect(message.contains("Use https:// with collector.caFile, or set collector.insecure: true"), "\(message)")
    }

    @Test("http:// to loopback, and http:// anywhere with insecure: true, are accepted")
    func plainHTTPToLoopbackOrInsecureIsAccepted() throws {
        #expect(try load("  url: http://127.0.0.1:7470\n").collectorURL == "http://127.0.0.1:7470")
        let insecure = try load("  url: http://10.0.0.5:7470\n  insecure: true\n")
        #expect(insecure.collectorTLS.insecure)
        #expect(insecure.collectorURL == "http://10.0.0.5:7470")
    }

    @Test("https:// with a CA file and a client certificate: the files are kept, and a missing one is named")
    func httpsWithFiles() throws {
        let directory = NSTemporaryDirectory() + "plumb-agent-tls-files-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for name in ["ca.pem", "agent.pem", "agent-key.pem"] { try "x".write(toFile: "\(directory)/\(name)", atomically: true, encoding: .utf8) }
        let configuration = try load(
            "  url: https://10.0.0.5:7470\n  caFile: \(directory)/ca.pem\n  clientCertificateFile: \(directory)/agent.pem\n  clientKeyFile: \(directory)/agent-key.pem\n"
        )
        #expect(
            configuration.collectorTLS
                == CollectorTLS(
                    caFile: "\(directory)/ca.pem", clientCertificateFile: "\(directory)/agent.pem", clientKeyFile: "\(directory)/agent-key.pem"))
        // https:// without a CA file uses the system's bundle: nothing to check here.
        #expect(try load("  url: https://collector.example:7470\n").collectorTLS.caFile == nil)

        let error = #expect(throws: AgentConfiguration.Invalid.self) { try load("  url: https://10.0.0.5:7470\n  caFile: \(directory)/nope.pem\n") }
        #expect(error?.description.contains("collector.caFile: cannot read \(directory)/nope.pem") == true, "\(error.map { "\($0)" } ?? "")")
    }

    @Test("the environment can allow plain HTTP and name the CA file")
    func environment() throws {
        var configuration = AgentConfiguration()
        #expect(throws: AgentConfiguration.Invalid.self) { try configuration.apply(environment: ["PLUMB_COLLECTOR_URL": "http://collector:7470"]) }
        try configuration.apply(environment: ["PLUMB_COLLECTOR_URL": "http://collector:7470", "PLUMB_INSECURE": "1"])
        #expect(configuration.collectorTLS.insecure)
    }

    @Test(
        "loopback hosts",
        arguments: [
            ("http://127.0.0.1:7470", true), ("http://127.255.0.9/", true), ("http://localhost:7470/v1", true), ("http://LOCALHOST", true),
            ("http://[::1]:7470", true), ("http://user@127.0.0.1:1", true), ("http://10.0.0.5:7470", false), ("http://128.0.0.1", false),
            ("http://[::2]:7470", false), ("http://localhost.example:7470", false), ("http://127.0.0.1.example", false),
        ])
    func loopback(url: String, isLoopback: Bool) {
        #expect(CollectorTLS.isLoopback(host: CollectorTLS.host(of: url)) == isLoopback)
    }
}
