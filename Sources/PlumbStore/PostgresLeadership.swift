import Logging
import PostgresNIO

/// One collector's claim to lead a PostgreSQL store: a session-level advisory lock (`pg_try_advisory_lock`) held on
/// a connection of the claim's own, outside the pool (a pooled connection could be closed or handed to another
/// query at any time, and the lock would go with it).
///
/// Why this is safe:
/// - The server grants the lock to one session at a time, and releases it only when that session unlocks it or
///   ends: when the holder's connection is closed, killed (`pg_terminate_backend`) or found dead (the connection
///   asks the server for TCP keepalives, so a holder whose host vanished is dropped in about half a minute).
/// - A holder confirms with `SELECT 1` on the same session, bounded by `confirmTimeout`. An answer means the session,
///   and so the lock, is still there. No answer in time, or an error, and the claim closes its connection and
///   returns false at once: the collector stops acting as leader, and since the session is closed the server
///   releases the lock for another collector.
/// - Between two confirms a leader acts on the last answer. The protocol bounds that: a collector acts only between a
///   `true` and its next call, and calls again within its confirm interval. Another collector can take over only
///   after the server has ended the old session, which the old leader learns at its next confirm; the old leader's
///   writes in between are those the store makes safe to repeat (pair states with their cursor, idempotent
///   deliveries).
///
/// Calls are meant to come one at a time (one loop per collector); overlapping calls are safe but may wait.
public actor PostgresLeadership: Leadership {
    /// The collector claiming.
    public nonisolated let collectorId: String
    private let configuration: PostgresConnection.Configuration
    private let logger: Logger
    private var connection: PostgresConnection?
    private var held = false

    /// How long a connect may take, and a confirm.
    static let connectTimeout: Duration = .seconds(2)
    static let confirmTimeout: Duration = .milliseconds(1_500)

    init(collectorId: String, configuration: PostgresConnection.Configuration, logger: Logger) {
        self.collectorId = collectorId
        var configuration = configuration
        configuration.options.connectTimeout = .seconds(2)
        // The server drops the session (and so the lock) of a holder that is gone without a word after about
        // 10 + 3 × 5 s; settable by any user, per session.
        configuration.options.additionalStartupParameters += [
            ("application_name", "plumb-leader \(collectorId)"), ("tcp_keepalives_idle", "10"), ("tcp_keepalives_interval", "5"),
            ("tcp_keepalives_count", "3"),
        ]
        self.configuration = configuration
        self.logger = logger
    }

    /// Takes the lock when it is free, or confirms it is still held; false when another collector holds it or the
    /// server does not answer in time (then the connection is closed, and with it any claim).
    public func acquireOrConfirm(now: Int64) async -> Bool {
        if held, let connection {
            do {
                _ = try await PostgresSupport.query("SELECT 1", on: connection, timeout: Self.confirmTimeout, logger: logger)
                return true
            } catch {
                logger.warning(
                    "store: the leader cannot confirm its lock; it stops leading",
                    metadata: ["collector": "\(collectorId)", "reason": "\(PostgresSupport.reason(error))"])
                await drop(connection)
                return false
            }
        }
        let connection: PostgresConnection
        if let existing = self.connection {
            connection = existing
        } else {
            do {
                let made = try await PostgresSupport.connect(configuration, timeout: Self.connectTimeout, logger: logger)
                if let raced = self.connection {  // another call connected meanwhile
                    try? await made.close()
                    connection = raced
                } else {
                    self.connection = made
                    connection = made
                }
            } catch {
                logger.debug(
                    "store: cannot connect to claim the lead",
                    metadata: ["collector": "\(collectorId)", "reason": "\(PostgresSupport.reason(error))"])
                return false
            }
        }
        if held { return true }
        do {
            let rows = try await PostgresSupport.query(
                PostgresQuery(unsafeSQL: "SELECT pg_try_advisory_lock($1)", binds: binds(PostgresSchema.Lock.leader)), on: connection,
                timeout: Self.confirmTimeout, logger: logger)
            let granted = try rows.first?.decode(Bool.self) ?? false
            if granted {
                held = true
                logger.info("store: this collector leads", metadata: ["collector": "\(collectorId)"])
            }
            return granted
        } catch {
            await drop(connection)
            return false
        }
    }

    /// Unlocks and closes the connection (shutdown). Closing alone would release the lock too; unlocking first says
    /// so to the server without waiting for the session to end.
    public func release() async {
        guard let connection else { return }
        if held {
            _ = try? await PostgresSupport.query(
                PostgresQuery(unsafeSQL: "SELECT pg_advisory_unlock($1)", binds: binds(PostgresSchema.Lock.leader)), on: connection,
                timeout: Self.confirmTimeout, logger: logger)
        }
        await drop(connection)
    }

    private func drop(_ dropped: PostgresConnection) async {
        if connection === dropped {
            connection = nil
            held = false
        }
        try? await dropped.close()
    }
}
