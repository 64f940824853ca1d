// plumb-bench footprint: plumb-agent and Debian's prometheus-blackbox-exporter side by side in the same run, each
// probing the same 200 TCP targets every 5 s, for 2 minutes (after a 15 s warm-up). Prints CPU seconds per 1,000
// probes and RSS (current and peak) of each, and the ratios.
//
//   swift build -c release --product plumb-bench --product plumb-agent
//   .build/release/plumb-bench footprint [--targets N] [--interval S] [--seconds S] [--agent PATH]
//
// The targets are listening sockets in this process (one thread accepts and closes). plumb-agent runs standalone
// with a plan of one tcp probe per target (reports go to /dev/null after being encoded, as always). blackbox_exporter
// runs its tcp_connect module, driven by this process with one HTTP request to /probe per target per interval, spread
// over the interval, as Prometheus would scrape it. Only the two probers' own CPU and memory are measured
// (/proc/PID/stat, /proc/PID/status).
import CPlumbSys
import Foundation
import PlumbProbes
import PlumbWire
import Synchronization

enum FootprintBench {
    static func run(_ arguments: [String]) async throws {
        var targets = 200
        var interval = 5.0
        var seconds = 120.0
        var agentPath = siblingBinary("plumb-agent")
        var iterator = arguments.makeIterator()
        while let flag = iterator.next() {
            switch (flag, iterator.next()) {
            case ("--targets", let value?): targets = Int(value) ?? targets
            case ("--interval", let value?): interval = Double(value) ?? interval
            case ("--seconds", let value?): seconds = Double(value) ?? seconds
            case ("--agent", let value?): agentPath = value
            default: fatalError("usage: plumb-bench footprint [--targets N] [--interval S] [--seconds S] [--agent PATH]")
            }
        }
        let blackboxPath = "/usr/bin/prometheus-blackbox-exporter"
        guard FileManager.default.isExecutableFile(atPath: blackboxPath) else {
            print("footprint: \(blackboxPath) is missing; apt-get install prometheus-blackbox-exporter")
            return
        }
        let listeners = try Listeners(count: targets)
        defer { listeners.stop() }
        let directory = NSTemporaryDirectory() + "plumb-footprint-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }

        // plumb-agent: standalone, one tcp probe per target.
        let plan = Plan(
            probes: listeners.ports.map {
                ProbeSpec(id: "t\($0)", kind: .tcp, target: "127.0.0.1", port: $0, intervalMs: Int(interval * 1000), timeoutMs: 1_000)
            },
            settings: PlanSettings(reportIntervalMs: 5_000, maxProbesPerSecond: 1_000))
        try JSONEncoder().encode(plan).write(to: URL(fileURLWithPath: directory + "/plan.json"))
        let agent = Process()
        agent.executableURL = URL(fileURLWithPath: agentPath)
        agent.arguments = [
            "--plan", directory + "/plan.json", "--output", directory + "/reports.jsonl", "--no-imds", "--responder-address", "127.0.0.1",
            "--responder-port", "0", "--log-level", "error",
        ]
        try agent.run()
        defer {
            agent.terminate()
            agent.waitUntilExit()
        }

        // blackbox_exporter with a tcp_connect module.
        let blackboxPort = 19_115 + Int.random(in: 0..<500)
        try "modules:\n  tcp_connect:\n    prober: tcp\n    timeout: 1s\n".write(
            toFile: directory + "/blackbox.yml", atomically: true, encoding: .utf8)
        let blackbox = Process()
        blackbox.executableURL = URL(fileURLWithPath: blackboxPath)
        blackbox.arguments = ["--config.file=\(directory)/blackbox.yml", "--web.listen-address=127.0.0.1:\(blackboxPort)", "--log.level=error"]
        try blackbox.run()
        defer {
            blackbox.terminate()
            blackbox.waitUntilExit()
        }
        try await Task.sleep(for: .seconds(1))

        let counters = DriverCounters()
        let driver = Task { [listeners, interval, targets, blackboxPort, counters] in
            // One request per target per interval, evenly spread, the way a scrape schedule spreads them.
            let clock = ContinuousClock()
            let spacing = Duration.milliseconds(Int(interval * 1000)) / targets
            var next = clock.now
            var index = 0
            while !Task.isCancelled {
                next += spacing
                try? await clock.sleep(until: next)
                let port = listeners.ports[index % targets]
                index += 1
                Task {
                    let response = await Curl.perform(
                        HTTPRequest(url: "http://127.0.0.1:\(blackboxPort)/probe?module=tcp_connect&target=127.0.0.1:\(port)", timeoutMs: 5_000))
                    counters.probes.add(1, ordering: .relaxed)
                    if response.status != 200 || !response.text.contains("probe_success 1") { counters.failures.add(1, ordering: .relaxed) }
                }
            }
        }
        defer { driver.cancel() }

        let warmUp = 15.0
        print("footprint: \(targets) tcp targets every \(interval) s, warm-up \(warmUp) s, measuring \(seconds) s")
        try await Task.sleep(for: .seconds(warmUp))
        let agentStart = ProcessFigures(pid: agent.processIdentifier)
        let blackboxStart = ProcessFigures(pid: blackbox.processIdentifier)
        let agentResultsStart = countResults(directory + "/reports.jsonl")
        let blackboxStartCount = counters.probes.load(ordering: .relaxed)
        var agentPeak = 0
        var blackboxPeak = 0
        let end = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < end {
            try await Task.sleep(for: .seconds(1))
            agentPeak = max(agentPeak, ProcessFigures(pid: agent.processIdentifier).rssKiB)
            blackboxPeak = max(blackboxPeak, ProcessFigures(pid: blackbox.processIdentifier).rssKiB)
        }
        let agentEnd = ProcessFigures(pid: agent.processIdentifier)
        let blackboxEnd = ProcessFigures(pid: blackbox.processIdentifier)
        let blackboxCount = counters.probes.load(ordering: .relaxed) - blackboxStartCount
        try await Task.sleep(for: .seconds(6))  // let the agent's last batch of the window reach the file
        let agentCount = countResults(directory + "/reports.jsonl") - agentResultsStart

        let agentCPU = agentEnd.cpuSeconds - agentStart.cpuSeconds
        let blackboxCPU = blackboxEnd.cpuSeconds - blackboxStart.cpuSeconds
        let agentPerThousand = agentCPU / Double(max(1, agentCount)) * 1000
        let blackboxPerThousand = blackboxCPU / Double(max(1, blackboxCount)) * 1000
        func row(_ name: String, _ probes: Int, _ cpu: Double, _ perThousand: Double, _ end: ProcessFigures, _ peak: Int) -> String {
            "  \(name.padding(toLength: 18, withPad: " ", startingAt: 0)) probes \(probes)  CPU \(String(format: "%.2f", cpu)) s  "
                + "CPU per 1,000 probes \(String(format: "%.3f", perThousand)) s  RSS \(String(format: "%.1f", Double(end.rssKiB) / 1024)) MiB "
                + "(peak \(String(format: "%.1f", Double(peak) / 1024)); anonymous \(String(format: "%.1f", Double(end.anonymousKiB) / 1024)), "
                + "file \(String(format: "%.1f", Double(end.fileKiB) / 1024)))"
        }
        print(row("plumb-agent", agentCount, agentCPU, agentPerThousand, agentEnd, agentPeak))
        print(row("blackbox_exporter", blackboxCount, blackboxCPU, blackboxPerThousand, blackboxEnd, blackboxPeak))
        print("  blackbox failures: \(counters.failures.load(ordering: .relaxed))")
        print(
            "  ratios plumb/blackbox: CPU per probe \(String(format: "%.2f", agentPerThousand / max(1e-9, blackboxPerThousand)))  "
                + "RSS \(String(format: "%.2f", Double(agentEnd.rssKiB) / Double(max(1, blackboxEnd.rssKiB))))  "
                + "peak RSS \(String(format: "%.2f", Double(agentPeak) / Double(max(1, blackboxPeak))))  "
                + "anonymous \(String(format: "%.2f", Double(agentEnd.anonymousKiB) / Double(max(1, blackboxEnd.anonymousKiB))))")
    }

    static func countResults(_ path: String) -> Int {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return 0 }
        return text.split(separator: "\n").reduce(0) { total, line in
            total + ((try? JSONDecoder().decode(Report.self, from: Data(line.utf8)))?.results.count ?? 0)
        }
    }
}

/// What the blackbox driver counted.
final class DriverCounters: Sendable {
    let probes = Atomic<Int>(0)
    let failures = Atomic<Int>(0)
}

/// CPU time and resident memory of a process, from /proc.
struct ProcessFigures {
    var cpuSeconds: Double
    var rssKiB: Int
    /// Private memory (heap, stacks): RssAnon.
    var anonymousKiB: Int
    /// Pages of the binary and libraries: RssFile (clean, shared, reclaimable).
    var fileKiB: Int

    init(pid: Int32) {
        cpuSeconds = 0
        rssKiB = 0
        anonymousKiB = 0
        fileKiB = 0
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") {
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            // After the command: state is field 3; utime and stime are fields 14 and 15 (1-based in proc(5)).
            if fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) {
                cpuSeconds = (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
            }
        }
        if let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) {
            for line in status.split(separator: "\n") {
                let value = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) } ?? 0
                if line.hasPrefix("VmRSS:") { rssKiB = value }
                if line.hasPrefix("RssAnon:") { anonymousKiB = value }
                if line.hasPrefix("RssFile:") { fileKiB = value }
            }
        }
    }
}

/// Listening TCP sockets on 127.0.0.1; one thread accepts and closes every connection.
final class Listeners: Sendable {
    let ports: [Int]
    private let fds: [Int32]
    private let stopped = Atomic<Bool>(false)

    init(count: Int) throws {
        var fds: [Int32] = []
        var ports: [Int] = []
        for _ in 0..<count {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            var address = plumb_sockaddr_in(0x7f00_0001, 0)
            guard plumb_bind_in(fd, &address) == 0, listen(fd, 512) == 0 else { throw CocoaError(.fileWriteUnknown) }
            var local = sockaddr_in()
            _ = plumb_getsockname_in(fd, &local)
            fds.append(fd)
            ports.append(Int(plumb_sockaddr_port(&local)))
        }
        self.fds = fds
        self.ports = ports
        OSThread(name: "bench-accept") { [self] in self.loop() }.start()
    }

    func stop() {
        stopped.store(true, ordering: .releasing)
        usleep(300_000)
        for fd in fds { close(fd) }
    }

    private func loop() {
        var polls = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        while !stopped.load(ordering: .acquiring) {
            guard poll(&polls, nfds_t(polls.count), 200) > 0 else { continue }
            for index in polls.indices where polls[index].revents != 0 {
                while true {
                    let connection = accept(polls[index].fd, nil, nil)
                    if connection < 0 { break }
                    close(connection)
                }
            }
        }
    }
}
