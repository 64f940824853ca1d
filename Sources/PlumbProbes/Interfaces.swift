import CPlumbSys
import Synchronization

/// One kernel network interface.
public struct LocalInterface: Sendable, Hashable {
    /// Interface index.
    public var index: Int
    /// Kernel name (`eth0`, `lo`).
    public var name: String
    /// MAC address, lowercase and colon separated; `00:00:00:00:00:00` for loopback.
    public var mac: String?
    /// Whether this is the loopback interface.
    public var isLoopback: Bool
    /// Whether the interface is up.
    public var isUp: Bool
    /// IPv4 addresses with prefix lengths, host order.
    public var addresses: [(address: UInt32, prefixLength: Int)]

    public static func == (lhs: LocalInterface, rhs: LocalInterface) -> Bool {
        lhs.index == rhs.index && lhs.name == rhs.name && lhs.mac == rhs.mac && lhs.isLoopback == rhs.isLoopback
            && lhs.isUp == rhs.isUp && lhs.addresses.map(\.address) == rhs.addresses.map(\.address)
            && lhs.addresses.map(\.prefixLength) == rhs.addresses.map(\.prefixLength)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(index)
        hasher.combine(name)
        hasher.combine(mac)
    }
}

/// Reads the kernel's interfaces (getifaddrs).
public enum LocalInterfaces {
    /// Every interface with its MAC and IPv4 addresses.
    public static func list() -> [LocalInterface] {
        var buffer = [plumb_interface](repeating: plumb_interface(), count: 128)
        let count = Int(plumb_list_interfaces(&buffer, Int32(buffer.count)))
        guard count > 0 else { return [] }
        return buffer.prefix(count).map { entry in
            var copy = entry
            let name = withUnsafeBytes(of: &copy.name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            let mac = withUnsafeBytes(of: copy.mac) { Array($0) }
            let addresses = withUnsafeBytes(of: copy.addresses) { raw in
                Array(raw.bindMemory(to: UInt32.self).prefix(Int(copy.address_count)))
            }
            let prefixes = withUnsafeBytes(of: copy.prefix_lengths) { Array($0.prefix(Int(copy.address_count))) }
            return LocalInterface(
                index: Int(copy.index), name: name, mac: copy.has_mac != 0 ? IPv4Text.formatMAC(mac) : nil,
                isLoopback: copy.is_loopback != 0, isUp: copy.is_up != 0,
                addresses: zip(addresses, prefixes).map { (address: $0, prefixLength: Int($1)) })
        }
    }
}

/// A cached index → interface table for the responder, refreshed when an unknown index shows up (an ENI was attached
/// or moved in) or the cache is older than `maximumAge`.
final class InterfaceCache: Sendable {
    private struct State {
        var byIndex: [Int: LocalInterface] = [:]
        var byAddress: [UInt32: LocalInterface] = [:]
        var readAt: UInt64 = 0
    }

    private let state = Mutex(State())
    private let maximumAgeNanoseconds: UInt64

    init(maximumAgeSeconds: Double = 5) {
        maximumAgeNanoseconds = UInt64(maximumAgeSeconds * 1e9)
    }

    func interface(index: Int) -> LocalInterface? {
        lookup { $0.byIndex[index] }
    }

    /// The interface holding `address`, else the one whose prefix contains it (127.0.0.2 is answered by lo, which
    /// holds 127.0.0.1/8). TCP has no IP_PKTINFO, so the responder finds the interface this way.
    func interface(address: UInt32) -> LocalInterface? {
        lookup { state in
            if let exact = state.byAddress[address] { return exact }
            return state.byIndex.values.sorted { $0.index < $1.index }.first { candidate in
                candidate.addresses.contains { entry in
                    let mask: UInt32 = entry.prefixLength == 0 ? 0 : ~UInt32(0) << UInt32(32 - entry.prefixLength)
                    return entry.address & mask == address & mask
                }
            }
        }
    }

    private func lookup(_ find: (State) -> LocalInterface?) -> LocalInterface? {
        let now = monotonicNanoseconds()
        if let cached = state.withLock({ state -> LocalInterface? in
            guard now &- state.readAt < maximumAgeNanoseconds else { return nil }
            return find(state)
        }) {
            return cached
        }
        let list = LocalInterfaces.list()
        var fresh = State(readAt: now)
        for interface in list {
            fresh.byIndex[interface.index] = interface
            for entry in interface.addresses where fresh.byAddress[entry.address] == nil { fresh.byAddress[entry.address] = interface }
        }
        state.withLock { $0 = fresh }
        return find(fresh)
    }
}
