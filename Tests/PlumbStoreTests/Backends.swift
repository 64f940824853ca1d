import Foundation
import Logging
import PlumbCore
import PlumbTestSupport
import PlumbWire
import Testing

@testable import PlumbStore

/// The stores the contract tests run on: SQLite always, PostgreSQL where `TestPostgres` has a server whose user may
/// create databases (`PLUMB_TEST_POSTGRES`, or a throwaway cluster of `deploy/postgres/test-cluster.sh`).
enum Backend: String, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    /// The PostgreSQL server to test against: `PLUMB_TEST_POSTGRES`, or a throwaway cluster (`TestPostgres`).
    static var postgresURL: String? { TestPostgres.url }

    /// The backends this run can test.
    static var available: [Backend] { postgresURL == nil ? [.sqlite] : [.sqlite, .postgres] }

    var testDescription: String { rawValue }

    /// Runs `body` with a place of its own, a temporary directory or a new database, removed afterwards whatever
    /// happens.
    func withPlace(_ body: (Place) async throws -> Void) async throws {
        switch self {
        case .sqlite:
            let directory = NSTemporaryDirectory() + "plumb-store-test-" + UUID().uuidString
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try await body(Place(backend: self, location: directory + "/plumb.sqlite"))
        case .postgres:
            try await Postgres.withDatabase { url in try await body(Place(backend: self, location: url)) }
        }
    }
}

/// Where one test's store lives: a SQLite file or a PostgreSQL database URL.
struct Place: Sendable {
    var backend: Backend
    var location: String

    /// Opens a store there (again, for a reopen).
    func open() async throws -> any Store {
        switch backend {
        case .sqlite: return try await SQLiteStore.open(path: location, logger: testLogger)
        case .postgres: return try await PostgresStore.open(url: location, passwordFile: nil, logger: testLogger)
        }
    }

    /// Opens a store, runs `body` with it and closes it, also when `body` throws.
    func withStore(_ body: (any Store) async throws -> Void) async throws {
        let store = try await open()
        do {
            try await body(store)
        } catch {
            await close(store)
            throw error
        }
        await close(store)
    }
}

/// Closes a store of either kind.
func close(_ store: any Store) async {
    switch store {
    case let store as SQLiteStore: try? await store.close()
    case let store as PostgresStore: await store.close()
    default: break
    }
}

/// Test databases on the server at `PLUMB_TEST_POSTGRES`.
enum Postgres {
    /// The server's URL; tests that need it are enabled only when it is set.
    static var serverURL: String { Backend.postgresURL ?? "" }

    /// The server's URL with another database.
    static func url(database: String) -> String { TestPostgres.url(database: database) ?? "" }

    /// Runs `body` with the URL of a new, empty database, dropped afterwards (also when `body` throws; `WITH
    /// (FORCE)` ends the sessions a test left behind, a leadership's for one).
    static func withDatabase(_ body: (String) async throws -> Void) async throws {
        let name = "plumb_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        _ = try await PostgresStore.maintenance(url: serverURL, ["CREATE DATABASE \(name)"], logger: testLogger)
        do {
            try await body(url(database: name))
        } catch {
            _ = try? await PostgresStore.maintenance(url: serverURL, ["DROP DATABASE IF EXISTS \(name) WITH (FORCE)"], logger: testLogger)
            throw error
        }
        _ = try await PostgresStore.maintenance(url: serverURL, ["DROP DATABASE IF EXISTS \(name) WITH (FORCE)"], logger: testLogger)
    }
}

let testLogger = Logger(label: "plumb-store-test")

func agentRecord(_ agent: String, at: Int64 = 0) -> AgentRecord {
    AgentRecord(agentId: agent, tokenHash: "hash-\(agent)", registration: registration(agent), registeredAtMs: at, lastSeenAtMs: at)
}

/// A report of `results` results at `at`: the third of each is lost (a timeout), the others answered with RTT 1, 2.
func report(_ agent: String, _ sequence: Int64, at: Int64, results: Int = 3) -> Report {
    var list: [ProbeResult] = []
    for index in 0..<results {
        let lost = index == 2
        let burst = BurstStatistics(sent: 5, received: lost ? 0 : 4, rttAvgMs: lost ? nil : Double(index + 1))
        list.append(
            ProbeResult(
                probeId: "p\(index)", kind: .udpEcho, target: "10.0.0.\(index)", port: 7471, startedAtMs: at, outcome: lost ? .timeout : .ok,
                burst: burst))
    }
    return Report(agentId: agent, sequence: sequence, createdAtMs: at, results: list)
}

/// An alert as the alert book would make it.
func alert(_ id: String, status: Alert.Status = .firing, at: Int64, component: String = "nat-a") -> Alert {
    let json = """
        {"id": "\(id)", "fingerprint": "fp-\(id)", "kind": "nat_failure", "severity": "critical", "component": "\(component)",
         "componentType": "nat", "summary": "NAT \(component) drops egress", "evidence": ["p0 timed out"], "pairs": ["a-1/p0"],
         "status": "\(status.rawValue)", "startsAtMs": \(at), "updatedAtMs": \(at)}
        """
    return try! JSONDecoder().decode(Alert.self, from: Data(json.utf8))
}

func delivery(_ key: String, alertId: String = "alert-1", at: Int64) -> OutboxEntry {
    OutboxEntry(receiver: "hook", alertId: alertId, event: "firing", idempotencyKey: key, createdAtMs: at, nextAttemptAtMs: at)
}
