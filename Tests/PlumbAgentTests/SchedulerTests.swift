import CPlumbSys
import Foundation
import PlumbAgent
import PlumbFakes
import PlumbProbes
import PlumbWire
import Synchronization
import Testing

@Suite("scheduler and plan sync")
struct SchedulerTests {
    final class Collected: Sendable {
        let results = Mutex<[ProbeResult]>([])
        func add(_ result: ProbeResult) { results.withLock { $0.append(result) } }
        var all: [ProbeResult] { results.withLock { $0 } }
    }

    @Test("a new plan replaces the probes without a restart: removed probes stop, new ones start, kept ones keep going")
    func applyPlan() async throws {
        let server = try MiniHTTPServer { _ in .text("ok") }
        defer { server.stop() }
        let collected = Collected()
        let scheduler = Scheduler(emit: collected.add)
        func tcp(_ id: String) -> ProbeSpec { ProbeSpec(id: id, kind: .tcp, target: "127.0.0.1", port: server.port, intervalMs: 100, timeoutMs: 500) }
        scheduler.apply(Plan(probes: [tcp("keep"), tcp("old")]))
        #expect(await eventually(seconds: 30) { Set(collected.all.map(\.probeId)) == ["keep", "old"] })
        scheduler.apply(Plan(probes: [tcp("keep"), tcp("new")]))
        #expect(scheduler.probeIds == ["keep", "new"])
        try await Task.sleep(for: .milliseconds(50))  // a result of "old" already being handed over may land now
        let mark = collected.all.count
        #expect(await eventually(seconds: 30) { collected.all.dropFirst(mark).contains { $0.probeId == "new" } })
        try await Task.sleep(for: .milliseconds(300))
        let after = collected.all.dropFirst(mark)
        #expect(!after.contains { $0.probeId == "old" })
        #expect(after.contains { $0.probeId == "keep" })
        await scheduler.stop()
        let stopped = collected.all.count
        try await Task.sleep(for: .milliseconds(300))
        #expect(collected.all.count == stopped)
    }

    @Test("the probe-rate cap holds however many probes are due")
    func rateCap() async throws {
        let server = try MiniHTTPServer { _ in .text("ok") }
        defer { server.stop() }
        let collected = Collected()
        let scheduler = Scheduler(emit: collected.add)
        let probes = (0..<20).map { ProbeSpec(id: "p\($0)", kind: .tcp, target: "127.0.0.1", port: server.port, intervalMs: 100, timeoutMs: 500) }
        scheduler.apply(Plan(probes: probes, settings: PlanSettings(maxProbesPerSecond: 20)))
        // Uncapped, 20 probes every 100 ms start 200 times a second. A loaded machine can only slow the runs, so
        // the test waits for enough of them and then holds the starts to the cap in every one-second window.
        #expect(await eventually(seconds: 40) { collected.all.count >= 60 })
        await scheduler.stop()
        let starts = collected.all.map(\.startedAtMs).sorted()
        var busiest = 0
        var low = 0
        for high in starts.indices {
            while starts[high] - starts[low] >= 1_000 { low += 1 }
            busiest = max(busiest, high - low + 1)
        }
        // 20 a second, plus the bucket's one burst of 20 at most.
        #expect(busiest <= 40, "\(busiest) probes started within one second")
        #expect(busiest >= 10)
    }

    @Test("first runs are spread over the interval instead of firing together")
    func jitter() async throws {
        let server = try MiniHTTPServer { _ in .text("ok") }
        defer { server.stop() }
        let collected = Collected()
        let scheduler = Scheduler(emit: collected.add)
        let probes = (0..<30).map { ProbeSpec(id: "p\($0)", kind: .tcp, target: "127.0.0.1", port: server.port, intervalMs: 2_000, timeoutMs: 500) }
        scheduler.apply(Plan(probes: probes, settings: PlanSettings(maxProbesPerSecond: 1_000)))
        #expect(await eventually(seconds: 30) { collected.all.count >= 30 })
        await scheduler.stop()
        let starts = collected.all.prefix(30).map(\.startedAtMs)
        #expect(try #require(starts.max()) - #require(starts.min()) > 800)
    }

    @Test("the concurrency bound holds: with one slot, probes that time out run one after another")
    func concurrencyBound() async throws {
        let silent = try MiniHTTPServer { _ in .text("ok") }
        silent.stop()
        let collected = Collected()
        let scheduler = Scheduler(emit: collected.add)
        let blackhole = UDPBlackhole()
        defer { blackhole.close() }
        let probes = (0..<4).map {
            ProbeSpec(id: "u\($0)", kind: .udpEcho, target: "127.0.0.1", port: blackhole.port, intervalMs: 10_000, timeoutMs: 300, burst: 1)
        }
        scheduler.apply(Plan(probes: probes, settings: PlanSettings(maxProbesPerSecond: 1_000, maxConcurrency: 1)))
        #expect(await eventually(seconds: 40) { collected.all.count >= 4 })
        await scheduler.stop()
        let spans = collected.all.prefix(4).map { ($0.startedAtMs, $0.startedAtMs + Int64($0.timings.totalMs ?? 0)) }.sorted { $0.0 < $1.0 }
        for (earlier, later) in zip(spans, spans.dropFirst()) { #expect(later.0 >= earlier.1 - 5) }
    }

    @Test("plans are fetched with If-None-Match; an unchanged plan is a 304")
    func etag() async throws {
        let collector = try FakeCollector(plan: Plan(probes: [ProbeSpec(id: "a", kind: .icmp, target: "127.0.0.1")]))
        defer { collector.stop() }
        let client = CollectorClient(baseURL: collector.url)
        let registration = Registration(
            identity: AgentIdentity(instanceId: "i-1", interfaces: [], source: .local), agentVersion: "test", capabilities: [.tcp],
            responderPort: 7471)
        await #expect(throws: CollectorClient.Failure.self) { try await client.register(registration, token: "wrong") }
        let session = try await client.register(registration, token: collector.enrollmentToken)
        #expect(session.agentId == "i-1")
        guard case .plan(let plan, let etag) = try await client.plan(agentId: session.agentId, token: session.agentToken, etag: nil) else {
            Issue.record("expected a plan")
            return
        }
        #expect(plan.probes.map(\.id) == ["a"])
        #expect(etag == "\"plan-1\"")
        #expect(try await client.plan(agentId: session.agentId, token: session.agentToken, etag: etag) == .unchanged)
        collector.setPlan(Plan(probes: []))
        guard case .plan(_, let newEtag) = try await client.plan(agentId: session.agentId, token: session.agentToken, etag: etag) else {
            Issue.record("expected the new plan")
            return
        }
        #expect(newEtag == "\"plan-2\"")
        do {
            _ = try await client.plan(agentId: session.agentId, token: "wrong", etag: nil)
            Issue.record("a wrong token must be refused")
        } catch {
            #expect(error == .unauthorized("401: unknown agent token"))
        }
    }

    @Test("a plan with broken probes is refused with every problem named")
    func planProblems() {
        let plan = Plan(probes: [
            ProbeSpec(id: "a", kind: .tcp, target: "10.0.0.1"),
            ProbeSpec(id: "a", kind: .http, target: "ftp://x", intervalMs: 10, timeoutMs: 0),
        ])
        #expect(
            plan.problems() == [
                "probes[0] (a): a tcp probe needs a port in 1…65535",
                "probes[1] (a): id is used twice",
                "probes[1] (a): intervalMs 10 is below 100",
                "probes[1] (a): timeoutMs 0 is outside 1…60000",
                "probes[1] (a): target must be an http:// or https:// URL",
            ])
    }
}

/// A UDP socket that receives and never answers.
final class UDPBlackhole: Sendable {
    let port: Int
    private let fd: Int32

    init() {
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var address = plumb_sockaddr_in(0x7f00_0001, 0)
        _ = plumb_bind_in(fd, &address)
        var local = sockaddr_in()
        _ = plumb_getsockname_in(fd, &local)
        port = Int(plumb_sockaddr_port(&local))
    }

    func close() { Glibc.close(fd) }
}
