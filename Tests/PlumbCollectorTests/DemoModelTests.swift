import Foundation
import PlumbCollector
import PlumbCore
import PlumbWire
import Testing

@Suite("the demo model")
struct DemoModelTests {
    @Test("S3 down (while SQS still answers through the same NAT) blames the S3 endpoint, not the NAT")
    func s3Down() async throws {
        let harness = try await Harness.make(model: repositoryRoot.appendingPathComponent("examples/demo.yaml").path)
        defer { harness.cleanup() }
        let instances = ["bastion", "nat", "app-1", "app-2", "db"]
        _ = try await harness.registerAll(instances)
        var sequence: Int64 = 0
        for step in 0..<6 {
            sequence += 1
            for agent in instances {
                let plan = try await harness.collector.plan(agentId: agent).plan
                let results = plan.probes.map { probe in
                    result(for: probe, agrees: !(step >= 3 && probe.id == "endpoint:s3"), at: 10_000 + Int64(step) * 1_000)
                }
                _ = try await harness.collector.ingest(
                    Report(agentId: agent, sequence: sequence, createdAtMs: 0, results: results), agentId: agent, now: 10_000 + Int64(step) * 1_000)
            }
        }
        let findings = await harness.collector.currentFindings(now: 16_000)
        #expect(findings.map(\.kind) == [.unexpectedBlock], "\(findings.map { "\($0.kind) \($0.component) \($0.summary)" })")
        #expect(findings.first?.component == "s3")
    }
}
