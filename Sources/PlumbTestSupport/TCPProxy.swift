import Foundation
import Synchronization

/// A TCP proxy on 127.0.0.1 for outage tests: it forwards to `upstream` until `blackhole()`, then holds every
/// connection open without passing a byte either way (a database that stopped answering, the worst kind of outage:
/// nothing fails, everything waits) and accepts new ones the same way, until `restore()`. `stop()` closes everything.
public final class TCPProxy: Sendable {
    public let port: Int
    private let listener: Int32
    private let upstreamPort: Int
    private let state = Mutex(State())

    struct State {
        var blackholed = false
        var stopped = false
        var sockets: Set<Int32> = []
    }

    public init(upstreamPort: Int) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 128) == 0 else {
            close(fd)
            throw POSIXError(.EADDRINUSE)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        self.upstreamPort = upstreamPort
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    /// Stops passing bytes; connections stay open.
    public func blackhole() { state.withLock { $0.blackholed = true } }
    /// Passes bytes again.
    public func restore() { state.withLock { $0.blackholed = false } }

    /// Closes the listener and every connection.
    public func stop() {
        let sockets = state.withLock { state -> Set<Int32> in
            state.stopped = true
            defer { state.sockets = [] }
            return state.sockets
        }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        for socket in sockets {
            shutdown(socket, Int32(SHUT_RDWR))
        }
    }

    private func acceptLoop() {
        while !state.withLock({ $0.stopped }) {
            let client = accept(listener, nil, nil)
            guard client >= 0 else { return }
            guard let upstream = connectLoopback(port: upstreamPort) else {
                close(client)
                continue
            }
            state.withLock {
                $0.sockets.insert(client)
                $0.sockets.insert(upstream)
            }
            Thread { [self] in pump(client, upstream) }.start()
        }
    }

    private func pump(_ a: Int32, _ b: Int32) {
        defer {
            close(a)
            close(b)
            state.withLock {
                $0.sockets.remove(a)
                $0.sockets.remove(b)
            }
        }
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var fds = [pollfd(fd: a, events: Int16(POLLIN), revents: 0), pollfd(fd: b, events: Int16(POLLIN), revents: 0)]
        while true {
            let (stopped, blackholed) = state.withLock { ($0.stopped, $0.blackholed) }
            if stopped { return }
            if blackholed {
                usleep(20_000)
                continue
            }
            guard poll(&fds, 2, 100) >= 0 else { return }
            for (index, entry) in fds.enumerated() where entry.revents != 0 {
                let from = entry.fd
                let to = index == 0 ? b : a
                let count = read(from, &buffer, buffer.count)
                guard count > 0 else { return }
                var sent = 0
                while sent < count {
                    let written = buffer.withUnsafeBytes { write(to, $0.baseAddress! + sent, count - sent) }
                    guard written > 0 else { return }
                    sent += written
                }
            }
        }
    }
}

/// A TCP connection to 127.0.0.1:`port`, or nil when it is refused.
public func connectLoopback(port: Int) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        close(fd)
        return nil
    }
    return fd
}
