// A minimal HTTP/1.1 client for the collector benchmark's load generator (`--client keepalive`): one blocking TCP
// connection per worker, kept open, the request written in one call, the response read by its Content-Length (or
// chunks). What libcurl does per request in `Curl.perform` (a new easy handle and so a new connection, and
// `Expect: 100-continue` with its extra round trip for bodies over 1 KiB) is left out, so the figures show more of the
// collector and less of the load generator.
import Foundation

/// One kept-open connection to `127.0.0.1:port`. Not thread-safe: one worker uses it.
final class KeepAliveClient {
    let port: Int
    private var fd: Int32 = -1
    private var buffer: [UInt8] = []

    init(port: Int) { self.port = port }

    deinit { if fd >= 0 { close(fd) } }

    /// POSTs `body` to `path`; the response status, 0 when the connection failed (it is opened again next time).
    func post(path: String, token: String, body: [UInt8]) -> Int {
        if fd < 0 && !connect() { return 0 }
        let head =
            "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAuthorization: Bearer \(token)\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n"
        let request = Array(head.utf8) + body
        guard writeAll(request), let status = readResponse() else {
            close(fd)
            fd = -1
            buffer.removeAll()
            return 0
        }
        return status
    }

    private func connect() -> Bool {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        if !connected {
            close(fd)
            fd = -1
        }
        return connected
    }

    private func writeAll(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if written <= 0 { return false }
            offset += written
        }
        return true
    }

    /// Reads more into `buffer`; false at the end of the stream or on an error.
    private func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 16_384)
        let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return false }
        buffer += chunk.prefix(count)
        return true
    }

    private static let headEnd: [UInt8] = Array("\r\n\r\n".utf8)

    /// The status of one response, its body consumed.
    private func readResponse() -> Int? {
        var end: Int?
        while end == nil {
            end = Self.find(Self.headEnd, in: buffer)
            if end == nil && !fill() { return nil }
        }
        let headLength = end! + 4
        let head = String(decoding: buffer[0..<end!], as: UTF8.self).lowercased()
        buffer.removeFirst(headLength)
        let lines = head.split(separator: "\r\n")
        guard let statusLine = lines.first, let status = statusLine.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return nil }
        if let length = lines.first(where: { $0.hasPrefix("content-length:") }).flatMap({ Int($0.dropFirst(15).trimmingCharacters(in: .whitespaces)) }
        ) {
            while buffer.count < length { if !fill() { return nil } }
            buffer.removeFirst(length)
        } else if lines.contains(where: { $0.hasPrefix("transfer-encoding:") && $0.contains("chunked") }) {
            let last = Array("0\r\n\r\n".utf8)
            var found = Self.find(last, in: buffer)
            while found == nil {
                if !fill() { return nil }
                found = Self.find(last, in: buffer)
            }
            buffer.removeFirst(found! + last.count)
        }
        return status
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if Array(haystack[start..<start + needle.count]) == needle { return start }
        }
        return nil
    }
}
