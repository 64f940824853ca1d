import CPlumbSys
import Glibc

/// IPv4 text helpers for the I/O layer (the model has its own `IPv4Address`; this module does not depend on Core).
public enum IPv4Text {
    /// Parses dotted-quad text into a host-order address; nil when it is not exactly four decimal octets.
    public static func parse(_ text: some StringProtocol) -> UInt32? {
        var value: UInt32 = 0
        var octets = 0
        var current: UInt32 = 0
        var digits = 0
        for byte in text.utf8 {
            if byte == UInt8(ascii: ".") {
                guard digits > 0, octets < 3 else { return nil }
                value = value << 8 | current
                octets += 1
                current = 0
                digits = 0
            } else if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                current = current * 10 + UInt32(byte - UInt8(ascii: "0"))
                digits += 1
                guard digits <= 3, current <= 255 else { return nil }
            } else {
                return nil
            }
        }
        guard digits > 0, octets == 3 else { return nil }
        return value << 8 | current
    }

    /// Formats a host-order address.
    public static func format(_ address: UInt32) -> String {
        "\(address >> 24).\(address >> 16 & 0xff).\(address >> 8 & 0xff).\(address & 0xff)"
    }

    /// Formats a MAC address as lowercase, colon-separated hex.
    public static func formatMAC(_ bytes: [UInt8]) -> String {
        bytes.map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined(separator: ":")
    }
}

/// Resolves a host (IPv4 text or a name) to a host-order IPv4 address. Names go through getaddrinfo on the blocking
/// pool; the wait ends after `timeoutMs` or when the task is cancelled (getaddrinfo itself cannot be interrupted, so
/// its thread finishes on its own).
public func resolveIPv4(_ host: String, timeoutMs: Int = 5_000) async -> UInt32? {
    if let address = IPv4Text.parse(host) { return address }
    return await withTaskGroup(of: UInt32??.self) { group in
        group.addTask { .some(await BlockingPool.shared.run { systemResolve(host).first }) }
        group.addTask {
            try? await Task.sleep(for: .milliseconds(timeoutMs))
            return .none
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first ?? nil
    }
}

/// getaddrinfo for IPv4 addresses, blocking. Returns the distinct addresses in the resolver's order.
func systemResolve(_ host: String) -> [UInt32] {
    var hints = addrinfo()
    hints.ai_family = AF_INET
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var list: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(host, nil, &hints, &list) == 0, let first = list else { return [] }
    defer { freeaddrinfo(first) }
    var addresses: [UInt32] = []
    var item: UnsafeMutablePointer<addrinfo>? = first
    while let current = item {
        if let raw = current.pointee.ai_addr, current.pointee.ai_family == AF_INET {
            let address = raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { plumb_sockaddr_address($0) }
            if !addresses.contains(address) { addresses.append(address) }
        }
        item = current.pointee.ai_next
    }
    return addresses
}
