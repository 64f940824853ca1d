import Foundation
import PlumbProbes
import PlumbWire

/// The agent's side of the collector API v1, over libcurl.
///
/// Routes: `POST /v1/agents/register` (enrollment token), `GET /v1/agents/{id}/plan` (agent token, `If-None-Match`),
/// `POST /v1/agents/{id}/reports` (agent token). See `docs/wire.md`.
public struct CollectorClient: Sendable {
    /// The collector's base URL without a trailing slash.
    public var baseURL: String
    /// Milliseconds a request may take.
    public var timeoutMs: Int
    /// The CA that verifies an `https://` collector and the client certificate it may require.
    public var tls: CollectorTLS

    /// A client for `baseURL`.
    public init(baseURL: String, timeoutMs: Int = 10_000, tls: CollectorTLS = CollectorTLS()) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.timeoutMs = timeoutMs
        self.tls = tls
    }

    /// How a call ended when it did not succeed.
    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// The collector could not be reached, or answered 5xx/429: try again later.
        case unavailable(String)
        /// 401/403: the token is wrong or expired; register again.
        case unauthorized(String)
        /// 4xx other than those: the request itself is wrong and will not succeed if repeated.
        case rejected(Int, String)
        /// A 2xx whose body is not what the API promises.
        case malformed(String)

        public var description: String {
            switch self {
            case .unavailable(let detail): return "collector unavailable: \(detail)"
            case .unauthorized(let detail): return "collector refused the token: \(detail)"
            case .rejected(let status, let detail): return "collector rejected the request (\(status)): \(detail)"
            case .malformed(let detail): return "collector answered something unexpected: \(detail)"
            }
        }
    }

    /// Registers with `token` (the enrollment token, or the agent's own to refresh its registration).
    public func register(_ registration: Registration, token: String) async throws(Failure) -> RegistrationResponse {
        let body = try encode(registration)
        let response = await send("POST", "/v1/agents/register", token: token, body: body)
        try check(response)
        do {
            return try JSONDecoder().decode(RegistrationResponse.self, from: Data(response.body))
        } catch {
            throw .malformed("registration response: \(error)")
        }
    }

    /// What a plan fetch returned.
    public enum PlanFetch: Sendable, Equatable {
        /// The plan did not change since `etag`.
        case unchanged
        /// A new plan and its ETag.
        case plan(Plan, etag: String?)
    }

    /// Fetches the agent's plan, sending `etag` as `If-None-Match`.
    public func plan(agentId: String, token: String, etag: String?) async throws(Failure) -> PlanFetch {
        var headers: [(String, String)] = []
        if let etag { headers.append(("If-None-Match", etag)) }
        let response = await send("GET", "/v1/agents/\(percentEncoded(agentId))/plan", token: token, body: nil, headers: headers)
        if response.failure == nil && response.status == 304 { return .unchanged }
        try check(response)
        do {
            let plan = try JSONDecoder().decode(Plan.self, from: Data(response.body))
            return .plan(plan, etag: response.headers["etag"])
        } catch {
            throw .malformed("plan: \(error)")
        }
    }

    /// Posts one report batch (already encoded, as spooled) and returns the acknowledgement.
    public func report(agentId: String, token: String, body: [UInt8]) async throws(Failure) -> ReportAcknowledgement {
        let response = await send("POST", "/v1/agents/\(percentEncoded(agentId))/reports", token: token, body: body)
        try check(response)
        do {
            return try JSONDecoder().decode(ReportAcknowledgement.self, from: Data(response.body))
        } catch {
            throw .malformed("report acknowledgement: \(error)")
        }
    }

    private func send(_ method: String, _ path: String, token: String, body: [UInt8]?, headers: [(String, String)] = []) async -> HTTPResponse {
        var allHeaders = headers + [("Authorization", "Bearer \(token)"), ("Accept", "application/json")]
        if body != nil { allHeaders.append(("Content-Type", "application/json")) }
        return await Curl.perform(
            tls.applied(
                to: HTTPRequest(
                    method: method, url: baseURL + path, headers: allHeaders, body: body, timeoutMs: timeoutMs, connectTimeoutMs: 3_000,
                    freshConnection: false)), pool: .control)
    }

    private func check(_ response: HTTPResponse) throws(Failure) {
        if response.failure != nil { throw .unavailable(response.errorMessage ?? "transfer failed") }
        let message = (try? JSONDecoder().decode(ErrorBody.self, from: Data(response.body)))?.error.message ?? response.text.prefix(200).description
        switch response.status {
        case 200...299: return
        case 300...399:
            let location = response.headers["location"].map { " to \($0)" } ?? ""
            throw .unavailable("\(response.status): redirected\(location); set the collector URL to the final address")
        case 401, 403: throw .unauthorized("\(response.status): \(message)")
        case 408, 429, 500...599: throw .unavailable("\(response.status): \(message)")
        default: throw .rejected(response.status, message)
        }
    }

    private func encode(_ value: some Encodable) throws(Failure) -> [UInt8] {
        do {
            return Array(try JSONEncoder().encode(value))
        } catch {
            throw .malformed("cannot encode the request: \(error)")
        }
    }

    private func percentEncoded(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? text
    }
}
