import Logging
import PlumbStore

/// The store `configuration.database` names: a SQLite file (the embedded default) or PostgreSQL.
public func openStore(configuration: CollectorConfiguration, logger: Logger) async throws -> any Store {
    try await SQLiteStore.open(path: configuration.sqlitePath, logger: logger)
}
