import CPlumbSys
import Foundation
import Logging
import PlumbFakes
import PlumbProbes
import PlumbWire
import Synchronization

/// A fresh temporary directory, removed by `cleanup()`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "plumb-agent-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func cleanup() { try? FileManager.default.removeItem(atPath: path) }
}

let quietLogger: Logger = {
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    return logger
}()

func result(_ id: String, at: Int64 = 1) -> ProbeResult {
    ProbeResult(probeId: id, kind: .tcp, target: "127.0.0.1", port: 80, startedAtMs: at, outcome: .ok)
}

/// Polls `condition` every 50 ms for up to `seconds`.
func eventually(seconds: Double, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return condition()
}

/// A collector stand-in that speaks the agent routes of API v1 and records what it receives.
final class FakeCollector: Sendable {
    struct State {
        var plan = Plan(probes: [])
        var planVersion = 1
        var registrations: [Registration] = []
        var reports: [Report] = []
        var duplicates = 0
        var failNextReports = 0
        var refuseTokenOnce = false
        var tokens: Set<String> = []
        var planRequests: [(etag: String?, status: Int)] = []
    }

    let enrollmentToken = "enroll-secret"
    let state = Mutex(State())
    private let server = Mutex<MiniHTTPServer?>(nil)
    let port: Int

    init(port: Int = freeTCPPort(), plan: Plan = Plan(probes: [])) throws {
        self.port = port
        state.withLock { $0.plan = plan }
        try start()
    }

    var url: String { "http://127.0.0.1:\(port)" }

    func start() throws {
        let server = try MiniHTTPServer(address: "127.0.0.1", port: port) { [self] request in self.handle(request) }
        self.server.withLock { $0 = server }
    }

    func stop() {
        server.withLock {
            $0?.stop()
            $0 = nil
        }
    }

    func setPlan(_ plan: Plan) {
        state.withLock {
            $0.plan = plan
            $0.planVersion += 1
        }
    }

    var reports: [Report] { state.withLock { $0.reports } }

    private func handle(_ request: ServerRequest) -> ServerResponse {
        let bearer = request.headers["authorization"].map { String($0.dropFirst("Bearer ".count)) } ?? ""
        let decoder = JSONDecoder()
        if request.method == "POST" && request.path == "/v1/agents/register" {
            guard bearer == enrollmentToken else { return .json(#"{"error":{"code":"unauthorized","message":"bad enrollment token"}}"#, status: 401) }
            guard let registration = try? decoder.decode(Registration.self, from: Data(request.body)) else {
                return .json(#"{"error":{"code":"bad_request","message":"not a registration"}}"#, status: 400)
            }
            let token = "agent-token-\(UUID().uuidString)"
            let agentId = registration.agentId ?? registration.identity.instanceId
            state.withLock {
                $0.registrations.append(registration)
                $0.tokens.insert(token)
            }
            return .json(#"{"agentId":"\#(agentId)","agentToken":"\#(token)"}"#)
        }
        let refuse = state.withLock { state -> Bool in
            if state.refuseTokenOnce {
                state.refuseTokenOnce = false
                state.tokens = []
                return true
            }
            return !state.tokens.contains(bearer)
        }
        if refuse { return .json(#"{"error":{"code":"unauthorized","message":"unknown agent token"}}"#, status: 401) }
        if request.method == "GET" && request.path.hasSuffix("/plan") {
            return state.withLock { state in
                let etag = "\"plan-\(state.planVersion)\""
                if request.headers["if-none-match"] == etag {
                    state.planRequests.append((etag, 304))
                    return ServerResponse(status: 304, headers: [("ETag", etag)])
                }
                state.planRequests.append((request.headers["if-none-match"], 200))
                var plan = state.plan
                plan.planId = etag
                let body = String(decoding: (try? JSONEncoder().encode(plan)) ?? Data(), as: UTF8.self)
                return .json(body, headers: [("ETag", etag)])
            }
        }
        if request.method == "POST" && request.path.hasSuffix("/reports") {
            return state.withLock { state in
                if state.failNextReports > 0 {
                    state.failNextReports -= 1
                    return .json(#"{"error":{"code":"unavailable","message":"try later"}}"#, status: 503)
                }
                guard let report = try? decoder.decode(Report.self, from: Data(request.body)) else {
                    return .json(#"{"error":{"code":"bad_request","message":"not a report"}}"#, status: 400)
                }
                let stored = !state.reports.contains { $0.agentId == report.agentId && $0.sequence == report.sequence }
                if stored { state.reports.append(report) } else { state.duplicates += 1 }
                return .json(#"{"sequence":\#(report.sequence),"stored":\#(stored)}"#)
            }
        }
        return .json(#"{"error":{"code":"not_found","message":"no such route"}}"#, status: 404)
    }
}
