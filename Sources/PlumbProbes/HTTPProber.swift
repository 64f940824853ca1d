import PlumbWire

/// An HTTP(S) request through libcurl on the blocking pool: phase timings, status, optional body match, and the
/// egress-echo check.
struct HTTPProber {
    var pool: BlockingPool

    func run(_ spec: ProbeSpec) async -> ProbeResult {
        let startedAt = wallClockMilliseconds()
        var result = ProbeResult(probeId: spec.id, kind: spec.kind, target: spec.target, port: spec.port, startedAtMs: startedAt, outcome: .error)
        let request = HTTPRequest(
            url: spec.target, timeoutMs: spec.timeoutMs, verifyTLS: spec.verifyTLS ?? true, maxBodyBytes: 64 * 1024, freshConnection: true)
        let response = await Curl.perform(request, pool: pool)
        result.timings = ProbeTimings(
            dnsMs: response.dnsMs, connectMs: response.connectMs > 0 ? response.connectMs : nil, tlsMs: response.tlsMs > 0 ? response.tlsMs : nil,
            firstByteMs: response.firstByteMs > 0 ? response.firstByteMs : nil, totalMs: response.totalMs)
        result.sourceAddress = response.localIP
        if let failure = response.failure {
            switch failure {
            case .refused: result.outcome = .refused
            case .timeout: result.outcome = .timeout
            case .unreachable: result.outcome = .unreachable
            case .dns: result.outcome = .dnsFailure
            case .tls: result.outcome = .tlsFailure
            case .other: result.outcome = .error
            }
            result.detail = response.errorMessage
            if response.status > 0 { result.httpStatus = response.status }
            return result
        }
        result.outcome = .ok
        result.httpStatus = response.status
        var failures: [String] = []
        let accepted = spec.expect.status ?? Array(200...399)
        if !accepted.contains(response.status) {
            failures.append("status: expected \(Self.describe(accepted)), got \(response.status)")
        }
        if let needle = spec.expect.bodyContains, !response.text.contains(needle) {
            failures.append("body: does not contain \"\(needle)\"")
        }
        if spec.egressEcho == true {
            result.egressIP = EgressEcho.address(in: response.text)
        }
        // The runner adds the identity and egress-IP checks; status and body belong to this probe.
        result.checkFailures = failures.isEmpty ? nil : failures
        return result
    }

    private static func describe(_ statuses: [Int]) -> String {
        if statuses == Array(200...399) { return "200–399" }
        return statuses.map(String.init).joined(separator: ", ")
    }
}

/// Reads the caller's public address from an egress-echo response: a bare address (`203.0.113.10`, as
/// checkip/ipify answer), a JSON object with `ip`, `origin`, `source_ip`, `address` or `client_ip` (httpbin and
/// friends), or else the first IPv4 address in the text.
public enum EgressEcho {
    /// The address, or nil when the response carries none.
    public static func address(in text: String) -> String? {
        let trimmed = text.trimmingCharacters(in: " \t\r\n")
        if IPv4Text.parse(trimmed) != nil { return trimmed }
        for key in ["ip", "origin", "source_ip", "sourceIp", "address", "client_ip", "clientIp", "remote_addr"] {
            if let value = jsonStringValue(trimmed, key: key), let first = firstAddress(in: value) { return first }
        }
        return firstAddress(in: trimmed)
    }

    /// The string value of `"key": "value"` in a flat JSON text, without a full parser.
    static func jsonStringValue(_ text: String, key: String) -> String? {
        guard let range = text.firstRange(of: "\"\(key)\"") else { return nil }
        var rest = text[range.upperBound...].drop(while: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" })
        guard rest.first == ":" else { return nil }
        rest = rest.dropFirst().drop(while: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" })
        guard rest.first == "\"" else { return nil }
        rest = rest.dropFirst()
        guard let end = rest.firstIndex(of: "\"") else { return nil }
        return String(rest[..<end])
    }

    /// The first dotted quad in `text` whose octets are all ≤ 255.
    static func firstAddress(in text: String) -> String? {
        var current = ""
        for character in text + " " {
            if character.isASCII && (character.isNumber || character == ".") {
                current.append(character)
                continue
            }
            if !current.isEmpty {
                let candidate = current.trimmingCharacters(in: ".")
                if IPv4Text.parse(candidate) != nil { return candidate }
                current = ""
            }
        }
        return nil
    }
}
