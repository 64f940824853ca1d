import ArgumentParser
import Foundation
import PlumbModelIO
import PlumbProbes

/// Where the collector is, and the operator token.
struct CollectorOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The collector's base URL (default $PLUMB_COLLECTOR_URL or http://127.0.0.1:7470).", valueName: "URL"))
    var collector: String?

    @Option(name: .long, help: ArgumentHelp("File holding the operator token (default $PLUMB_OPERATOR_TOKEN).", valueName: "FILE"))
    var tokenFile: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "PEM CA file that verifies an https:// collector (default $PLUMB_CA_FILE, else the system's CA bundle).", valueName: "FILE"))
    var caFile: String?

    @Option(
        name: .long,
        help: ArgumentHelp("PEM client certificate, for a collector that requires one (default $PLUMB_CLIENT_CERTIFICATE).", valueName: "FILE"))
    var clientCertificate: String?

    @Option(
        name: .long,
        help: ArgumentHelp("PEM key of --client-certificate (default $PLUMB_CLIENT_KEY, else in the certificate file).", valueName: "FILE"))
    var clientKey: String?

    @Flag(name: .long, help: "Allow plain http:// to a collector that is not on the loopback (also PLUMB_INSECURE=1).")
    var insecure = false

    @Option(help: "text or json.")
    var format: OutputFormat = .text

    var baseURL: String {
        let url = collector ?? ProcessInfo.processInfo.environment["PLUMB_COLLECTOR_URL"] ?? "http://127.0.0.1:7470"
        return url.hasSuffix("/") ? String(url.dropLast()) : url
    }

    /// The CA file, client certificate and plain-HTTP permission, from the flags, else `PLUMB_*`.
    var tls: CollectorTLS {
        let environment = ProcessInfo.processInfo.environment
        return CollectorTLS(
            caFile: caFile ?? environment["PLUMB_CA_FILE"], clientCertificateFile: clientCertificate ?? environment["PLUMB_CLIENT_CERTIFICATE"],
            clientKeyFile: clientKey ?? environment["PLUMB_CLIENT_KEY"],
            insecure: insecure || ["1", "true", "yes"].contains(environment["PLUMB_INSECURE"]?.lowercased() ?? ""))
    }

    func validate() throws {
        let problems = tls.problems(
            url: baseURL,
            settings: .init(
                caFile: "--ca-file (PLUMB_CA_FILE)", clientCertificate: "--client-certificate (PLUMB_CLIENT_CERTIFICATE)",
                clientKey: "--client-key (PLUMB_CLIENT_KEY)", insecure: "--insecure (PLUMB_INSECURE=1)"))
        if !problems.isEmpty { throw ValidationError(problems.joined(separator: "\n")) }
    }

    func token() throws -> String {
        if let tokenFile {
            guard let token = SecretFile.read(tokenFile) else { throw ValidationError("cannot read a token from \(tokenFile) (missing or empty)") }
            return token
        }
        guard let token = ProcessInfo.processInfo.environment["PLUMB_OPERATOR_TOKEN"] else {
            throw ValidationError("the operator token is needed: --token-file FILE or PLUMB_OPERATOR_TOKEN")
        }
        return token
    }

    /// GETs (or POSTs) `path` and returns the JSON; a clear error for an unreachable collector or an error answer.
    func call(_ path: String, method: String = "GET", body: [UInt8]? = nil) throws -> Any {
        let response = Curl.performBlocking(
            tls.applied(
                to: HTTPRequest(
                    method: method, url: baseURL + path,
                    headers: [("Authorization", "Bearer \(try token())"), ("Content-Type", "application/json")], body: body, timeoutMs: 10_000)))
        if response.failure != nil {
            throw CollectorCallError(description: "cannot reach the collector at \(baseURL): \(response.errorMessage ?? "transfer failed")")
        }
        let json = try? JSONSerialization.jsonObject(with: Data(response.body))
        guard (200...299).contains(response.status) else {
            let message = ((json as? [String: Any])?["error"] as? [String: Any])?["message"] as? String ?? response.text
            throw CollectorCallError(description: "the collector answered \(response.status) for \(path): \(message)")
        }
        return json ?? [:]
    }

    /// Prints `value` as JSON when asked to; returns true if it did.
    func printJSONIfAsked(_ value: Any) -> Bool {
        guard format == .json else { return false }
        if let data = try? JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys]) {
            print(String(decoding: data, as: UTF8.self))
        }
        return true
    }
}

struct CollectorCallError: Error, CustomStringConvertible { var description: String }

/// A fixed-width table.
func table(_ header: [String], _ rows: [[String]]) -> String {
    var widths = header.map(\.count)
    for row in rows { for (index, cell) in row.enumerated() where index < widths.count { widths[index] = max(widths[index], cell.count) } }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { index, cell in cell + String(repeating: " ", count: max(0, widths[index] - cell.count)) }.joined(separator: "  ")
            .trimmingCharacters(in: .whitespaces)
    }
    return ([line(header)] + rows.map(line)).joined(separator: "\n") + "\n"
}

func string(_ value: Any?) -> String {
    switch value {
    case let text as String: return text
    case let number as NSNumber: return number.stringValue
    case nil: return ""
    default: return "\(value!)"
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A one-screen summary of a running collector: readiness, agents, pairs, firing alerts.")
    @OptionGroup var options: CollectorOptions

    func run() throws {
        let agents = (try options.call("/v1/agents") as? [String: Any])?["agents"] as? [[String: Any]] ?? []
        let matrix = try options.call("/v1/matrix") as? [String: Any] ?? [:]
        let alerts = (try options.call("/v1/alerts?status=firing") as? [String: Any])?["alerts"] as? [[String: Any]] ?? []
        let collector = try options.call("/v1/status") as? [String: Any] ?? [:]
        let silent = agents.filter { ($0["silentForSeconds"] as? Int ?? 0) > 30 }
        if options.printJSONIfAsked([
            "collector": collector, "agents": agents.count, "silentAgents": silent.count, "pairs": matrix, "firingAlerts": alerts.count,
        ]) {
            return
        }
        print("collector  \(options.baseURL)")
        let role = string(collector["role"])
        let leader = role == "leader" ? "this one leads" : "follows \(string(collector["leaderId"] ?? "nobody yet"))"
        print("id         \(string(collector["collectorId"])): \(role), \(leader)")
        print(
            "store      \(string(collector["store"]))\((collector["storeReachable"] as? Bool) == false ? " (NOT ANSWERING)" : ""), topology version \(string(collector["topologyVersion"] ?? "none"))"
        )
        print("agents     \(agents.count) registered, \(silent.count) silent")
        print(
            "pairs      \(string(matrix["agreeing"])) agree with the model, \(string(matrix["disagreeing"])) disagree, \(string(matrix["unknown"])) not yet known"
        )
        print("alerts     \(alerts.count) firing")
        for alert in alerts {
            print("  \(string(alert["severity"])) \(string(alert["kind"])) \(string(alert["component"])): \(string(alert["summary"]))")
        }
    }
}

struct Agents: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The agents a collector knows, with their instance and when they last reported.")
    @OptionGroup var options: CollectorOptions

    func run() throws {
        let agents = (try options.call("/v1/agents") as? [String: Any])?["agents"] as? [[String: Any]] ?? []
        if options.printJSONIfAsked(agents) { return }
        print(
            table(
                ["AGENT", "INSTANCE", "IN MODEL", "VERSION", "LAST SEQ", "SILENT FOR"],
                agents.map {
                    [
                        string($0["agentId"]), string($0["instanceId"]), string($0["modelInstance"] ?? "-"), string($0["version"]),
                        string($0["lastSequence"]),
                        "\(string($0["silentForSeconds"])) s",
                    ]
                }), terminator: "")
    }
}

struct Alerts: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Alerts of a collector (all, or filtered); --ack ID acknowledges one.")
    @OptionGroup var options: CollectorOptions
    @Option(help: "firing or resolved.") var status: String?
    @Option(help: "An alert kind, e.g. nat_failure.") var kind: String?
    @Option(help: "Acknowledge this alert id.") var ack: String?
    @Option(help: "Who acknowledges (with --ack).") var by: String = NSUserName()

    func run() throws {
        if let ack {
            let body = Array((try? JSONSerialization.data(withJSONObject: ["by": by])) ?? Data())
            let alert = try options.call("/v1/alerts/\(ack)/acknowledge", method: "POST", body: body)
            if options.printJSONIfAsked(alert) { return }
            print("acknowledged \(ack) as \(by)")
            return
        }
        var query: [String] = []
        if let status { query.append("status=\(status)") }
        if let kind { query.append("kind=\(kind)") }
        let alerts =
            (try options.call("/v1/alerts" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))) as? [String: Any])?["alerts"]
            as? [[String: Any]] ?? []
        if options.printJSONIfAsked(alerts) { return }
        print(
            table(
                ["ID", "STATUS", "SEVERITY", "KIND", "COMPONENT", "SUMMARY"],
                alerts.map {
                    [
                        string($0["id"]), string($0["status"]) + ($0["acknowledgedBy"] != nil ? " (ack)" : ""), string($0["severity"]),
                        string($0["kind"]),
                        string($0["component"]), String(string($0["summary"]).prefix(90)),
                    ]
                }), terminator: "")
    }
}

struct Drift: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "What disagrees with the model now: the findings (component to blame) and the pairs behind them.")
    @OptionGroup var options: CollectorOptions

    func run() throws {
        let drift = try options.call("/v1/drift") as? [String: Any] ?? [:]
        if options.printJSONIfAsked(drift) { return }
        let findings = drift["findings"] as? [[String: Any]] ?? []
        let pairs = drift["pairs"] as? [[String: Any]] ?? []
        if findings.isEmpty && pairs.isEmpty {
            print("no drift: every pair agrees with the model")
            return
        }
        for finding in findings {
            print(
                "\(string(finding["severity"])) \(string(finding["kind"])) on \(string(finding["componentType"])) \(string(finding["component"])): \(string(finding["summary"]))"
            )
        }
        print(
            table(
                ["PAIR", "REASON", "LAST RESULT"],
                pairs.map { [string($0["key"]), string($0["reason"]), String(string($0["lastResult"]).prefix(100))] }), terminator: "")
    }
}

/// `plumb matrix --live`: expected vs observed, from a collector.
func printLiveMatrix(_ options: CollectorOptions) throws {
    let matrix = try options.call("/v1/matrix") as? [String: Any] ?? [:]
    if options.printJSONIfAsked(matrix) { return }
    let pairs = matrix["pairs"] as? [[String: Any]] ?? []
    print(
        table(
            ["SOURCE", "TARGET", "PURPOSE", "PROBE", "EXPECTED", "OBSERVED", ""],
            pairs.map { pair in
                let port = string(pair["port"])
                let status = string(pair["status"])
                return [
                    string(pair["source"]), string(pair["target"]), string(pair["purpose"]), string(pair["kind"]) + (port.isEmpty ? "" : ":" + port),
                    string(pair["expected"]), string(pair["observed"]),
                    status == "disagreeing" ? "<< DRIFT" : (status == "unknown" ? "(no result yet)" : ""),
                ]
            }), terminator: "")
    print("\(string(matrix["agreeing"])) agree, \(string(matrix["disagreeing"])) disagree, \(string(matrix["unknown"])) unknown")
}
