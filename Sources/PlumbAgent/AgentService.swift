import Foundation
import Logging
import PlumbCore
import PlumbModelIO
import PlumbProbes
import PlumbWire
import ServiceLifecycle
import Synchronization

/// The agent: discovery, responder, plan (from the collector or a file), scheduler and reporter, as one `Service`.
///
/// On graceful shutdown (SIGTERM/SIGINT through the `ServiceGroup`) it stops the probes, closes the last batch and
/// tries to deliver what is spooled for up to `shutdownDrainSeconds`, then returns; the whole takes under 5 s.
public struct AgentService: Service {
    /// The settings.
    public var configuration: AgentConfiguration
    /// The agent's software version, sent on registration.
    public var version: String
    /// Logger.
    public var logger: Logger
    /// Seconds spent delivering spooled batches on shutdown.
    public var shutdownDrainSeconds = 2.5
    /// Seconds between two checks of a plan file for changes (standalone mode).
    public var planFileCheckSeconds = 2.0

    /// Creates the service.
    public init(configuration: AgentConfiguration, version: String, logger: Logger) {
        self.configuration = configuration
        self.version = version
        self.logger = logger
    }

    /// Errors that stop the agent at start, each with what to do.
    public struct StartError: Error, CustomStringConvertible {
        /// The explanation.
        public var description: String
    }

    public func run() async throws {
        let discoverer = Discoverer(
            imds: configuration.imdsEnabled ? IMDSClient(endpoint: configuration.imdsEndpoint) : nil, overrides: configuration.identity,
            logger: logger)
        let firstIdentity = await discoverer.discover()
        let identity = IdentityBox(firstIdentity)
        let agentId = configuration.agentId ?? firstIdentity.instanceId
        logger.info(
            "identity discovered",
            metadata: [
                "agent": "\(agentId)", "instance": "\(firstIdentity.instanceId)", "source": "\(firstIdentity.source.rawValue)",
                "interfaces": "\(firstIdentity.interfaces.map { "\($0.interfaceId ?? $0.mac)=\($0.privateIPv4s.joined(separator: ","))" })",
            ])

        let responder: Responder?
        if configuration.responderEnabled {
            do {
                responder = try Responder(
                    address: configuration.responderAddress, port: configuration.responderPort,
                    identity: Self.responderSelf(agentId: agentId, identity: firstIdentity),
                    maxRepliesPerSecond: configuration.responderMaxRepliesPerSecond)
            } catch {
                throw StartError(description: "\(error)")
            }
            logger.info("responder listening", metadata: ["address": "\(configuration.responderAddress)", "port": "\(responder!.port)"])
        } else {
            responder = nil
        }
        defer { responder?.stop() }

        let mode = try makeMode(agentId: agentId)
        let session = mode.session
        let reporter = Reporter(
            destination: mode.destination, logger: logger, agentId: { session?.agentId ?? agentId },
            unauthorized: { mode.registerAgain.signal() })
        let scheduler = Scheduler(emit: { reporter.submit($0) })

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await reporter.runBatching() }
            group.addTask { await reporter.runSending() }
            group.addTask {
                await discoveryLoop(discoverer, identity: identity, agentId: agentId, responder: responder, reporter: reporter, mode: mode)
            }
            if let client = mode.client, let session, case .collector(_, _, let spool) = mode.destination {
                let plans = PlanCache(directory: configuration.spoolDirectory)
                if let cached = plans.load() {
                    logger.info(
                        "using the plan cached from the last run until the collector answers", metadata: ["probes": "\(cached.plan.probes.count)"])
                    apply(cached.plan, scheduler: scheduler, reporter: reporter)
                }
                group.addTask {
                    await collectorPlanLoop(
                        client: client, session: session, spool: spool, plans: plans, identity: identity, imds: discoverer.imds, agentId: agentId,
                        responder: responder,
                        scheduler: scheduler, reporter: reporter, registerAgain: mode.registerAgain)
                }
            } else if let planFile = configuration.planFile {
                let plan = try Self.loadPlan(path: planFile)
                apply(plan, scheduler: scheduler, reporter: reporter)
                group.addTask { await filePlanLoop(path: planFile, scheduler: scheduler, reporter: reporter) }
            }

            // Wait for SIGTERM/SIGINT (or cancellation), then stop in order.
            try? await gracefulShutdown()
            let started = ContinuousClock.now
            await scheduler.stop()
            group.cancelAll()
            while (try? await group.next()) != nil {}
            await reporter.flush()
            let delivered = await reporter.drain(deadline: started + .seconds(shutdownDrainSeconds))
            logger.info(
                "agent stopped",
                metadata: [
                    "spool": delivered ? "empty" : "kept for the next start",
                    "seconds": "\(Double((ContinuousClock.now - started) / .milliseconds(1)) / 1000)",
                ])
        }
    }

    // MARK: - Modes

    private struct Mode: Sendable {
        var destination: ReportDestination
        var client: CollectorClient?
        var session: Session?
        var registerAgain: Wakeup
    }

    private func makeMode(agentId: String) throws -> Mode {
        let registerAgain = Wakeup()
        if configuration.planFile != nil, let url = configuration.collectorURL {
            logger.notice("a static plan was given: running standalone, the collector is not contacted", metadata: ["collector": "\(url)"])
        }
        if configuration.planFile == nil, let url = configuration.collectorURL {
            guard configuration.enrollmentToken != nil else {
                throw StartError(
                    description:
                        "a collector is configured (\(url)) but no enrollment token: set collector.enrollmentToken(File) in the configuration, "
                        + "PLUMB_ENROLLMENT_TOKEN(_FILE), or --enrollment-token-file")
            }
            let spool: Spool
            do {
                spool = try Spool(directory: configuration.spoolDirectory, maxBytes: configuration.spoolMaxBytes)
            } catch {
                throw StartError(description: "\(error)")
            }
            if !spool.entries.isEmpty {
                logger.info("spooled batches from an earlier run will be sent", metadata: ["batches": "\(spool.entries.count)"])
            }
            let session = Session(directory: configuration.spoolDirectory)
            let client = CollectorClient(baseURL: url, tls: configuration.collectorTLS)
            return Mode(
                destination: .collector(client, session, spool), client: client, session: session, registerAgain: registerAgain)
        }
        guard configuration.planFile != nil else {
            throw StartError(description: "nothing to do: give a collector (--collector URL) or a static plan (--plan FILE)")
        }
        let output = configuration.output ?? "-"
        let fd: Int32
        if output == "-" {
            fd = 1
        } else {
            fd = open(output, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw StartError(description: "cannot open \(output) for the reports: \(String(cString: strerror(errno)))") }
        }
        return Mode(destination: .output(fd), client: nil, session: nil, registerAgain: registerAgain)
    }

    private func apply(_ plan: Plan, scheduler: Scheduler, reporter: Reporter) {
        reporter.apply(plan)
        scheduler.apply(plan)
        logger.info("plan applied", metadata: ["probes": "\(plan.probes.count)", "plan": "\(plan.planId ?? "-")"])
    }

    /// Reads and checks a plan file (JSON or YAML); every problem is reported with its location.
    public static func loadPlan(path: String) throws -> Plan {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw StartError(description: "\(path): cannot read the plan: \(error.localizedDescription)")
        }
        let decoded = DocumentParser.decode(Plan.self, text: text, file: path)
        guard let plan = decoded.value else { throw StartError(description: decoded.diagnostics.map(\.description).joined(separator: "\n")) }
        let problems = plan.problems()
        guard problems.isEmpty else { throw StartError(description: problems.map { "\(path): \($0)" }.joined(separator: "\n")) }
        return plan
    }

    static func responderSelf(agentId: String, identity: AgentIdentity) -> ResponderSelf {
        ResponderSelf(
            agentId: agentId, instanceId: identity.instanceId,
            interfaceIds: Dictionary(identity.interfaces.compactMap { interface in interface.interfaceId.map { (interface.mac, $0) } }) { first, _ in
                first
            })
    }

    static func capabilities() -> [ProbeKind] {
        ProbeKind.allCases.filter { $0 != .icmp || ICMPSupport.method() != nil }
    }

    // MARK: - Loops

    private func discoveryLoop(
        _ discoverer: Discoverer, identity: IdentityBox, agentId: String, responder: Responder?, reporter: Reporter, mode: Mode
    ) async {
        while !Task.isCancelled {
            do { try await Task.sleep(for: .seconds(configuration.discoveryIntervalSeconds)) } catch { return }
            let before = identity.value
            let fresh = await discoverer.discover(previous: before)
            let changes = before.changes(to: fresh)
            guard !changes.isEmpty else { continue }
            for change in changes { logger.notice("identity changed", metadata: ["change": "\(change)"]) }
            identity.value = fresh
            responder?.update(Self.responderSelf(agentId: mode.session?.agentId ?? agentId, identity: fresh))
            reporter.identityChanged(fresh)
            mode.registerAgain.signal()  // the collector learns the new interfaces at once
        }
    }

    private func filePlanLoop(path: String, scheduler: Scheduler, reporter: Reporter) async {
        var lastModified = Self.modificationTime(path)
        while !Task.isCancelled {
            do { try await Task.sleep(for: .seconds(planFileCheckSeconds)) } catch { return }
            let modified = Self.modificationTime(path)
            guard modified != lastModified else { continue }
            lastModified = modified
            do {
                apply(try Self.loadPlan(path: path), scheduler: scheduler, reporter: reporter)
            } catch {
                logger.error("the changed plan file is not usable; the previous plan keeps running", metadata: ["problems": "\(error)"])
            }
        }
    }

    private static func modificationTime(_ path: String) -> Date? {
        (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
    }

    private func collectorPlanLoop(
        client: CollectorClient, session: Session, spool: Spool, plans: PlanCache, identity: IdentityBox, imds: IMDSClient?, agentId: String,
        responder: Responder?, scheduler: Scheduler, reporter: Reporter, registerAgain: Wakeup
    ) async {
        var etag = plans.load()?.etag
        var refresh = PlanSettings().planRefreshMs
        var backoff = 1.0
        var mustRegister = true
        var refusedInARow = 0
        while !Task.isCancelled {
            if mustRegister || session.credentials == nil {
                var registration = Registration(
                    agentId: configuration.agentId ?? agentId, identity: identity.value, agentVersion: version,
                    capabilities: Self.capabilities(), responderPort: responder?.port, agentKey: session.agentKey)
                // On EC2, the signed identity document proves which instance this is (the collector may require it).
                if identity.value.source == .imds, let imds {
                    do {
                        registration.instanceIdentity = try await imds.instanceIdentity()
                    } catch {
                        logger.warning("no instance identity document from IMDS; registering without", metadata: ["error": "\(error)"])
                    }
                }
                // Refresh with the agent's own token while it has one; the enrollment token is for the first time and
                // for when the collector no longer knows that token.
                let ownToken = session.credentials?.token
                do {
                    let response = try await client.register(registration, token: ownToken ?? configuration.enrollmentToken ?? "")
                    session.set(Session.Credentials(agentId: response.agentId, token: response.agentToken))
                    if let last = response.lastSequence { spool.advance(past: last) }
                    if let interval = response.planRefreshMs { refresh = max(1_000, interval) }
                    responder?.update(Self.responderSelf(agentId: response.agentId, identity: identity.value))
                    logger.info("registered with the collector", metadata: ["agent": "\(response.agentId)"])
                    mustRegister = false
                    backoff = 1
                } catch .unauthorized where ownToken != nil {
                    session.invalidate()  // the next attempt uses the enrollment token
                    continue
                } catch {
                    logger.warning("registration failed; retrying", metadata: ["error": "\(error)"])
                    if case .rejected = error { backoff = max(backoff, 30) }
                    do { try await Task.sleep(for: .seconds(backoff * Double.random(in: 0.5...1))) } catch { return }
                    backoff = min(60, backoff * 2)
                    continue
                }
            }
            guard let credentials = session.credentials else { continue }
            do {
                switch try await client.plan(agentId: credentials.agentId, token: credentials.token, etag: etag) {
                case .unchanged: break
                case .plan(let plan, let newEtag):
                    let problems = plan.problems()
                    refusedInARow = 0
                    if problems.isEmpty {
                        apply(plan, scheduler: scheduler, reporter: reporter)
                        etag = newEtag
                        refresh = plan.settings.planRefreshMs
                        plans.save(plan, etag: newEtag)
                    } else {
                        logger.error("the collector sent an unusable plan; keeping the previous one", metadata: ["problems": "\(problems)"])
                    }
                }
            } catch .unauthorized {
                // Registered, yet refused: wait longer each time rather than hammer the collector.
                refusedInARow += 1
                logger.warning("the collector refused the agent token for the plan; registering again", metadata: ["attempt": "\(refusedInARow)"])
                session.invalidate()
                mustRegister = true
                if refusedInARow > 1 {
                    do { try await Task.sleep(for: .seconds(min(60, pow(2, Double(refusedInARow - 1))) * Double.random(in: 0.5...1))) } catch {
                        return
                    }
                }
                continue
            } catch {
                logger.warning("plan fetch failed; the current plan keeps running", metadata: ["error": "\(error)"])
            }
            // Sleep until the next refresh, or until the reporter (token refused) or discovery (identity changed) asks
            // for a new registration.
            if await registerAgain.wait(for: .milliseconds(Int(Double(refresh) * Double.random(in: 0.9...1.1)))) {
                mustRegister = true
            }
        }
    }
}

/// The last plan received, kept in the spool directory so a restarted agent probes while the collector is down.
struct PlanCache: Sendable {
    var directory: String

    private struct Saved: Codable {
        var plan: Plan
        var etag: String?
    }

    func load() -> (plan: Plan, etag: String?)? {
        guard let data = FileManager.default.contents(atPath: directory + "/plan.json"),
            let saved = try? JSONDecoder().decode(Saved.self, from: data), saved.plan.problems().isEmpty
        else { return nil }
        return (saved.plan, saved.etag)
    }

    func save(_ plan: Plan, etag: String?) {
        guard let data = try? JSONEncoder().encode(Saved(plan: plan, etag: etag)) else { return }
        let temporary = directory + "/.plan.json.tmp"
        if FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: 0o600]) {
            _ = rename(temporary, directory + "/plan.json")
        }
    }
}
