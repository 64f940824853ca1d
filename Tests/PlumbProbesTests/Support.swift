import CPlumbSys
import Glibc
import PlumbProbes
import PlumbWire

/// A UDP port on 127.0.0.1 that nothing listens on (bound, read, closed).
func closedUDPPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    var address = plumb_sockaddr_in(0x7f00_0001, 0)
    _ = plumb_bind_in(fd, &address)
    var local = sockaddr_in()
    _ = plumb_getsockname_in(fd, &local)
    close(fd)
    return Int(plumb_sockaddr_port(&local))
}

/// A UDP server on its own thread that answers each datagram with `transform(datagram)` (nil: no answer).
final class UDPServer: Sendable {
    let port: Int
    private let fd: Int32

    init(address: UInt32 = 0x7f00_0001, transform: @escaping @Sendable ([UInt8]) -> [UInt8]?) {
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var bind = plumb_sockaddr_in(address, 0)
        _ = plumb_bind_in(fd, &bind)
        var local = sockaddr_in()
        _ = plumb_getsockname_in(fd, &local)
        port = Int(plumb_sockaddr_port(&local))
        let fd = self.fd
        OSThread(name: "test-udp") {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                var from = sockaddr_in()
                let count = buffer.withUnsafeMutableBytes { plumb_recvfrom_in(fd, $0.baseAddress, $0.count, &from) }
                if count <= 0 { return }
                guard let reply = transform(Array(buffer[0..<count])) else { continue }
                _ = reply.withUnsafeBytes { raw in withUnsafePointer(to: &from) { plumb_sendto_in(fd, raw.baseAddress, raw.count, $0) } }
            }
        }.start()
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}

/// Sends one datagram from a fresh socket and waits up to `timeoutMs` for an answer.
func exchange(_ bytes: [UInt8], to port: Int, address: UInt32 = 0x7f00_0001, timeoutMs: Int32 = 300) -> [UInt8]? {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    defer { close(fd) }
    _ = plumb_set_receive_timeout_ms(fd, timeoutMs)
    var target = plumb_sockaddr_in(address, UInt16(port))
    _ = bytes.withUnsafeBytes { plumb_sendto_in(fd, $0.baseAddress, $0.count, &target) }
    var buffer = [UInt8](repeating: 0, count: 4096)
    let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
    return count > 0 ? Array(buffer[0..<count]) : nil
}
