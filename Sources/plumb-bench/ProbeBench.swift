// plumb-bench probes: the highest sustained probe rate on one core, for udp-echo and tcp against a local responder.
//
//   swift build -c release --product plumb-bench --product plumb-agent
//   .build/release/plumb-bench probes [--seconds S] [--concurrency N]
//
// The bench pins itself to CPU 0 and runs the responder as a separate plumb-agent process pinned to CPU 1, so the
// figure is the prober's cost alone. Baseline in the same run: the same socket calls in a plain blocking loop on one
// thread (no reactor, no tasks, no result documents) — the kernel's share of the cost.
import CPlumbSys
import Foundation
import PlumbProbes
import PlumbWire

enum ProbeBench {
    static func run(_ arguments: [String]) async throws {
        var seconds = 5.0
        var concurrency = 64
        var iterator = arguments.makeIterator()
        while let flag = iterator.next() {
            switch (flag, iterator.next()) {
            case ("--seconds", let value?): seconds = Double(value) ?? seconds
            case ("--concurrency", let value?): concurrency = Int(value) ?? concurrency
            default: fatalError("usage: plumb-bench probes [--seconds S] [--concurrency N]")
            }
        }
        pin(cpu: 0)
        let port = 17_000 + Int.random(in: 0..<1_000)
        let responder = try startResponder(port: port)
        defer {
            responder.terminate()
            responder.waitUntilExit()
        }
        try await Task.sleep(for: .milliseconds(500))
        print("probe rate on one core (prober pinned to CPU 0, responder process on CPU 1), \(concurrency) in flight, \(seconds) s each")
        let kinds: [(String, ProbeSpec, () -> Bool)] = [
            (
                "udp-echo, burst 1", ProbeSpec(id: "u", kind: .udpEcho, target: "127.0.0.1", port: port, timeoutMs: 1_000, burst: 1),
                { bareUDP(port: port) }
            ),
            (
                "udp-echo, burst 5", ProbeSpec(id: "u5", kind: .udpEcho, target: "127.0.0.1", port: port, timeoutMs: 1_000, burst: 5),
                { (0..<5).allSatisfy { _ in bareUDP(port: port) } }
            ),
            ("tcp connect", ProbeSpec(id: "t", kind: .tcp, target: "127.0.0.1", port: port, timeoutMs: 1_000), { bareTCP(port: port) }),
        ]
        for (name, spec, bare) in kinds {
            let plumb = await measure(seconds: seconds, concurrency: concurrency, spec: spec)
            let baseline = measureBare(seconds: seconds, bare)
            print(
                "  \(name.padding(toLength: 18, withPad: " ", startingAt: 0))  plumb \(format(plumb.rate)) probes/s (\(format(plumb.cpuMicros)) µs CPU each, "
                    + "\(plumb.failures) failed)   bare blocking loop \(format(baseline.rate))/s (\(format(baseline.cpuMicros)) µs)   "
                    + "ratio \(String(format: "%.2f", plumb.rate / baseline.rate))")
        }
    }

    struct Figure {
        var rate: Double
        var cpuMicros: Double
        var failures: Int
    }

    static func measure(seconds: Double, concurrency: Int, spec: ProbeSpec) async -> Figure {
        let runner = ProbeRunner()
        // Warm up.
        for _ in 0..<200 { _ = await runner.run(spec) }
        let cpuBefore = cpuSeconds()
        let started = ContinuousClock.now
        let deadline = started + .milliseconds(Int(seconds * 1000))
        let (count, failures) = await withTaskGroup(of: (Int, Int).self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var count = 0
                    var failures = 0
                    while ContinuousClock.now < deadline {
                        let result = await runner.run(spec)
                        count += 1
                        if result.outcome != .ok { failures += 1 }
                    }
                    return (count, failures)
                }
            }
            var total = (0, 0)
            for await partial in group { total = (total.0 + partial.0, total.1 + partial.1) }
            return total
        }
        let elapsed = Double((ContinuousClock.now - started) / .microseconds(1)) / 1e6
        let cpu = cpuSeconds() - cpuBefore
        return Figure(rate: Double(count) / elapsed, cpuMicros: cpu / Double(max(1, count)) * 1e6, failures: failures)
    }

    static func measureBare(seconds: Double, _ body: () -> Bool) -> Figure {
        for _ in 0..<200 { _ = body() }
        let cpuBefore = cpuSeconds()
        let started = ContinuousClock.now
        let deadline = started + .milliseconds(Int(seconds * 1000))
        var count = 0
        var failures = 0
        while ContinuousClock.now < deadline {
            if !body() { failures += 1 }
            count += 1
        }
        let elapsed = Double((ContinuousClock.now - started) / .microseconds(1)) / 1e6
        return Figure(rate: Double(count) / elapsed, cpuMicros: (cpuSeconds() - cpuBefore) / Double(max(1, count)) * 1e6, failures: failures)
    }

    static func bareUDP(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        _ = plumb_set_receive_timeout_ms(fd, 1_000)
        var target = plumb_sockaddr_in(0x7f00_0001, UInt16(port))
        guard plumb_connect_in(fd, &target) == 0 else { return false }
        let packet = EchoPacket.request(sequence: 0, nonce: 1, sentAt: 1)
        _ = packet.withUnsafeBytes { plumb_sendto_in(fd, $0.baseAddress, $0.count, nil) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        return buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) } > 0
    }

    static func bareTCP(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        _ = plumb_set_linger_zero(fd)
        var target = plumb_sockaddr_in(0x7f00_0001, UInt16(port))
        return plumb_connect_in(fd, &target) == 0
    }

    static func startResponder(port: Int) throws -> Process {
        let directory = NSTemporaryDirectory() + "plumb-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "probes: []\n".write(toFile: directory + "/empty.yaml", atomically: true, encoding: .utf8)
        try "responder:\n  maxRepliesPerSecond: 10000000\n".write(toFile: directory + "/agent.yaml", atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/taskset")
        process.arguments = [
            "-c", "1", siblingBinary("plumb-agent"), "--config", directory + "/agent.yaml", "--plan", directory + "/empty.yaml", "--output",
            "/dev/null", "--no-imds", "--responder-address", "127.0.0.1", "--responder-port", String(port), "--log-level", "error",
        ]
        try process.run()
        return process
    }
}

/// A binary built beside this one.
func siblingBinary(_ name: String) -> String {
    URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent(name).path
}

/// Pins the calling thread, and every thread it starts later, to one CPU.
func pin(cpu: Int) {
    let code = plumb_pin_to_cpu(Int32(cpu))
    if code != 0 { print("warning: cannot pin to CPU \(cpu) (errno \(code)); figures are for the whole machine") }
}

/// User + system CPU seconds of this process.
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

func format(_ value: Double) -> String {
    if value >= 100 { return String(Int(value.rounded())) }
    return String(format: "%.1f", value)
}
