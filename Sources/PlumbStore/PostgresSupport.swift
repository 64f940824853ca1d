import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// Helpers the PostgreSQL store and its leadership share: bounded connects and queries, readable errors.
enum PostgresSupport {
    /// An operation that did not finish in time.
    struct Timeout: Error, CustomStringConvertible {
        var after: Duration
        var description: String { "no answer within \(after.readable)" }
    }

    private static let connectionIDs = Atomic<Int>(1)

    /// An id for a connection made outside the pool (they only name connections in logs).
    static func nextConnectionID() -> Int {
        1_000_000 + connectionIDs.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    /// Connects, giving up after `timeout` (TCP connect, TLS, startup and authentication together). A connection that
    /// completes after the deadline is closed, not leaked.
    static func connect(_ configuration: PostgresConnection.Configuration, timeout: Duration, logger: Logger) async throws -> PostgresConnection {
        try await withThrowingTaskGroup(of: PostgresConnection?.self) { group in
            group.addTask { try await PostgresConnection.connect(configuration: configuration, id: nextConnectionID(), logger: logger) }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            if let connection = first { return connection }
            // The deadline came first: the connect is cancelled; if it got through all the same, close it.
            while let late = await group.nextResult() {
                if case .success(let connection?) = late { try? await connection.close() }
            }
            throw Timeout(after: timeout)
        }
    }

    /// The connection was closed (by us, the server or the network) before the query was sent.
    struct Closed: Error, CustomStringConvertible {
        var description: String { "the connection is closed" }
    }

    /// Runs `query` on `connection`, giving up after `timeout`: then the connection is closed and `Timeout` thrown at
    /// once, without waiting for the query (which does not answer to cancellation). A connection known to be closed
    /// fails at once: a query written to a closed channel would never be answered.
    static func query(
        _ query: PostgresQuery, on connection: PostgresConnection, timeout: Duration, logger: Logger
    ) async throws -> [PostgresRow] {
        guard !connection.isClosed else { throw Closed() }
        return try await withDeadline(timeout, onTimeout: { connection.close().whenComplete { _ in } }) {
            try await connection.query(query, logger: logger).collect()
        }
    }

    /// Runs `operation` but returns (throwing `Timeout`) after `timeout` even when the operation ignores
    /// cancellation: then `onTimeout` runs, and the operation is cancelled and left to finish on its own.
    static func withDeadline<T: Sendable>(
        _ timeout: Duration, onTimeout: @escaping @Sendable () -> Void = {}, _ operation: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let once = Once<T>()
        return try await withCheckedThrowingContinuation { continuation in
            once.arm(continuation)
            let timer = Task {
                try? await Task.sleep(for: timeout)
                if !Task.isCancelled, once.finish(.failure(Timeout(after: timeout))) {
                    onTimeout()
                    once.cancelWork()
                }
            }
            once.setWork(
                Task {
                    let result: Result<T, any Error>
                    do {
                        result = .success(try await operation())
                    } catch {
                        result = .failure(error)
                    }
                    timer.cancel()
                    once.finish(result)
                })
        }
    }

    /// A continuation resumed once, by whichever comes first, and the task doing the work.
    private final class Once<T: Sendable>: Sendable {
        private let continuation = Mutex<CheckedContinuation<T, any Error>?>(nil)
        private let work = Mutex<Task<Void, Never>?>(nil)

        func arm(_ continuation: CheckedContinuation<T, any Error>) { self.continuation.withLock { $0 = continuation } }

        func setWork(_ task: Task<Void, Never>) { work.withLock { $0 = task } }

        func cancelWork() { work.withLock { $0 }?.cancel() }

        /// Resumes the continuation unless it was resumed already; true when this call resumed it.
        @discardableResult
        func finish(_ result: Result<T, any Error>) -> Bool {
            guard
                let continuation = continuation.withLock({ value -> CheckedContinuation<T, any Error>? in
                    defer { value = nil }
                    return value
                })
            else { return false }
            continuation.resume(with: result)
            return true
        }
    }

    /// A readable reason for `error`. PSQLError's description hides everything (it may be shown to end users); this
    /// gives the server's message, its SQLSTATE and detail, or the client-side code and what lies under it — never
    /// the query's bound values.
    static func reason(_ error: any Error) -> String {
        switch error {
        case let error as StoreError:
            return error.description
        case let error as PSQLError:
            if let info = error.serverInfo, let message = info[.message] {
                var text = message
                if let detail = info[.detail] { text += " (\(detail))" }
                if let state = info[.sqlState] { text += " [SQLSTATE \(state)]" }
                return text
            }
            var text = "\(error.code)"
            if let underlying = error.underlying { text += ": \(reason(underlying))" }
            return text
        case let error as PostgresTransactionError:
            if let failure = error.beginError ?? error.closureError ?? error.commitError { return reason(failure) }
            return "transaction failed"
        case let error as PostgresDecodingError:
            return "cannot decode column \(error.columnName) (\(error.postgresType)) as \(error.targetType): \(error.code)"
        case let error as NIOConnectionError:
            let causes = error.connectionErrors.map { "\($0.target): \($0.error)" }
            if let dns = error.dnsAError ?? error.dnsAAAAError, causes.isEmpty { return "cannot resolve \(error.host): \(dns)" }
            return causes.isEmpty ? "\(error)" : causes.joined(separator: "; ")
        default:
            return "\(error)"
        }
    }
}

extension Duration {
    /// `1.5 s`, `200 ms`.
    fileprivate var readable: String {
        let ms = components.seconds * 1_000 + components.attoseconds / 1_000_000_000_000_000
        return ms % 1_000 == 0 ? "\(ms / 1_000) s" : ms >= 1_000 ? "\(Double(ms) / 1_000) s" : "\(ms) ms"
    }
}
