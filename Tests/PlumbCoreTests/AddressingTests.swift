import PlumbCore
import PropertyBased
import Testing

@Suite("Addresses, blocks and prefix tables")
struct AddressingTests {
    @Test(arguments: [
        ("10.0.0.18/18", "10.0.0.0/18", false), ("10.0.1.0/24", "10.0.1.0/24", true), ("0.0.0.0/0", "0.0.0.0/0", true),
        ("192.168.1.7", "192.168.1.7/32", true), ("255.255.255.255/1", "128.0.0.0/1", false),
    ])
    func canonicalises(text: String, canonical: String, wasCanonical: Bool) throws {
        let block = try #require(CIDR(text))
        #expect(block.description == canonical)
        #expect(block.wasCanonical == wasCanonical)
    }

    @Test(arguments: [
        "", "10.0.0.0/33", "10.0.0/24", "10.0.0.256/24", "10.0.0.0/", "10.0.0.0/-1", "a.b.c.d/8", "10.0.0.0/24/1", "010.0.0.1", "10..0.1",
        " 10.0.0.1",
    ])
    func rejectsMalformed(text: String) {
        #expect(CIDR(text) == nil)
    }

    @Test func portRanges() {
        #expect(PortRange("1024-65535") == PortRange(1024, 65535))
        #expect(PortRange("all") == .all)
        #expect(PortRange("80") == PortRange(80))
        #expect(PortRange("90-80") == nil)
        #expect(PortRange("70000") == nil)
        var set = PortSet(PortRange(0, 100))
        let removed = set.subtract(PortRange(10, 20))
        #expect(removed == [PortRange(10, 20)])
        #expect(set.ranges == [PortRange(0, 9), PortRange(21, 100)])
    }

    @Test("property: parse(description) round-trips and a block contains exactly the addresses under its mask")
    func cidrProperties() async {
        await propertyCheck(input: Gen.uint32(), Gen.int(in: 0...32), Gen.uint32()) { raw, length, probe in
            let block = CIDR(IPv4Address(raw), prefixLength: length)
            #expect(CIDR(block.description) == block)
            #expect(block.contains(IPv4Address(raw)))
            let mask: UInt32 = length == 0 ? 0 : UInt32.max << UInt32(32 - length)
            #expect(block.contains(IPv4Address(probe)) == (probe & mask == raw & mask))
            #expect(block.lastAddress.value == block.network.value | ~mask)
        }
    }

    @Test("property: overlap is symmetric and equals containment one way or the other")
    func overlapProperties() async {
        await propertyCheck(input: Gen.uint32(), Gen.int(in: 0...32), Gen.uint32(), Gen.int(in: 0...32)) { a, la, b, lb in
            let x = CIDR(IPv4Address(a), prefixLength: la)
            let y = CIDR(IPv4Address(b), prefixLength: lb)
            #expect(x.overlaps(y) == y.overlaps(x))
            #expect(x.overlaps(y) == (x.contains(y) || y.contains(x)))
        }
    }

    @Test("property: the prefix table returns the longest containing block, as a linear scan does")
    func longestPrefixMatch() async {
        await propertyCheck(count: 200, input: Gen.uint32().array(of: 1...20), Gen.int(in: 0...32).array(of: 20), Gen.uint32()) {
            addresses, lengths, probe in
            var table = PrefixTable<Int>()
            var blocks: [CIDR] = []
            for (index, raw) in addresses.enumerated() {
                // Cluster some blocks near the probe so that matches happen.
                let base = index % 2 == 0 ? raw : (probe & 0xFFFF_0000) | (raw & 0xFFFF)
                let block = CIDR(IPv4Address(base), prefixLength: lengths[index])
                table.insert(block, index)
                blocks.append(block)
            }
            let best = blocks.filter { $0.contains(IPv4Address(probe)) }.max { $0.prefixLength < $1.prefixLength }
            #expect(table.lookup(IPv4Address(probe))?.block == best)
        }
    }
}

@Suite("Address text")
struct AddressTextTests {
    @Test("property: an address prints as dotted quad and parses back")
    func roundTrip() async {
        await propertyCheck(input: Gen.uint32()) { raw in
            let address = IPv4Address(raw)
            let octets = [raw >> 24, raw >> 16 & 0xFF, raw >> 8 & 0xFF, raw & 0xFF].map(String.init).joined(separator: ".")
            #expect(address.description == octets)
            #expect(IPv4Address(address.description) == address)
        }
    }
}
