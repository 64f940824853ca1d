import CoreMetrics
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import PlumbModelIO
import PlumbProbes
import PlumbStore
import Synchronization

/// The most a registration or an acknowledgement body may hold: a registration with its signed identity document is
/// a few kilobytes.
let smallDocumentBytes = 64 * 1024

/// The media types a route reads. A request that names another `Content-Type` is refused with 415; one that names none
/// is read as the route's default (curl and scripts often send none).
enum MediaTypes {
    case json
    /// A topology model: YAML or JSON.
    case model

    func accepts(_ contentType: String) -> Bool {
        let essence = contentType.split(separator: ";", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        switch self {
        case .json: return essence == "application/json" || (essence.hasPrefix("application/") && essence.hasSuffix("+json"))
        case .model:
            return MediaTypes.json.accepts(essence)
                || ["application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain"].contains(essence)
        }
    }

    var names: String {
        switch self {
        case .json: return "application/json"
        case .model: return "application/yaml (or text/yaml) or application/json"
        }
    }
}

/// 415 when the request names a media type the route does not read.
func requireMediaType(_ accepted: MediaTypes, _ request: Request) throws {
    guard let contentType = request.headers[.contentType], !contentType.isEmpty else { return }
    guard accepted.accepts(contentType) else {
        let hint =
            contentType.lowercased().hasPrefix("application/x-www-form-urlencoded")
            ? " (curl -d sends application/x-www-form-urlencoded; add -H 'Content-Type: \(accepted == .json ? "application/json" : "application/yaml")')"
            : ""
        throw APIError(415, "unsupported_media_type", "Content-Type '\(contentType)' is not read here; send \(accepted.names)\(hint)")
    }
}

/// The body as text, refused with 400 when it is not UTF-8 (never stored with replacement characters).
func utf8Text(_ buffer: ByteBuffer) throws -> String {
    let bytes = buffer.readableBytesView
    guard let text = String(validating: bytes, as: UTF8.self) else {
        var offset = 0
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        decoding: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): offset += UTF8.width(scalar)
            case .emptyInput, .error: break decoding
            }
        }
        throw APIError(400, "invalid_utf8", "the body is not UTF-8 text (the first invalid byte is at offset \(offset)); send UTF-8")
    }
    return text
}

/// Decodes a small JSON document strictly: JSON only (no YAML forms, so no aliases), UTF-8, escaped surrogate pairs
/// such as `\ud83d\ude00` read as the character they stand for; unknown fields and missing ones are 400s with their
/// location.
func decodeStrictJSON<T: Decodable>(_ type: T.Type, _ buffer: ByteBuffer, name: String) throws -> T {
    let text = try utf8Text(buffer)
    do {
        _ = try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView), options: [.fragmentsAllowed])
    } catch {
        throw APIError(400, "invalid_json", "the \(name) is not JSON: \(error.localizedDescription)")
    }
    // JSON's types first (a `false` is not a string), then the fields by name (an unknown one is an error).
    do {
        _ = try JSONDecoder().decode(type, from: Data(buffer.readableBytesView))
    } catch let error as DecodingError {
        throw APIError(400, "invalid_document", "\(name): \(describe(error))", field: field(of: error))
    }
    return try decodeStrict(type, ByteBuffer(string: JSONText.decodingSurrogateEscapes(text)), name: name)
}

/// JSON text helpers.
enum JSONText {
    /// `text` with every escaped UTF-16 surrogate pair inside a string (`\ud83d\ude00`) written as the UTF-8 character
    /// it encodes; everything else, and escaped backslashes before a `u`, as they were. The YAML reader behind strict
    /// decoding refuses surrogate escapes, which JSON allows.
    static func decodingSurrogateEscapes(_ text: String) -> String {
        guard text.contains("\\u") || text.contains("\\U") else { return text }
        let bytes = Array(text.utf8)
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var inString = false
        var index = 0
        func hex(at start: Int) -> UInt16? {
            guard start + 4 <= bytes.count else { return nil }
            var value: UInt16 = 0
            for byte in bytes[start..<start + 4] {
                guard let digit = Character(UnicodeScalar(byte)).hexDigitValue else { return nil }
                value = value << 4 | UInt16(digit)
            }
            return value
        }
        while index < bytes.count {
            let byte = bytes[index]
            if !inString {
                if byte == UInt8(ascii: "\"") { inString = true }
                output.append(byte)
                index += 1
                continue
            }
            if byte == UInt8(ascii: "\"") {
                inString = false
                output.append(byte)
                index += 1
            } else if byte == UInt8(ascii: "\\"), index + 1 < bytes.count {
                if bytes[index + 1] == UInt8(ascii: "u"), let high = hex(at: index + 2), (0xD800...0xDBFF).contains(high),
                    index + 7 < bytes.count, bytes[index + 6] == UInt8(ascii: "\\"), bytes[index + 7] == UInt8(ascii: "u"),
                    let low = hex(at: index + 8), (0xDC00...0xDFFF).contains(low),
                    let scalar = Unicode.Scalar(0x10000 + (UInt32(high - 0xD800) << 10) + UInt32(low - 0xDC00))
                {
                    output.append(contentsOf: Array(String(Character(scalar)).utf8))
                    index += 12
                } else {
                    output.append(byte)
                    output.append(bytes[index + 1])
                    index += 2
                }
            } else {
                output.append(byte)
                index += 1
            }
        }
        return String(decoding: output, as: UTF8.self)
    }
}

/// Failed authentications: counted per route (`plumb_auth_failures_total{route}`), logged at most once per 10 s with
/// a count, and slowed per source address. Each source has a bucket of 20 failures that refills one per second; a
/// source that has spent it gets 429 with `Retry-After` before its token is even looked at, until the bucket refills.
/// A right token never spends anything.
final class AuthFailureGuard: Sendable {
    struct Bucket {
        var tokens: Double
        var atMs: Int64
    }
    struct State {
        var buckets: [String: Bucket] = [:]
        var lastLogMs: Int64 = 0
        var sinceLog = 0
        var sourcesSinceLog: Set<String> = []
    }

    let burst: Double
    let refillPerSecond: Double
    let maxSources: Int
    private let state = Mutex(State())
    private let logger: Logger

    init(logger: Logger, burst: Double = 20, refillPerSecond: Double = 1, maxSources: Int = 10_000) {
        self.logger = logger
        self.burst = burst
        self.refillPerSecond = refillPerSecond
        self.maxSources = maxSources
    }

    /// Seconds until `source` may try again, when it has spent its failures; nil when it may go on.
    func retryAfter(source: String, nowMs: Int64) -> Int? {
        state.withLock { state in
            guard var bucket = state.buckets[source] else { return nil }
            bucket.tokens = min(burst, bucket.tokens + Double(max(0, nowMs - bucket.atMs)) / 1000 * refillPerSecond)
            bucket.atMs = nowMs
            state.buckets[source] = bucket
            guard bucket.tokens < 1 else { return nil }
            return max(1, Int(((1 - bucket.tokens) / refillPerSecond).rounded(.up)))
        }
    }

    /// Records one failure from `source` on `route`.
    func failed(source: String, route: String, code: String, nowMs: Int64) {
        Counter(label: "plumb_auth_failures_total", dimensions: [("route", route)]).increment()
        let report: (count: Int, sources: Int)? = state.withLock { state in
            if state.buckets[source] == nil, state.buckets.count >= maxSources {
                // Forget the sources that have refilled; if none has, the oldest.
                state.buckets = state.buckets.filter {
                    $0.value.tokens + Double(max(0, nowMs - $0.value.atMs)) / 1000 * refillPerSecond < burst
                }
                if state.buckets.count >= maxSources, let oldest = state.buckets.min(by: { $0.value.atMs < $1.value.atMs }) {
                    state.buckets[oldest.key] = nil
                }
            }
            var bucket = state.buckets[source] ?? Bucket(tokens: burst, atMs: nowMs)
            bucket.tokens = min(burst, bucket.tokens + Double(max(0, nowMs - bucket.atMs)) / 1000 * refillPerSecond) - 1
            bucket.atMs = nowMs
            state.buckets[source] = bucket
            state.sinceLog += 1
            if state.sourcesSinceLog.count < 1_000 { state.sourcesSinceLog.insert(source) }
            guard nowMs - state.lastLogMs >= 10_000 else { return nil }
            defer {
                state.lastLogMs = nowMs
                state.sinceLog = 0
                state.sourcesSinceLog = []
            }
            return (state.sinceLog, state.sourcesSinceLog.count)
        }
        if let report {
            logger.warning(
                "authentication failed",
                metadata: [
                    "failures": "\(report.count) since the last such line (at most one per 10 s)", "sources": "\(report.sources)",
                    "latest": "\(source) \(route) \(code)",
                ])
        }
    }

    /// Every route's series at zero, so a rate sees the first failure.
    static func declare(routes: [String]) {
        for route in routes { Counter(label: "plumb_auth_failures_total", dimensions: [("route", route)]).increment(by: 0) }
    }
}

/// Slows sources that keep failing authentication and counts every failure; the health, metrics and page asset routes
/// are never slowed (they take no token).
struct AuthFailureMiddleware: RouterMiddleware {
    typealias Context = CollectorRequestContext
    let guardian: AuthFailureGuard
    static let open: Set<String> = ["/healthz", "/readyz", "/metrics", "/assets/plumb.css", "/assets/plumb.js"]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard !Self.open.contains(request.uri.path) else { return try await next(request, context) }
        let source = context.peerAddress ?? "unknown"
        let now = wallClockMilliseconds()
        if let seconds = guardian.retryAfter(source: source, nowMs: now) {
            var response = errorResponse(
                APIError(429, "too_many_failures", "too many failed authentications from \(source); try again in \(seconds) s with a valid token"))
            response.headers[.retryAfter] = "\(seconds)"
            return response
        }
        let response = try await next(request, context)
        if response.status == .unauthorized || (response.status == .forbidden && response.headers[Self.failureMark] != nil) {
            guardian.failed(
                source: source, route: "\(request.method) \(context.endpointPath ?? "other")", code: "\(response.status.code)",
                nowMs: now)
        }
        var cleaned = response
        cleaned.headers[Self.failureMark] = nil
        return cleaned
    }

    /// Set by the error responses of token checks (403 `forbidden`), removed before the response leaves.
    static let failureMark = HTTPField.Name("X-Plumb-Auth-Failure")!
}

/// Bounds every wait for the store in a request (`limits.storeTimeoutSeconds`; `/readyz` answers within a second): a
/// database that does not answer makes a 503 with `Retry-After`, not a request held open for the outage.
struct StoreDeadlineMiddleware: RouterMiddleware {
    typealias Context = CollectorRequestContext
    let timeout: Duration

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let wait = request.uri.path == "/readyz" ? min(timeout, .milliseconds(800)) : timeout
        return try await StoreDeadline.$current.withValue(wait) { try await next(request, context) }
    }
}
