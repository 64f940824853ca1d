import Foundation
import PlumbCore
import PlumbTestSupport
import PlumbWire
import Testing

@testable import PlumbStore

@Suite("the PostgreSQL store: what only a shared store does")
struct PostgresStoreTests {
    static var enabled: Bool { Backend.postgresURL != nil }

    /// Runs `body` with `count` stores on one new database (several collectors), closed afterwards whatever happens.
    func withStores(_ count: Int, _ body: (String, [PostgresStore]) async throws -> Void) async throws {
        try await Postgres.withDatabase { url in
            var stores: [PostgresStore] = []
            do {
                for _ in 0..<count { stores.append(try await PostgresStore.open(url: url, passwordFile: nil, logger: testLogger)) }
                try await body(url, stores)
            } catch {
                for store in stores { await store.close() }
                throw error
            }
            for store in stores { await store.close() }
        }
    }

    @Test("PostgreSQL is available where CI says so")
    func availableInCI() {
        // CI must not skip the PostgreSQL cases silently: it starts deploy/postgres/test-cluster.sh and sets the URL.
        if TestPostgres.inCI {
            #expect(
                Backend.postgresURL != nil, "CI is set but there is no PostgreSQL (PLUMB_TEST_POSTGRES): the PostgreSQL store's tests did not run")
        }
    }

    @Test("URLs: user, password, host, port, database, sslmode and sslrootcert; postgresql:// and Unix sockets too")
    func urls() throws {
        let full = try PostgresLocation(url: "postgres://plumb:s%40cret@db.example:6432/plumbdb?sslmode=verify-full&sslrootcert=/etc/ca.pem")
        #expect(full.user == "plumb" && full.password == "s@cret" && full.host == "db.example" && full.port == 6432)
        #expect(full.database == "plumbdb" && full.sslMode == .verifyFull && full.sslRootCert == "/etc/ca.pem" && !full.isSocket)
        #expect(full.display == "plumb@db.example:6432/plumbdb")

        let plain = try PostgresLocation(url: "postgresql://collector@10.1.2.3/plumb")
        #expect(plain.port == 5432 && plain.password == nil && plain.sslMode == .prefer && plain.database == "plumb")
        #expect(try PostgresLocation(url: "postgres://u@h").database == "u")  // libpq: the user's name
        #expect(try PostgresLocation(url: "postgres://u@[::1]:7000/d").host == "::1")
        #expect(try PostgresLocation(url: "postgres://u@[::1]:7000/d").port == 7000)

        let socket = try PostgresLocation(url: "postgres://plumb@%2Frun%2Fpostgresql:5433/plumb")
        #expect(socket.isSocket && socket.socketPath == "/run/postgresql/.s.PGSQL.5433")
        let query = try PostgresLocation(url: "postgres://plumb@/plumb?host=/tmp/pg&sslmode=disable")
        #expect(query.isSocket && query.socketPath == "/tmp/pg/.s.PGSQL.5432" && query.sslMode == .disable)

        for bad in ["mysql://u@h/d", "postgres://h/d", "postgres://u@h:99999/d", "postgres://u@h/d?sslmode=sometimes", "postgres://u@h/d?bogus=1"] {
            #expect(throws: PostgresLocation.Invalid.self) { try PostgresLocation(url: bad) }
        }
    }

    @Test("the password: a file first, then PGPASSWORD, then the URL")
    func passwords() throws {
        let file = NSTemporaryDirectory() + "plumb-pg-password-" + UUID().uuidString
        try "from-file\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let password = PostgresStore.Target.password
        #expect(try password("in-url", file, ["PGPASSWORD": "from-env"], "x") == "from-file")
        #expect(try password("in-url", nil, ["PGPASSWORD": "from-env"], "x") == "from-env")
        #expect(try password("in-url", nil, [:], "x") == "in-url")
        #expect(try password(nil, nil, [:], "x") == nil)
        #expect(throws: StoreError.self) { try password(nil, file + ".missing", [:], "x") }
    }

    @Test("a server that does not answer: the error names the host and the port")
    func unreachable() async throws {
        // Nothing listens on port 1 of the loopback address: refused at once.
        do {
            let store = try await PostgresStore.open(url: "postgres://plumb@127.0.0.1:1/plumb?sslmode=disable", passwordFile: nil, logger: testLogger)
            await store.close()
            Issue.record("opened a store where no server is")
        } catch let error as StoreError {
            guard case .open(let what, let reason) = error else { throw error }
            #expect(what == "postgres plumb@127.0.0.1:1/plumb")
            #expect(reason.hasPrefix("cannot connect to 127.0.0.1:1: "))
        }
    }

    @Test("a database that does not exist: the server's message, readable", .enabled(if: enabled))
    func missingDatabase() async throws {
        let url = Postgres.url(database: "plumb_no_such_database")
        await #expect {
            try await PostgresStore.open(url: url, passwordFile: nil, logger: testLogger)
        } throws: { error in
            "\(error)".contains("database \"plumb_no_such_database\" does not exist") && "\(error)".contains("cannot connect to 127.0.0.1:")
        }
    }

    /// What the server says of itself: its socket directory and port, whether it offers TLS, and (for a cluster of
    /// deploy/postgres/test-cluster.sh, whose socket directory is its DIR) the CA that signed its certificate. Nil
    /// when the server does not say (its user may not read the settings).
    func server() async -> (socketDirectory: String, port: Int, ssl: Bool, ca: String?)? {
        guard
            let row = try? await PostgresStore.maintenance(
                url: Postgres.serverURL,
                ["SELECT current_setting('unix_socket_directories'), current_setting('port'), current_setting('ssl')"], logger: testLogger
            ).first,
            row.count == 3, let directories = row[0], let port = row[1].flatMap({ Int($0) }), let ssl = row[2]
        else { return nil }
        let directory = directories.split(separator: ",").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        let ca = directory + "/tls/ca.crt"
        return (directory, port, ssl == "on", FileManager.default.fileExists(atPath: ca) ? ca : nil)
    }

    /// `url` with `sslmode=disable` replaced by `query` and the host by `host`.
    func variant(_ url: String, host: String = "127.0.0.1", query: String) -> String {
        url.replacingOccurrences(of: "sslmode=disable", with: query).replacingOccurrences(of: "@127.0.0.1:", with: "@\(host):")
    }

    @Test(
        "sslmode: prefer works with or without TLS; require needs it; verify-ca and verify-full check the server's certificate", .enabled(if: enabled)
    )
    func sslModes() async throws {
        try await Postgres.withDatabase { url in
            func opens(_ url: String) async throws {
                let store = try await PostgresStore.open(url: url, passwordFile: nil, logger: testLogger)
                try await store.ping()
                await store.close()
            }
            func refused(_ url: String, _ because: String) async {
                await #expect {
                    try await PostgresStore.open(url: url, passwordFile: nil, logger: testLogger)
                } throws: { error in
                    "\(error)".contains(because)
                }
            }
            try await opens(variant(url, query: "sslmode=prefer"))
            guard let server = await server() else { return }
            guard server.ssl else {
                await refused(variant(url, query: "sslmode=require"), "sslUnsupported")
                return
            }
            try await opens(variant(url, query: "sslmode=require"))
            guard let ca = server.ca else { return }  // TLS, but not the test cluster's CA
            try await opens(variant(url, query: "sslmode=verify-ca&sslrootcert=\(ca)"))
            try await opens(variant(url, host: "localhost", query: "sslmode=verify-full&sslrootcert=\(ca)"))
            // The system's trust roots do not know the test CA; a CA file that is not there is said so.
            await refused(variant(url, host: "localhost", query: "sslmode=verify-full"), "cannot connect to localhost:")
            await refused(variant(url, query: "sslmode=verify-ca&sslrootcert=\(ca).missing"), "TLS (sslmode=verify-ca)")
        }
    }

    @Test("a Unix socket: the directory in host=, or percent-encoded as the host", .enabled(if: enabled))
    func unixSocket() async throws {
        guard let server = await server(), !server.socketDirectory.isEmpty else { return }
        try await Postgres.withDatabase { url in
            let database = String(url[url.index(after: url.lastIndex(of: "/")!)...].prefix { $0 != "?" })
            let encoded = server.socketDirectory.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: "-._~")))!
            for socketURL in [
                "postgres://plumb@/\(database)?host=\(server.socketDirectory)&port=\(server.port)",
                "postgresql://plumb@\(encoded):\(server.port)/\(database)",
            ] {
                let store = try await PostgresStore.open(url: socketURL, passwordFile: nil, logger: testLogger)
                try await store.ping()
                #expect(store.summary == "postgres plumb@\(server.socketDirectory):\(server.port)/\(database)")
                #expect(try await store.marks().topologyVersion == 0)
                let leadership = store.leadership(collectorId: "c-socket")
                #expect(await leadership.acquireOrConfirm(now: 1))
                await leadership.release()
                await store.close()
            }
        }
    }

    @Test("the summary never shows a password in the URL", .enabled(if: enabled))
    func summaryWithoutPassword() async throws {
        try await Postgres.withDatabase { url in
            // The test cluster trusts 127.0.0.1, so any password is accepted.
            let withPassword = url.replacingOccurrences(of: "://plumb@", with: "://plumb:hunter2@")
            let store = try await PostgresStore.open(url: withPassword, passwordFile: nil, logger: testLogger)
            #expect(store.summary.hasPrefix("postgres plumb@127.0.0.1:") && !store.summary.contains("hunter2"))
            await store.close()
        }
    }

    @Test("two collectors opening an empty database at once apply each migration once", .enabled(if: enabled))
    func concurrentMigrations() async throws {
        try await Postgres.withDatabase { url in
            async let first = PostgresStore.open(url: url, passwordFile: nil, logger: testLogger)
            async let second = PostgresStore.open(url: url, passwordFile: nil, logger: testLogger)
            let stores = try await [first, second]
            let third = try await PostgresStore.open(url: url, passwordFile: nil, logger: testLogger)  // nothing left to do
            for store in stores + [third] { await store.close() }
            let applied = try await PostgresStore.maintenance(
                url: url, ["SELECT version::text, count(*)::text FROM schema_migrations GROUP BY version ORDER BY version"], logger: testLogger)
            #expect(applied == (1...PostgresStore.schemaVersion).map { ["\($0)", "1"] })
        }
    }

    @Test("two collectors ingesting the same reports at once store each once", .enabled(if: enabled))
    func sharedIngest() async throws {
        try await withStores(2) { _, stores in
            let (one, two) = (stores[0], stores[1])
            for agent in ["a-1", "a-2", "a-3"] { try await one.saveAgent(agentRecord(agent)) }
            let stored = try await withThrowingTaskGroup(of: IngestOutcome.self) { group in
                for sequence in Int64(1)...30 {
                    // Each report to both collectors, agents in opposite orders: the agent locks keep them from deadlocking.
                    for (store, agents) in [(one, ["a-1", "a-2", "a-3"]), (two, ["a-3", "a-2", "a-1"])] {
                        for agent in agents {
                            group.addTask { try await store.ingest(report(agent, sequence, at: sequence * 1_000), body: nil, receivedAt: 50_000) }
                        }
                    }
                }
                var count = 0
                for try await outcome in group where outcome == .stored { count += 1 }
                return count
            }
            #expect(stored == 90)
            let feed = try await two.feed(after: FeedCursor(), limit: 1_000)
            #expect(feed.count == 90 && Set(feed.map { "\($0.agentId)/\($0.sequence)" }).count == 90)
            #expect(try await one.results(agentId: nil, since: 0, limit: 1_000).count == 270)
            #expect(try await two.agent(id: "a-3")?.lastSequence == 30)
        }
    }

    @Test("a report the server refuses fails alone: the batch it came in is retried report by report", .enabled(if: enabled))
    func badReportFailsAlone() async throws {
        try await withStores(1) { _, stores in
            let store = stores[0]
            try await store.saveAgent(agentRecord("a-1"))
            // PostgreSQL's text cannot hold a NUL character: the server refuses that body.
            let outcomes = await withTaskGroup(of: (Int64, Bool).self) { group in
                for sequence in Int64(1)...20 {
                    group.addTask {
                        let body = sequence == 7 ? "{\"nul\": \"\u{0000}\"}" : nil
                        return (sequence, (try? await store.ingest(report("a-1", sequence, at: sequence), body: body, receivedAt: 100)) == .stored)
                    }
                }
                var all: [Int64: Bool] = [:]
                for await (sequence, stored) in group { all[sequence] = stored }
                return all
            }
            #expect(outcomes.filter { !$0.value }.map(\.key) == [7])
            #expect(Set(try await store.feed(after: FeedCursor(), limit: 100).map(\.sequence)) == Set((1...20).filter { $0 != 7 }))
        }
    }

    @Test("claims from two collectors at once never hand one delivery to both; a lapsed lease offers it again", .enabled(if: enabled))
    func concurrentClaims() async throws {
        try await withStores(2) { _, stores in
            let (one, two) = (stores[0], stores[1])
            try await one.enqueue((0..<60).map { delivery("k\($0)", at: Int64($0)) })
            // Eight claimers, four per collector, each claiming a few at a time until nothing is left.
            let claims = try await withThrowingTaskGroup(of: [(owner: String, id: Int64)].self) { group in
                for worker in 0..<8 {
                    let store = worker % 2 == 0 ? one : two
                    let owner = "c-\(worker)"
                    group.addTask {
                        var mine: [(owner: String, id: Int64)] = []
                        while true {
                            let batch = try await store.claimDeliveries(now: 1_000, limit: 3, owner: owner, leaseMs: 60_000)
                            if batch.isEmpty { return mine }
                            mine += batch.map { (owner, $0.id) }
                        }
                    }
                }
                var all: [(owner: String, id: Int64)] = []
                for try await claimed in group { all += claimed }
                return all
            }
            #expect(claims.count == 60)
            #expect(Set(claims.map(\.id)).count == 60)
            #expect(Set(claims.map(\.owner)).count > 1)  // the work was shared
            // Nothing recorded: once the lease lapses, every one is offered again, to one claimer each.
            #expect(try await two.claimDeliveries(now: 60_999, limit: 100, owner: "late", leaseMs: 60_000).isEmpty)
            async let again1 = one.claimDeliveries(now: 61_001, limit: 100, owner: "again-1", leaseMs: 60_000)
            async let again2 = two.claimDeliveries(now: 61_001, limit: 100, owner: "again-2", leaseMs: 60_000)
            let (first, second) = try await (again1, again2)
            #expect(first.count + second.count == 60)
            #expect(Set(first.map(\.id)).isDisjoint(with: second.map(\.id)))
        }
    }

    @Test(
        "leadership: one of two takes it; the other takes over after a release, and after the holder's session is killed",
        .enabled(if: enabled))
    func leadership() async throws {
        try await withStores(2) { url, stores in
            let a = stores[0].leadership(collectorId: "c-a")
            let b = stores[1].leadership(collectorId: "c-b")
            do {
                try await takeOver(a, b, url: url)
            } catch {
                await a.release()
                await b.release()
                throw error
            }
            await a.release()
            await b.release()
        }
    }

    func takeOver(_ a: any Leadership, _ b: any Leadership, url: String) async throws {
        async let aTook = a.acquireOrConfirm(now: 1_000)
        async let bTook = b.acquireOrConfirm(now: 1_000)
        let (aFirst, bFirst) = await (aTook, bTook)
        #expect(aFirst != bFirst)
        let (holder, waiter) = aFirst ? (a, b) : (b, a)
        #expect(await holder.acquireOrConfirm(now: 2_000))
        #expect(await !waiter.acquireOrConfirm(now: 2_000))

        // A release hands it over.
        await holder.release()
        #expect(await waiter.acquireOrConfirm(now: 3_000))
        #expect(await !holder.acquireOrConfirm(now: 3_000))

        // The new holder's session is killed from another connection: the server releases the lock.
        let killed = try await PostgresStore.maintenance(
            url: url,
            [
                """
                SELECT pg_terminate_backend(pid)::text FROM pg_locks WHERE locktype = 'advisory' AND granted
                AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                """
            ], logger: testLogger)
        #expect(killed == [["true"]])
        var tookOver = false
        for _ in 0..<50 where !tookOver {
            tookOver = await holder.acquireOrConfirm(now: 4_000)
            if !tookOver { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(tookOver)
        // The killed one learns at its next confirm, at once, and stays out.
        let clock = ContinuousClock()
        let started = clock.now
        #expect(await !waiter.acquireOrConfirm(now: 5_000))
        #expect(clock.now - started < .milliseconds(1_500))
        #expect(await !waiter.acquireOrConfirm(now: 5_100))
        #expect(await holder.acquireOrConfirm(now: 5_200))
    }
}
