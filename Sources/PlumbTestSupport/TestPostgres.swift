import Foundation
import Synchronization

/// The PostgreSQL server the tests use: `PLUMB_TEST_POSTGRES` when it is set (CI sets it), else a throwaway cluster
/// started once for the whole test process with `deploy/postgres/test-cluster.sh` when PostgreSQL 15 is installed,
/// stopped when the process exits. Nil when neither is there: the PostgreSQL tests are then not run, and the test
/// "PostgreSQL is available where CI says so" fails under `CI`.
public enum TestPostgres {
    /// The server's URL (its user may create databases), if any.
    public static let url: String? = {
        if let url = ProcessInfo.processInfo.environment["PLUMB_TEST_POSTGRES"], !url.isEmpty { return url }
        if ProcessInfo.processInfo.environment["PLUMB_TEST_POSTGRES_AUTOSTART"] == "0" { return nil }
        let binaries = ProcessInfo.processInfo.environment["PLUMB_PG_BIN"] ?? "/usr/lib/postgresql/15/bin"
        guard FileManager.default.isExecutableFile(atPath: binaries + "/initdb"),
            FileManager.default.isExecutableFile(atPath: script)
        else { return nil }
        let directory = NSTemporaryDirectory() + "plumb-test-pg-\(getpid())"
        guard let output = run([script, "start", directory]), let url = output.split(separator: "\n").last.map(String.init),
            url.hasPrefix("postgres://")
        else {
            _ = run([script, "stop", directory])
            return nil
        }
        startedDirectory.withLock { $0 = directory }
        atexit { TestPostgres.stopStarted() }
        return url
    }()

    /// Whether the tests were told they run in CI (where the PostgreSQL tests must not be skipped).
    public static var inCI: Bool { ProcessInfo.processInfo.environment["CI"].map { !$0.isEmpty && $0 != "0" } ?? false }

    /// `url` with another database name.
    public static func url(database: String) -> String? {
        guard let server = url else { return nil }
        let query = server.firstIndex(of: "?").map { String(server[$0...]) } ?? ""
        let base = server.firstIndex(of: "?").map { String(server[..<$0]) } ?? server
        let authority =
            base.range(of: "://").flatMap { scheme in base[scheme.upperBound...].firstIndex(of: "/") }.map { String(base[..<$0]) } ?? base
        return authority + "/" + database + query
    }

    private static let startedDirectory = Mutex<String?>(nil)

    private static let script: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("deploy/postgres/test-cluster.sh").path

    private static func stopStarted() {
        guard
            let directory = startedDirectory.withLock({ value -> String? in
                defer { value = nil }; return value
            })
        else { return }
        _ = run([script, "stop", directory])
    }

    private static func run(_ arguments: [String]) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
