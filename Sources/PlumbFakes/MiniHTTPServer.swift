import CPlumbSys
import Glibc
import PlumbProbes
import Synchronization

/// A request received by `MiniHTTPServer`.
public struct ServerRequest: Sendable {
    /// The method.
    public var method: String
    /// The path with its query.
    public var path: String
    /// Headers, names lowercased.
    public var headers: [String: String]
    /// The body.
    public var body: [UInt8]
    /// The client's address.
    public var peerAddress: String

    /// The body as UTF-8 text.
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// A response for `MiniHTTPServer`.
public struct ServerResponse: Sendable {
    /// Status code.
    public var status: Int
    /// Extra headers.
    public var headers: [(String, String)]
    /// Body.
    public var body: [UInt8]

    /// Creates a response.
    public init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A plain-text response.
    public static func text(_ text: String, status: Int = 200, headers: [(String, String)] = []) -> ServerResponse {
        ServerResponse(status: status, headers: [("Content-Type", "text/plain")] + headers, body: Array(text.utf8))
    }

    /// A JSON response from already encoded text.
    public static func json(_ text: String, status: Int = 200, headers: [(String, String)] = []) -> ServerResponse {
        ServerResponse(status: status, headers: [("Content-Type", "application/json")] + headers, body: Array(text.utf8))
    }
}

/// A small HTTP/1.1 server on blocking sockets for tests and the lab: one thread accepts, one thread per connection,
/// one request per connection (`Connection: close`), `Content-Length` bodies only.
public final class MiniHTTPServer: Sendable {
    /// The bound port.
    public let port: Int
    /// The bound address.
    public let address: String
    private let listener: Int32
    private let stopped = Atomic<Bool>(false)
    private let handler: @Sendable (ServerRequest) -> ServerResponse
    private let requestCount = Atomic<Int>(0)

    /// Errors starting the server.
    public struct BindError: Error, CustomStringConvertible {
        /// What failed.
        public var description: String
    }

    /// Listens on `address:port` (0: any free port) and answers every request with `handler`, called on the
    /// connection's thread.
    public init(address: String = "127.0.0.1", port: Int = 0, handler: @escaping @Sendable (ServerRequest) -> ServerResponse) throws {
        guard let host = IPv4Text.parse(address) else { throw BindError(description: "\(address) is not an IPv4 address") }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        _ = plumb_set_int_option(fd, SOL_SOCKET, SO_REUSEADDR, 1)
        var socketAddress = plumb_sockaddr_in(host, UInt16(port))
        var code = plumb_bind_in(fd, &socketAddress)
        if code == 0 && listen(fd, 128) != 0 { code = errno }
        guard code == 0 else {
            close(fd)
            throw BindError(description: "cannot listen on \(address):\(port): \(String(cString: strerror(code)))")
        }
        var local = sockaddr_in()
        _ = plumb_getsockname_in(fd, &local)
        self.port = Int(plumb_sockaddr_port(&local))
        self.address = address
        self.listener = fd
        self.handler = handler
        OSThread(name: "mini-http") { [self] in self.acceptLoop() }.start()
    }

    /// The base URL, `http://ADDRESS:PORT`.
    public var url: String { "http://\(address):\(port)" }

    /// Requests answered so far.
    public var requests: Int { requestCount.load(ordering: .relaxed) }

    /// Stops accepting; connections in progress finish.
    public func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        shutdown(listener, Int32(SHUT_RDWR))
    }

    deinit { close(listener) }

    private func acceptLoop() {
        while !stopped.load(ordering: .acquiring) {
            var from = sockaddr_in()
            let connection = plumb_accept_in(listener, &from)
            if connection < 0 {
                if stopped.load(ordering: .acquiring) { return }
                usleep(1_000)
                continue
            }
            let peer = IPv4Text.format(plumb_sockaddr_address(&from))
            OSThread(name: "mini-http-conn") { [self] in self.serve(connection, peer: peer) }.start()
        }
    }

    private func serve(_ connection: Int32, peer: String) {
        defer { close(connection) }
        _ = plumb_set_receive_timeout_ms(connection, 5_000)
        guard let request = Self.readRequest(connection, peer: peer) else {
            Self.write(connection, ServerResponse.text("bad request\n", status: 400))
            return
        }
        let response = handler(request)
        requestCount.add(1, ordering: .relaxed)
        Self.write(connection, response, headOnly: request.method == "HEAD")
    }

    static func readRequest(_ connection: Int32, peer: String) -> ServerRequest? {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        var headerEnd: Int?
        while headerEnd == nil {
            let count = buffer.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { return nil }
            data += buffer[0..<count]
            headerEnd = findHeaderEnd(data)
            if headerEnd == nil && data.count > 64 * 1024 { return nil }
        }
        guard let end = headerEnd else { return nil }
        let head = String(decoding: data[0..<end], as: UTF8.self)
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        guard !lines.isEmpty else { return nil }
        let requestLine = lines.removeFirst().split(separator: " ")
        guard requestLine.count >= 2 else { return nil }
        var headers: [String: String] = [:]
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { continue }
            var value = Substring(line[line.index(after: colon)...])
            while value.first == " " { value = value.dropFirst() }
            headers[line[..<colon].lowercased()] = String(value)
        }
        var body = Array(data[(end + 4)...])
        let length = Int(headers["content-length"] ?? "0") ?? 0
        guard length <= 64 * 1024 * 1024 else { return nil }
        while body.count < length {
            let count = buffer.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { return nil }
            body += buffer[0..<count]
        }
        return ServerRequest(
            method: String(requestLine[0]), path: String(requestLine[1]), headers: headers, body: Array(body.prefix(length)), peerAddress: peer)
    }

    private static func findHeaderEnd(_ data: [UInt8]) -> Int? {
        guard data.count >= 4 else { return nil }
        for index in 0...(data.count - 4) where data[index] == 13 && data[index + 1] == 10 && data[index + 2] == 13 && data[index + 3] == 10 {
            return index
        }
        return nil
    }

    static func write(_ connection: Int32, _ response: ServerResponse, headOnly: Bool = false) {
        var head = "HTTP/1.1 \(response.status) \(reason(response.status))\r\n"
        for (name, value) in response.headers { head += "\(name): \(value)\r\n" }
        head += "Content-Length: \(response.body.count)\r\nConnection: close\r\n\r\n"
        var bytes = Array(head.utf8)
        if !headOnly { bytes += response.body }
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { return }
            offset += sent
        }
    }

    private static func reason(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 201: return "Created"
        case 204: return "No Content"
        case 304: return "Not Modified"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 409: return "Conflict"
        case 413: return "Content Too Large"
        case 422: return "Unprocessable Content"
        case 429: return "Too Many Requests"
        case 500: return "Internal Server Error"
        case 503: return "Service Unavailable"
        default: return "Status"
        }
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on now (bound, read, closed): for a server started later, or a
/// connection that must be refused. It is taken below Linux's ephemeral range (32768–60999), so no outgoing
/// connection is given it while its server is stopped (a test's outage) and it can be listened on again.
public func freeTCPPort() -> Int {
    for _ in 0..<64 {
        let port = Int.random(in: 20_000..<32_000)
        if bindable(port) { return port }
    }
    return bound(port: 0)
}

private func bindable(_ port: Int) -> Bool { bound(port: port) == port }

/// Binds 127.0.0.1:`port` (0: any) and returns the port bound, or -1.
private func bound(port: Int) -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = plumb_sockaddr_in(0x7f00_0001, UInt16(port))
    guard plumb_bind_in(fd, &address) == 0 else { return -1 }
    var local = sockaddr_in()
    _ = plumb_getsockname_in(fd, &local)
    return Int(plumb_sockaddr_port(&local))
}
