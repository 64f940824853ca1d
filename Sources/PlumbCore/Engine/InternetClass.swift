/// A set of internet addresses that the model cannot tell apart: every address of the class lies inside
/// exactly the same blocks the model names (security group and NACL rules, routes, prefix lists, endpoints).
///
/// The classes of a model partition the internet: IPv4 space outside the VPC, its peered blocks, the
/// addresses its own interfaces hold and the blocks that are never routed on the internet
/// (``nonInternetBlocks``). One address per class (the ``representative``) stands for the whole class.
public struct InternetClass: Sendable, Hashable, CustomStringConvertible {
    /// The named blocks holding every address of the class, most specific first; empty for the rest of the
    /// internet (the addresses no block but `0.0.0.0/0` names).
    public let cidrs: [CIDR]
    /// The addresses of the class, as inclusive ranges of address values: ascending, disjoint, not adjacent.
    public let ranges: [ClosedRange<UInt32>]
    /// The address evaluated for the whole class.
    public let representative: IPv4Address
    /// How the class reads: `198.51.100.0/24`, `198.51.0.0/16 outside 198.51.100.0/24`, or `the rest of the internet`.
    public let description: String

    /// True for the class of addresses that no block of the model names (other than `0.0.0.0/0`).
    public var isRest: Bool { cidrs.isEmpty }

    /// The number of addresses in the class.
    public var addressCount: UInt64 { ranges.reduce(0) { $0 + UInt64($1.upperBound - $1.lowerBound) + 1 } }

    /// True when `address` is in the class.
    public func contains(_ address: IPv4Address) -> Bool {
        var low = 0
        var high = ranges.count
        while low < high {
            let middle = (low + high) / 2
            if ranges[middle].upperBound < address.value {
                low = middle + 1
            } else {
                high = middle
            }
        }
        return low < ranges.count && ranges[low].contains(address.value)
    }

    /// Blocks whose addresses never arrive from, or leave to, the internet: "this network" (0/8), RFC 1918,
    /// shared address space (100.64/10), loopback, link-local, and multicast and reserved space (224/3).
    public static let nonInternetBlocks: [CIDR] = [
        CIDR(IPv4Address(0, 0, 0, 0), prefixLength: 8),
        CIDR(IPv4Address(10, 0, 0, 0), prefixLength: 8),
        CIDR(IPv4Address(100, 64, 0, 0), prefixLength: 10),
        CIDR(IPv4Address(127, 0, 0, 0), prefixLength: 8),
        CIDR(IPv4Address(169, 254, 0, 0), prefixLength: 16),
        CIDR(IPv4Address(172, 16, 0, 0), prefixLength: 12),
        CIDR(IPv4Address(192, 168, 0, 0), prefixLength: 16),
        CIDR(IPv4Address(224, 0, 0, 0), prefixLength: 3),
    ]

    /// Addresses preferred as representatives, in order, when a class holds them: documentation addresses
    /// (198.51.100.1 stood for the whole internet before classes), so that output stays readable and stable.
    public static let preferredRepresentatives = [IPv4Address(198, 51, 100, 1), IPv4Address(203, 0, 113, 1), IPv4Address(192, 0, 2, 1)]

    /// Partitions the addresses outside `excluded` into classes by the blocks of `named` that hold them.
    ///
    /// Boundaries of the named and excluded blocks cut the address space into elementary intervals; intervals
    /// inside exactly the same named blocks form one class. `0.0.0.0/0` names nothing (it holds every address).
    /// Cost: O(b log b) for b distinct blocks, plus the output. Classes come in order of their first address.
    public static func partition(named: some Sequence<CIDR>, excluded: some Sequence<ClosedRange<UInt32>>) -> [InternetClass] {
        // Named blocks are nested or disjoint, so at most 32 hold any one address: the active set stays small.
        let blocks = Set(named).filter { $0.prefixLength > 0 }.sorted { ($0.network.value, $0.prefixLength) < ($1.network.value, $1.prefixLength) }
        var starts: [(at: UInt64, block: Int)] = []
        var ends: [(at: UInt64, block: Int)] = []
        for (index, block) in blocks.enumerated() {
            starts.append((UInt64(block.network.value), index))
            ends.append((UInt64(block.lastAddress.value) + 1, index))
        }
        var excludedEdges: [(at: UInt64, delta: Int)] = []
        for range in excluded {
            excludedEdges.append((UInt64(range.lowerBound), 1))
            excludedEdges.append((UInt64(range.upperBound) + 1, -1))
        }
        starts.sort { $0.at < $1.at }
        ends.sort { $0.at < $1.at }
        excludedEdges.sort { $0.at < $1.at }
        var points = Set<UInt64>([0, 1 << 32])
        for edge in starts { points.insert(edge.at) }
        for edge in ends { points.insert(edge.at) }
        for edge in excludedEdges { points.insert(edge.at) }
        let cuts = points.sorted()

        var active: [Int] = []
        var excludedDepth = 0
        var (nextStart, nextEnd, nextExcluded) = (0, 0, 0)
        var classIndex: [[Int]: Int] = [:]
        var members: [(key: [Int], ranges: [ClosedRange<UInt32>])] = []
        for (position, cut) in cuts.dropLast().enumerated() {
            while nextEnd < ends.count, ends[nextEnd].at == cut {
                active.removeAll { $0 == ends[nextEnd].block }
                nextEnd += 1
            }
            while nextStart < starts.count, starts[nextStart].at == cut {
                active.append(starts[nextStart].block)
                nextStart += 1
            }
            while nextExcluded < excludedEdges.count, excludedEdges[nextExcluded].at == cut {
                excludedDepth += excludedEdges[nextExcluded].delta
                nextExcluded += 1
            }
            guard excludedDepth == 0 else { continue }
            let range = UInt32(cut)...UInt32(cuts[position + 1] - 1)
            // Most specific first: a longer prefix is inside the shorter ones that also hold the interval.
            let key = active.sorted { blocks[$0].prefixLength > blocks[$1].prefixLength }
            if let index = classIndex[key] {
                if let last = members[index].ranges.last, last.upperBound &+ 1 == range.lowerBound, last.upperBound != .max {
                    members[index].ranges[members[index].ranges.count - 1] = last.lowerBound...range.upperBound
                } else {
                    members[index].ranges.append(range)
                }
            } else {
                classIndex[key] = members.count
                members.append((key, [range]))
            }
        }

        // Blocks that hold some internet address, for "outside …" in descriptions.
        var visible = Set<Int>()
        for member in members { visible.formUnion(member.key) }
        let visibleBlocks = visible.sorted()
        return members.map { member in
            InternetClass(
                cidrs: member.key.map { blocks[$0] }, ranges: member.ranges, representative: representative(of: member.ranges),
                description: describe(member.key, blocks: blocks, visible: visibleBlocks))
        }
    }

    /// A preferred documentation address when the class holds one, else a host address of its first range.
    private static func representative(of ranges: [ClosedRange<UInt32>]) -> IPv4Address {
        for address in preferredRepresentatives where ranges.contains(where: { $0.contains(address.value) }) { return address }
        let first = ranges[0]
        // Skip what reads as a network address when the range has room for a host.
        return IPv4Address(first.upperBound - first.lowerBound >= 2 ? first.lowerBound + 1 : first.lowerBound)
    }

    /// `198.51.0.0/16 outside 198.51.100.0/24 and 198.51.101.0/24`: the innermost block, less the widest named
    /// blocks inside it that hold internet addresses.
    private static func describe(_ key: [Int], blocks: [CIDR], visible: [Int]) -> String {
        guard let innermost = key.first else { return "the rest of the internet" }
        let outer = blocks[innermost]
        // `visible` is sorted like `blocks` (network, then prefix length): the blocks inside `outer` follow it.
        var holes: [CIDR] = []
        var low = 0
        var high = visible.count
        while low < high {
            let middle = (low + high) / 2
            if visible[middle] <= innermost { low = middle + 1 } else { high = middle }
        }
        var position = low
        while position < visible.count, outer.contains(blocks[visible[position]].network) {
            let block = blocks[visible[position]]
            if holes.last.map({ !$0.contains(block) }) ?? true { holes.append(block) }
            position += 1
        }
        guard !holes.isEmpty else { return outer.description }
        let shown = holes.prefix(3).map(\.description)
        let list = holes.count > 3 ? shown.joined(separator: ", ") + " and \(holes.count - 3) more" : joinedWithAnd(shown)
        return "\(outer) outside \(list)"
    }
}

/// `a`, `a and b`, `a, b and c`.
func joinedWithAnd(_ items: [String]) -> String {
    guard items.count > 1 else { return items.first ?? "" }
    return items.dropLast().joined(separator: ", ") + " and " + items.last!
}
