// plumb-bench failover: how long several collectors on PostgreSQL go without a leader when the leader dies. Per run,
// two real `plumb-collector` processes (the binary beside this one, unless --collector says otherwise) on one fresh
// database; once one leads and the other follows, and 1–2 s later (a random moment in the follower's 1 s sync
// interval), the leader gets SIGKILL. The benchmark then polls the survivor's `GET /v1/status` (every 10 ms) until it
// says `role: leader`, and the server's `pg_stat_activity` until the dead leader's lock session is gone. Prints each
// run, then min / median / max against the target (<= 10 s).
//
//   swift build -c release --product plumb-collector && swift build -c release --product plumb-bench
//   .build/release/plumb-bench failover --db postgres://USER@HOST:PORT/DB [--runs N] [--collector PATH] [--model FILE]
//
// Every process it starts is stopped by its pid, also when a run fails; the database is dropped.
import Foundation
import PlumbCollector
import PlumbProbes
import PlumbStore
import Synchronization

enum FailoverBench {
    static let usage = "usage: plumb-bench failover --db postgres://USER@HOST:PORT/DB [--runs N] [--collector PATH] [--model FILE]"

    static func run(_ arguments: [String]) async throws {
        var url: String?
        var runs = 5
        var collector = defaultCollector()
        var model = "examples/demo.yaml"
        var iterator = arguments.makeIterator()
        while let flag = iterator.next() {
            switch (flag, iterator.next()) {
            case ("--db", let value?): url = value
            case ("--runs", let value?): runs = max(1, Int(value) ?? runs)
            case ("--collector", let value?): collector = value
            case ("--model", let value?): model = value
            default: fatalError(usage)
            }
        }
        guard let url else { fatalError(usage) }
        guard FileManager.default.isExecutableFile(atPath: collector) else {
            throw BenchError(
                "no plumb-collector at \(collector): build it (swift build -c release --product plumb-collector) or pass --collector PATH")
        }
        let logger = CollectorBench.quietLogger()
        let server = try await BenchServer(url: url, logger: logger)
        let children = Children()
        let directory = NSTemporaryDirectory() + "plumb-failover-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        func cleanUp() async {
            children.killAll()
            await server.dropAll()
            try? FileManager.default.removeItem(atPath: directory)
        }
        do {
            let database = try await server.create("failover")
            let modelPath = try modelFile(model, directory: directory)
            let config = directory + "/collector.yaml"
            try "model: \(modelPath)\ntokens:\n  operatorToken: \(operatorToken)\n  enrollmentToken: bench-enroll\n".write(
                toFile: config, atomically: true, encoding: .utf8)
            print(
                "failover: \(runs) runs, two plumb-collector processes (\(collector)) on one database; PostgreSQL \(server.version), fsync \(server.settings["fsync"] ?? "?")"
            )
            print("  collector logs in \(directory) while it runs")
            var times: [Double] = []
            for run in 1...runs {
                let measured = try await once(
                    run: run, collector: collector, config: config, database: database, directory: directory, children: children, server: server)
                times.append(measured)
            }
            let sorted = times.sorted()
            let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
            print(
                String(
                    format: "  failover over %d runs: min %.2f s, median %.2f s, max %.2f s (target <= 10 s: %@)", sorted.count, sorted.first ?? 0,
                    median,
                    sorted.last ?? 0, (sorted.last ?? .infinity) <= 10 ? "met" : "not met"))
        } catch {
            await cleanUp()
            throw error
        }
        await cleanUp()
    }

    static let operatorToken = "bench-operator"

    /// One run: both collectors started (the first to start leads; they take turns being first), the leader killed,
    /// the time until the other leads. Both are stopped before it returns.
    static func once(
        run: Int, collector: String, config: String, database: String, directory: String, children: Children, server: BenchServer
    ) async throws -> Double {
        let ids = run % 2 == 1 ? ["a", "b"] : ["b", "a"]
        var pids: [String: pid_t] = [:]
        var ports: [String: Int] = [:]
        defer { for pid in pids.values { children.stop(pid) } }
        for id in ids {
            let port = try freePort()
            ports[id] = port
            pids[id] = try children.spawn(
                collector, ["serve", "--config", config, "--db", database, "--id", id, "--listen", "127.0.0.1:\(port)", "--log-level", "notice"],
                log: directory + "/collector-\(id).log")
            // The first leads before the second starts, so which one leads is known.
            let expected = id == ids[0] ? "leader" : "follower"
            guard try await waitForRole(expected, port: port, within: .seconds(30)) != nil else {
                throw BenchError("collector \(id) did not report role \(expected) within 30 s; see \(directory)/collector-\(id).log")
            }
        }
        let (leader, survivor) = (ids[0], ids[1])
        // The follower has just synced; a random moment in its next 1 s sync interval (plus one), as a real death
        // would fall.
        try await Task.sleep(for: .milliseconds(1_000 + Int.random(in: 0..<1_000)))
        let killed = ContinuousClock.now
        children.kill(pids[leader]!)
        pids[leader] = nil
        // Meanwhile: when the server has ended the dead leader's lock session (and so released the lock).
        let released = Task { () -> Double? in
            while ContinuousClock.now - killed < .seconds(30) {
                let rows = try? await PostgresStore.maintenance(
                    url: database, ["SELECT count(*)::text FROM pg_stat_activity WHERE application_name = 'plumb-leader \(leader)'"],
                    logger: server.logger)
                if rows?.first?.first == "0" { return seconds(since: killed) }
                try? await Task.sleep(for: .milliseconds(10))
            }
            return nil
        }
        let took = try await waitForRole("leader", port: ports[survivor]!, within: .seconds(30)).map { _ in seconds(since: killed) }
        let releasedAfter = await released.value
        guard let took else { throw BenchError("collector \(survivor) did not lead within 30 s of the leader's death") }
        print(
            String(
                format: "  run %d: %@ led, SIGKILL; its lock session gone after %@; %@ leads after %.2f s", run, leader,
                releasedAfter.map { String(format: "%.0f ms", $0 * 1000) } ?? "?", survivor, took))
        return took
    }

    /// Polls `GET /v1/status` on `port` every 10 ms until it answers with `role`; the status, or nil after `within`.
    static func waitForRole(_ role: String, port: Int, within: Duration) async throws -> CollectorStatus? {
        let deadline = ContinuousClock.now + within
        while ContinuousClock.now < deadline {
            let response = await Curl.perform(
                HTTPRequest(
                    url: "http://127.0.0.1:\(port)/v1/status", headers: [("Authorization", "Bearer \(operatorToken)")], timeoutMs: 1_000,
                    freshConnection: false))
            if response.status == 200, let status = try? JSONDecoder().decode(CollectorStatus.self, from: Data(response.body)), status.role == role {
                return status
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        Double((ContinuousClock.now - start) / .microseconds(1)) / 1e6
    }

    /// The plumb-collector beside this executable.
    static func defaultCollector() -> String {
        let this = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: this).deletingLastPathComponent().appendingPathComponent("plumb-collector").path
    }

    /// The model's absolute path; when the file is not there (not run from the repository's top level), a small
    /// generated model written to `directory`.
    static func modelFile(_ path: String, directory: String) throws -> String {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        if FileManager.default.fileExists(atPath: absolute) { return absolute }
        let generated = directory + "/model.yaml"
        try BlameBench.generatedModel(perTier: 2, zones: 2, directTargets: false).write(toFile: generated, atomically: true, encoding: .utf8)
        print("  (\(path) not found: a generated model instead)")
        return generated
    }

    /// A TCP port on 127.0.0.1 that is free now (the kernel's choice for port 0).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BenchError("socket: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw BenchError("bind: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// The processes the benchmark started, by pid: each stopped by its pid (`kill`: SIGKILL; `stop`: SIGTERM, then
/// SIGKILL after 10 s) and waited for; `killAll` for whatever is left.
final class Children: Sendable {
    private let running = Mutex<Set<pid_t>>([])

    /// Starts `path` with `arguments`, standard output and error appended to `log`, standard input /dev/null.
    func spawn(_ path: String, _ arguments: [String], log: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let environment = ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in environment { free(pointer) }
        }
        var pid: pid_t = 0
        let code = posix_spawn(&pid, path, &actions, nil, argv, environment)
        guard code == 0 else { throw BenchError("cannot start \(path): \(String(cString: strerror(code)))") }
        running.withLock { _ = $0.insert(pid) }
        return pid
    }

    /// SIGKILL, then waits for it.
    func kill(_ pid: pid_t) {
        guard running.withLock({ $0.remove(pid) }) != nil else { return }
        _ = Glibc.kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
    }

    /// SIGTERM (the collector resigns and exits), SIGKILL when it has not exited within 10 s.
    func stop(_ pid: pid_t) {
        guard running.withLock({ $0.contains(pid) }) else { return }
        _ = Glibc.kill(pid, SIGTERM)
        var status: Int32 = 0
        for _ in 0..<1_000 {
            if waitpid(pid, &status, WNOHANG) == pid {
                running.withLock { _ = $0.remove(pid) }
                return
            }
            usleep(10_000)
        }
        kill(pid)
    }

    /// SIGKILL to every process still running, each waited for.
    func killAll() {
        for pid in running.withLock({ $0 }) { kill(pid) }
    }
}
