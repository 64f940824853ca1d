import PlumbCore
import PlumbDiagram
import Testing

@Suite("the VPC diagram")
struct DiagramTests {
    /// A VPC of `count` instances spread over two zones' private subnets, a bastion and a NAT gateway in public ones,
    /// an internal load balancer, two endpoints; instance `i-000` has a second, static-IP ENI.
    static func big(_ count: Int) -> Topology {
        var topology = Fixture.base()
        topology.subnets.append(Subnet(id: "subnet-pub-b", cidr: Fixture.cidr("10.0.3.0/24"), zone: "b", routeTable: "rtb-pub"))
        topology.instances = [Instance(id: "i-bastion", roles: ["bastion"], interfaces: [Fixture.eni("eni-bastion", "subnet-pub", "10.0.0.20")])]
        for index in 0..<count {
            let subnet = index % 2 == 0 ? "subnet-priv" : "subnet-far"
            let third = index % 2 == 0 ? 1 : 2
            var interfaces = [Fixture.eni("eni-\(index)", subnet, "10.0.\(third).\(10 + index / 2)", device: 0)]
            if index == 0 { interfaces.append(Fixture.eni("eni-static", subnet, "10.0.1.250", device: 1)) }
            topology.instances.append(Instance(id: "i-" + String(String(index + 1000).dropFirst()), interfaces: interfaces))
        }
        topology.loadBalancers = [
            LoadBalancer(
                id: "lb-app", scheme: "internal", subnets: ["subnet-priv", "subnet-far"], listeners: [Listener(port: 80, targetPort: 8080)],
                targets: ["i-000", "i-001"])
        ]
        topology.endpoints = [
            Endpoint(id: "s3", kind: .s3, url: "https://s3.example/x", addresses: [Fixture.cidr("203.0.113.100/32")], port: 443),
            Endpoint(id: "sqs", kind: .sqs, url: "https://sqs.example/x", addresses: [Fixture.cidr("203.0.113.101/32")], port: 443),
        ]
        return topology
    }

    @Test("the same model gives the same drawing, whatever the order of its lists")
    func stable() {
        let topology = Self.big(9)
        var shuffled = topology
        shuffled.instances.reverse()
        shuffled.subnets.reverse()
        shuffled.endpoints.reverse()
        let first = SVGRenderer.render(DiagramLayout().layout(topology))
        #expect(first == SVGRenderer.render(DiagramLayout().layout(topology)))
        #expect(first == SVGRenderer.render(DiagramLayout().layout(shuffled)))
    }

    @Test("every subnet, instance, NAT, ENI, load balancer and endpoint is drawn with its id; public subnets are marked")
    func everythingDrawn() {
        let topology = Self.big(6)
        let diagram = DiagramLayout().layout(topology)
        let svg = SVGRenderer.render(diagram)
        let ids =
            topology.subnets.map(\.id) + topology.instances.map(\.id) + topology.nats.map(\.id) + topology.loadBalancers.map(\.id)
            + topology.endpoints.map(\.id) + topology.instances.flatMap { $0.interfaces.map(\.id) } + ["igw-t", "rtb-pub", "rtb-priv"]
        for id in ids { #expect(svg.contains("data-component=\"\(id)\"") || svg.contains("data-component=\"\(id) "), "\(id) missing") }
        let kinds = Dictionary(diagram.boxes.filter { $0.kind == .subnet }.map { ($0.components[0], $0.tags) }, uniquingKeysWith: { a, _ in a })
        #expect(kinds["subnet-pub"] == ["public"])
        #expect(kinds["subnet-pub-b"] == ["public"])
        #expect(kinds["subnet-priv"] == ["private"])
        // The static-IP ENI is marked; the bastion is tagged; the NAT gateway shows its Elastic IP.
        #expect(svg.contains("class=\"ref static\" data-component=\"eni-static\""))
        #expect(diagram.boxes.first { $0.components == ["i-bastion"] }?.tags == ["bastion"])
        #expect(svg.contains("EIP 203.0.113.5"))
        // Paths: the private subnets' default route to the NAT, the NAT out through the gateway, the listener's targets.
        let edges = Set(diagram.edges.map { "\($0.kind.rawValue) \($0.from)>\($0.to)" })
        #expect(edges.isSuperset(of: ["route subnet-priv>nat-gw", "route subnet-pub>igw-t", "egress nat-gw>igw-t", "listener lb-app>i-000"]))
    }

    @Test("members stay inside their subnet and do not overlap, subnets inside the VPC, at 10 and at 200 instances")
    func geometry() {
        for count in [10, 200] {
            let diagram = DiagramLayout().layout(Self.big(count))
            let vpc = diagram.boxes.first { $0.kind == .vpc }!
            let subnets = diagram.boxes.filter { $0.kind == .subnet }
            let members = diagram.boxes.filter { [.instance, .nat, .collapsed].contains($0.kind) }
            func inside(_ a: Diagram.Box, _ b: Diagram.Box) -> Bool {
                a.x >= b.x && a.y >= b.y && a.x + a.width <= b.x + b.width + 0.01 && a.y + a.height <= b.y + b.height + 0.01
            }
            func overlap(_ a: Diagram.Box, _ b: Diagram.Box) -> Bool {
                a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height
            }
            for subnet in subnets { #expect(inside(subnet, vpc), "\(subnet.title) outside the VPC") }
            for member in members { #expect(subnets.contains { inside(member, $0) }, "\(member.title) outside every subnet (\(count))") }
            for (index, a) in members.enumerated() { for b in members[(index + 1)...] { #expect(!overlap(a, b), "\(a.title) overlaps \(b.title)") } }
            for (index, a) in subnets.enumerated() { for b in subnets[(index + 1)...] { #expect(!overlap(a, b)) } }
            // Readable at 200: large subnets collapse to one box of counts, so the drawing stays about the size of a screen.
            if count == 200 {
                let collapsed = diagram.boxes.filter { $0.kind == .collapsed }
                #expect(collapsed.count == 2)
                #expect(collapsed.flatMap { $0.members ?? [] }.count == 199)
                // The instance with a static-IP ENI stays visible.
                #expect(diagram.boxes.contains { $0.components == ["i-000"] })
                #expect(diagram.width < 2_400 && diagram.height < 1_600, "\(diagram.width)×\(diagram.height)")
            } else {
                #expect(diagram.boxes.filter { $0.kind == .collapsed }.isEmpty)
            }
        }
    }

    @Test("text is escaped")
    func escaping() {
        var topology = Fixture.base()
        topology.name = "a <b> & \"c\""
        topology.instances[0].name = "<script>"
        let svg = SVGRenderer.render(DiagramLayout().layout(topology))
        #expect(!svg.contains("<script>"))
        #expect(svg.contains("&lt;script&gt;"))
        #expect(svg.contains("a &lt;b&gt; &amp; &quot;c&quot;"))
    }
}
