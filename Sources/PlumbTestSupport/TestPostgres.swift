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
        // system(3), not Foundation's Process: waiting for a child inside a static initializer hangs there.
        let output = directory + ".url"
        defer { unlink(output) }
        guard system("/bin/bash '\(script)' start '\(directory)' >'\(output)' 2>/dev/null") == 0,
            let text = try? String(contentsOfFile: output, encoding: .utf8),
            let url = text.split(separator: "\n").last.map(String.init), url.hasPrefix("postgres://")
        else {
            _ = system("/bin/bash '\(script)' stop '\(directory)' >/dev/null 2>&1")
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

    /// At exit, with `system(3)` too.
    private static func stopStarted() {
        guard
            let directory = startedDirectory.withLock({ value -> String? in
                defer { value = nil }; return value
            })
        else { return }
        _ = system("/bin/bash '\(script)' stop '\(directory)' >/dev/null 2>&1")
    }
}
