import CCurl
import Glibc
import Synchronization

/// Set from another thread to abort a running transfer; libcurl checks it from its progress callback (at least once a
/// second, more often while data moves).
public final class TransferCancellation: Sendable {
    private let flag = Atomic<Bool>(false)

    /// A flag that is not set.
    public init() {}

    /// Asks the transfer to stop.
    public func cancel() { flag.store(true, ordering: .releasing) }

    /// Whether `cancel()` was called.
    public var isCancelled: Bool { flag.load(ordering: .acquiring) }
}

/// An HTTP request carried out by libcurl on the blocking pool.
public struct HTTPRequest: Sendable {
    /// `GET`, `PUT`, `POST`, …
    public var method: String
    /// The URL.
    public var url: String
    /// Request headers as `(name, value)`.
    public var headers: [(String, String)]
    /// The request body.
    public var body: [UInt8]?
    /// The whole request's timeout in milliseconds.
    public var timeoutMs: Int
    /// The connect phase's timeout in milliseconds (default: the whole timeout).
    public var connectTimeoutMs: Int?
    /// Verify the server's certificate and name (https).
    public var verifyTLS: Bool
    /// A PEM file of CA certificates to verify the server with (`CURLOPT_CAINFO`); nil: the system's CA bundle.
    public var caFile: String?
    /// A PEM client certificate (chain) to present (`CURLOPT_SSLCERT`), for servers that require one (mTLS).
    public var clientCertificateFile: String?
    /// The PEM private key of `clientCertificateFile` (`CURLOPT_SSLKEY`); nil: the key is in the certificate file.
    public var clientKeyFile: String?
    /// Bytes of the response body kept; the rest is read and discarded.
    public var maxBodyBytes: Int
    /// Open a new connection and close it afterwards (probes); false lets libcurl keep nothing anyway, as each request
    /// uses its own easy handle.
    public var freshConnection: Bool

    /// Creates a request.
    public init(
        method: String = "GET", url: String, headers: [(String, String)] = [], body: [UInt8]? = nil, timeoutMs: Int = 5_000,
        connectTimeoutMs: Int? = nil, verifyTLS: Bool = true, maxBodyBytes: Int = 1 << 20, freshConnection: Bool = true,
        caFile: String? = nil, clientCertificateFile: String? = nil, clientKeyFile: String? = nil
    ) {
        self.caFile = caFile
        self.clientCertificateFile = clientCertificateFile
        self.clientKeyFile = clientKeyFile
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeoutMs = timeoutMs
        self.connectTimeoutMs = connectTimeoutMs
        self.verifyTLS = verifyTLS
        self.maxBodyBytes = maxBodyBytes
        self.freshConnection = freshConnection
    }
}

/// What libcurl observed.
public struct HTTPResponse: Sendable {
    /// How the transfer ended.
    public enum Failure: Sendable, Equatable {
        case refused
        case timeout
        case unreachable
        case dns
        case tls
        case other
    }

    /// Nil when the transfer completed (whatever the status); otherwise why it did not.
    public var failure: Failure?
    /// libcurl's error text (`curl_easy_strerror` plus its error buffer).
    public var errorMessage: String?
    /// The HTTP status (0 without a response).
    public var status: Int
    /// Response headers, names lowercased; the last value wins.
    public var headers: [String: String]
    /// The body (at most `maxBodyBytes`).
    public var body: [UInt8]
    /// Phase times in milliseconds, cumulative from the start.
    public var dnsMs: Double
    public var connectMs: Double
    public var tlsMs: Double
    public var firstByteMs: Double
    public var totalMs: Double
    /// The local address the connection used.
    public var localIP: String?

    /// The body as UTF-8 text.
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// The libcurl bridge. `curl_global_init` runs once, before the first handle.
public enum Curl {
    private static let initialised: Bool = {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK
    }()

    /// Runs `request` on the blocking pool. Cancelling the task aborts the transfer (within about a second) and returns
    /// a response with failure `.other`.
    public static func perform(_ request: HTTPRequest, pool: BlockingPool = .shared) async -> HTTPResponse {
        let cancellation = TransferCancellation()
        return await withTaskCancellationHandler {
            await pool.run { performBlocking(request, cancellation: cancellation) }
        } onCancel: {
            cancellation.cancel()
        }
    }

    /// Runs `request` on the calling thread. Blocks: never call it on the cooperative pool.
    public static func performBlocking(_ request: HTTPRequest, cancellation: TransferCancellation? = nil) -> HTTPResponse {
        _ = initialised
        guard let handle = curl_easy_init() else {
            return HTTPResponse(
                failure: .other, errorMessage: "curl_easy_init failed", status: 0, headers: [:], body: [], dnsMs: 0, connectMs: 0, tlsMs: 0,
                firstByteMs: 0, totalMs: 0)
        }
        defer { curl_easy_cleanup(handle) }
        let sink = Sink(limit: request.maxBodyBytes, cancellation: cancellation)
        let sinkPointer = Unmanaged.passUnretained(sink).toOpaque()
        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        var headerList: UnsafeMutablePointer<curl_slist>?
        for (name, value) in request.headers { headerList = curl_slist_append(headerList, "\(name): \(value)") }
        defer { curl_slist_free_all(headerList) }

        let code: CURLcode = errorBuffer.withUnsafeMutableBufferPointer { errorPointer in
            _ = plumb_curl_setopt_string(handle, CURLOPT_URL, request.url)
            _ = plumb_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
            _ = plumb_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, request.timeoutMs)
            _ = plumb_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, request.connectTimeoutMs ?? request.timeoutMs)
            _ = plumb_curl_setopt_long(handle, CURLOPT_FRESH_CONNECT, request.freshConnection ? 1 : 0)
            _ = plumb_curl_setopt_long(handle, CURLOPT_FORBID_REUSE, request.freshConnection ? 1 : 0)
            _ = plumb_curl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, request.verifyTLS ? 1 : 0)
            _ = plumb_curl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, request.verifyTLS ? 2 : 0)
            if let caFile = request.caFile { _ = plumb_curl_setopt_string(handle, CURLOPT_CAINFO, caFile) }
            if let certificate = request.clientCertificateFile {
                _ = plumb_curl_setopt_string(handle, CURLOPT_SSLCERT, certificate)
                _ = plumb_curl_setopt_string(handle, CURLOPT_SSLCERTTYPE, "PEM")
            }
            if let key = request.clientKeyFile {
                _ = plumb_curl_setopt_string(handle, CURLOPT_SSLKEY, key)
                _ = plumb_curl_setopt_string(handle, CURLOPT_SSLKEYTYPE, "PEM")
            }
            _ = plumb_curl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0)
            _ = plumb_curl_setopt_long(handle, CURLOPT_NOPROGRESS, cancellation == nil ? 1 : 0)
            if cancellation != nil {
                _ = plumb_curl_setopt_progress_function(handle, CURLOPT_XFERINFOFUNCTION, sinkProgress)
                _ = plumb_curl_setopt_pointer(handle, CURLOPT_XFERINFODATA, sinkPointer)
            }
            _ = plumb_curl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "http,https")
            _ = plumb_curl_setopt_string(handle, CURLOPT_USERAGENT, "plumb-agent/1")
            _ = plumb_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorPointer.baseAddress)
            _ = plumb_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, headerList)
            _ = plumb_curl_setopt_write_function(handle, CURLOPT_WRITEFUNCTION, sinkBody)
            _ = plumb_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, sinkPointer)
            _ = plumb_curl_setopt_write_function(handle, CURLOPT_HEADERFUNCTION, sinkHeader)
            _ = plumb_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, sinkPointer)
            switch request.method {
            case "GET": break
            case "HEAD": _ = plumb_curl_setopt_long(handle, CURLOPT_NOBODY, 1)
            default: _ = plumb_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, request.method)
            }
            if let body = request.body {
                return body.withUnsafeBufferPointer { bodyPointer in
                    _ = plumb_curl_setopt_off_t(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
                    _ = plumb_curl_setopt_pointer(handle, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: bodyPointer.baseAddress))
                    if request.method == "GET" || request.method == "POST" { _ = plumb_curl_setopt_long(handle, CURLOPT_POST, 1) }
                    return curl_easy_perform(handle)
                }
            }
            return curl_easy_perform(handle)
        }

        var status = 0
        _ = plumb_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        var osErrno = 0
        _ = plumb_curl_getinfo_long(handle, CURLINFO_OS_ERRNO, &osErrno)
        func milliseconds(_ info: CURLINFO) -> Double {
            var microseconds: curl_off_t = 0
            _ = plumb_curl_getinfo_off_t(handle, info, &microseconds)
            return Double(microseconds) / 1000
        }
        var localIP: UnsafeMutablePointer<CChar>?
        _ = plumb_curl_getinfo_string(handle, CURLINFO_LOCAL_IP, &localIP)

        var failure: HTTPResponse.Failure?
        var message: String?
        if code != CURLE_OK {
            let detail = String(decoding: errorBuffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            message = String(cString: curl_easy_strerror(code)) + (detail.isEmpty ? "" : ": \(detail)")
            switch code {
            case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY: failure = .dns
            case CURLE_OPERATION_TIMEDOUT: failure = .timeout
            case CURLE_COULDNT_CONNECT:
                switch Int32(osErrno) {
                case ECONNREFUSED: failure = .refused
                case ETIMEDOUT: failure = .timeout
                case EHOSTUNREACH, ENETUNREACH, EHOSTDOWN, ENETDOWN, EACCES, EPERM: failure = .unreachable
                default: failure = .other
                }
            case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
                CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_CLIENTCERT:
                failure = .tls
            default: failure = .other
            }
        }
        return HTTPResponse(
            failure: failure, errorMessage: message, status: status, headers: sink.headers, body: sink.body,
            dnsMs: milliseconds(CURLINFO_NAMELOOKUP_TIME_T), connectMs: milliseconds(CURLINFO_CONNECT_TIME_T),
            tlsMs: milliseconds(CURLINFO_APPCONNECT_TIME_T), firstByteMs: milliseconds(CURLINFO_STARTTRANSFER_TIME_T),
            totalMs: milliseconds(CURLINFO_TOTAL_TIME_T), localIP: localIP.map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 })
    }
}

/// Collects a response; only touched by the thread running `curl_easy_perform`.
private final class Sink {
    let limit: Int
    let cancellation: TransferCancellation?
    var body: [UInt8] = []
    var headers: [String: String] = [:]

    init(limit: Int, cancellation: TransferCancellation?) {
        self.limit = limit
        self.cancellation = cancellation
    }
}

private let sinkProgress: plumb_curl_progress_fn = { context, _, _, _, _ in
    guard let context else { return 0 }
    let sink = Unmanaged<Sink>.fromOpaque(context).takeUnretainedValue()
    return sink.cancellation?.isCancelled == true ? 1 : 0
}

private let sinkBody: plumb_curl_write_fn = { data, size, count, context in
    let length = size * count
    guard let data, let context else { return length }
    let sink = Unmanaged<Sink>.fromOpaque(context).takeUnretainedValue()
    let room = sink.limit - sink.body.count
    if room > 0 {
        data.withMemoryRebound(to: UInt8.self, capacity: length) { bytes in
            sink.body.append(contentsOf: UnsafeBufferPointer(start: bytes, count: min(room, length)))
        }
    }
    return length
}

private let sinkHeader: plumb_curl_write_fn = { data, size, count, context in
    let length = size * count
    guard let data, let context else { return length }
    let sink = Unmanaged<Sink>.fromOpaque(context).takeUnretainedValue()
    let line = data.withMemoryRebound(to: UInt8.self, capacity: length) { bytes in
        String(decoding: UnsafeBufferPointer(start: bytes, count: length), as: UTF8.self)
    }
    if line.hasPrefix("HTTP/") {
        sink.headers = [:]  // a new response (after 100-continue): forget the previous headers
    } else if let colon = line.firstIndex(of: ":") {
        let name = line[..<colon].lowercased()
        let value = line[line.index(after: colon)...].trimmingCharacters(in: " \t\r\n")
        sink.headers[name] = value
    }
    return length
}

extension StringProtocol {
    /// The text without leading and trailing characters from `set`.
    func trimmingCharacters(in set: String) -> String {
        let characters = Set(set)
        var slice = Substring(self)
        while let first = slice.first, characters.contains(first) { slice = slice.dropFirst() }
        while let last = slice.last, characters.contains(last) { slice = slice.dropLast() }
        return String(slice)
    }
}
