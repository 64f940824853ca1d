import PlumbCore
import Testing

/// ENIs (ENI-1…4), load balancers (ELB-1…3), VPC endpoints (VPCE-1, VPCE-2) and peering (PCX-1).
@Suite("Interfaces, load balancers, endpoints, peering")
struct ServiceRuleTests {
    @Test("ENI-1 every private address of an interface reaches its owner")
    func eni1SecondaryAddresses() throws {
        var model = Fixture.base()
        model.instance("priv") { $0.interfaces[0].secondaryIps = [Fixture.ip("10.0.1.100")] }
        let explanation = try model.explain("pub", "10.0.1.100", 22)
        #expect(explanation.verdict == .allowed)
        #expect(explanation.destination == "priv (10.0.1.100)")
    }

    @Test("ENI-2 the primary interface is device index 0, whatever the listing order")
    func eni2Primary() throws {
        var model = Fixture.base()
        model.instance("priv") {
            $0.interfaces = [
                Fixture.eni("eni-extra", "subnet-priv", "10.0.1.40", device: 1), Fixture.eni("eni-priv", "subnet-priv", "10.0.1.10", device: 0),
            ]
        }
        #expect(try model.explain("pub", "priv", 22).destination == "priv (10.0.1.10)")
    }

    @Test("ENI-4 source/dest check is per interface: an appliance ENI forwards only with it off")
    func eni4SourceDestCheck() throws {
        var model = Fixture.base()
        model.instance("far") { $0.interfaces.append(Fixture.eni("eni-appliance", "subnet-far", "10.0.2.20", device: 1)) }
        model.routeTables[0].routes.append(Route(destination: Fixture.cidr("10.0.1.0/24"), target: "eni-appliance"))
        #expect(try model.explain("pub", "priv", 22).code == "ENI_SOURCE_DEST_CHECK_RESTRICTION")
        model.instance("far") { $0.interfaces[1].sourceDestCheck = false }
        let forwarded = try model.explain("pub", "priv", 22)
        #expect(forwarded.verdict == .allowed)
        #expect(forwarded.hops.contains { $0.rule == "10.0.1.0/24 -> eni-appliance" })
    }

    static func withBalancers(targetGroups: [String] = ["sg-open"], balancerEgress: [SecurityGroupRule]? = nil) -> Topology {
        var model = Fixture.base()
        model.securityGroups.append(
            SecurityGroup(id: "sg-lb", ingress: [SecurityGroupRule(protocol: .tcp, ports: PortRange(80), cidr: .any)], egress: balancerEgress))
        model.instance("priv") { $0.interfaces[0].securityGroups = targetGroups }
        model.loadBalancers = [
            LoadBalancer(
                id: "lb-in", scheme: "internal", subnets: ["subnet-priv", "subnet-far"], securityGroups: ["sg-lb"],
                listeners: [Listener(port: 80, targetPort: 8080)], targets: ["priv"]),
            LoadBalancer(
                id: "lb-out", scheme: "internet-facing", subnets: ["subnet-pub"],
                nodes: [LoadBalancerNode(subnet: "subnet-pub", privateIp: Fixture.ip("10.0.0.40"), publicIp: Fixture.ip("203.0.113.40"))],
                securityGroups: ["sg-lb"], listeners: [Listener(port: 80, targetPort: 8080)], targets: ["priv"]),
        ]
        return model
    }

    @Test("ELB-1 scheme: an internal balancer is not reachable from the internet; an internet-facing one is")
    func elb1Scheme() throws {
        let model = ServiceRuleTests.withBalancers()
        #expect(try model.explain("internet", "lb-in", 80).code == "IGW_PRIVATE_IP_ASSOCIATION_FOR_INGRESS")
        let outside = try model.explain("internet", "lb-out", 80)
        #expect(outside.verdict == .allowed)
        #expect(outside.hops.contains { $0.check == "listener" })
        #expect(try model.explain("far", "lb-in", 80).verdict == .allowed)
        var wideOpen = model
        wideOpen.securityGroups[wideOpen.securityGroups.count - 1].ingress = [SecurityGroupRule(protocol: .tcp, cidr: .any)]
        #expect(try wideOpen.explain("far", "lb-in", 81).code == "ELB_LISTENERS_MISMATCH")
        #expect(try model.explain("far", "lb-in", 81).blockedComponent == "sg-lb", "the balancer's group is checked before its listeners")
    }

    @Test("ELB-2 security groups: the balancer's own egress, and targets that reference the balancer's group")
    func elb2SecurityGroups() throws {
        let referencing = ServiceRuleTests.withBalancers(targetGroups: ["sg-target"])
        var model = referencing
        model.securityGroups.append(
            SecurityGroup(id: "sg-target", ingress: [SecurityGroupRule(protocol: .tcp, ports: PortRange(8080), securityGroup: "sg-lb")]))
        #expect(try model.explain("far", "lb-in", 80).verdict == .allowed)
        #expect(try model.explain("far", "priv", 8080).verdict == .blocked, "only the balancer may reach the target directly")

        let mute = ServiceRuleTests.withBalancers(balancerEgress: [SecurityGroupRule(protocol: .tcp, ports: PortRange(443), cidr: .any)])
        let explanation = try mute.explain("far", "lb-in", 80)
        #expect(explanation.blockedComponent == "sg-lb")
    }

    @Test("ELB-3 ephemeral ports: replies to the balancer use 1024-65535")
    func elb3Ephemeral() throws {
        var model = ServiceRuleTests.withBalancers()
        model.loadBalancers[0].subnets = ["subnet-far"]
        model.acl("acl-priv", subnet: "subnet-priv", ingress: allowAll, egress: [rule(100, .tcp, PortRange(32768, 65535), "0.0.0.0/0", .allow)])
        let explanation = try model.explain("far", "lb-in", 80)
        #expect(explanation.blockedBy?.direction == .return)
        #expect(explanation.blockedBy?.detail.contains("1024-32767") == true)
    }

    static func withGatewayEndpoint() -> Topology {
        var model = Fixture.base()
        model.prefixLists = [PrefixList(id: "pl-s3", name: "com.amazonaws.us-east-1.s3", cidrs: [Fixture.cidr("52.216.0.0/15")])]
        model.vpcEndpoints = [
            VPCEndpoint(id: "vpce-s3", type: "gateway", service: "com.amazonaws.us-east-1.s3", prefixList: "pl-s3", routeTables: ["rtb-priv"])
        ]
        model.routeTables[1].routes.append(Route(destinationPrefixList: "pl-s3", target: "vpce-s3"))
        model.endpoints = [Endpoint(id: "s3", kind: .s3, prefixList: "pl-s3")]
        return model
    }

    @Test("VPCE-1 gateway endpoints: routed by prefix list, no NAT, and SG egress may name the prefix list")
    func vpce1Gateway() throws {
        var model = ServiceRuleTests.withGatewayEndpoint()
        let explanation = try model.explain("priv", "s3", 443)
        #expect(explanation.verdict == .allowed)
        #expect(explanation.hops.contains { $0.component == "vpce-s3" })
        #expect(!explanation.hops.contains { $0.component == "nat-gw" })
        model.groups(
            of: "priv", [SecurityGroup(id: "sg-s3only", egress: [SecurityGroupRule(protocol: .tcp, ports: PortRange(443), prefixList: "pl-s3")])])
        #expect(try model.explain("priv", "s3", 443).verdict == .allowed)
        #expect(try model.explain("priv", "internet", 443).blockedComponent == "sg-s3only")
    }

    @Test("VPCE-2 gateway endpoints carry TCP and ICMP echo only")
    func vpce2Protocols() throws {
        let model = ServiceRuleTests.withGatewayEndpoint()
        #expect(try model.explain("priv", "s3", 53, .udp).code == "VPCE_GATEWAY_PROTOCOL_RESTRICTION")
        #expect(try model.explain("priv", "s3", 8, .icmp).verdict == .allowed)
    }

    static func withPeering(returnRoute: Bool = true) -> Topology {
        var model = Fixture.base()
        model.peerings = [Peering(id: "pcx-1", peerVpc: "vpc-peer", peerCidrs: [Fixture.cidr("172.16.0.0/16")])]
        if returnRoute { model.routeTables[1].routes.append(Route(destination: Fixture.cidr("172.16.0.0/16"), target: "pcx-1")) }
        model.routeTables[1].routes.append(Route(destination: Fixture.cidr("172.17.0.0/16"), target: "pcx-1"))
        return model
    }

    @Test("PCX-1 peering: only the peer's blocks, both sides need routes, blocks may not overlap")
    func pcx1Peering() throws {
        let model = ServiceRuleTests.withPeering()
        let out = try model.explain("priv", "172.16.5.5", 443)
        #expect(out.verdict == .allowed)
        #expect(out.hops.contains { $0.component == "pcx-1" })
        #expect(try model.explain("priv", "172.17.0.5", 443).code == "PCX_REQUIRES_ADDRESS_IN_VPC_CIDR")
        #expect(try model.explain("172.16.5.5", "priv", 22).verdict == .allowed)

        let oneWay = ServiceRuleTests.withPeering(returnRoute: false)
        let inbound = try oneWay.explain("172.16.5.5", "priv", 22)
        #expect(inbound.code == "NO_ROUTE_TO_DESTINATION")
        #expect(inbound.blockedBy?.direction == .return)

        var overlapping = Fixture.base()
        overlapping.peerings = [Peering(id: "pcx-2", peerCidrs: [Fixture.cidr("10.0.0.0/8")])]
        #expect(overlapping.diagnostics().contains { $0.code == "overlapping-cidr" })
    }
}
