import Logging
import PlumbStore

/// The store `configuration.database` names: a SQLite file (the embedded default) or PostgreSQL (several collectors).
public func openStore(configuration: CollectorConfiguration, logger: Logger) async throws -> any Store {
    if configuration.isPostgres {
        return try await PostgresStore.open(url: configuration.database, passwordFile: configuration.databasePasswordFile, logger: logger)
    }
    return try await SQLiteStore.open(path: configuration.sqlitePath, logger: logger)
}
