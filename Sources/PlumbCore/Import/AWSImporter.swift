/// Builds a ``Topology`` from the JSON that `aws ec2 describe-* --output json` writes (already parsed into
/// ``DocumentNode`` trees). Pure: the I/O layer reads the files. Resource ids in the model are the AWS ids.
public struct AWSImporter {
    /// The describe calls the importer needs, by file name.
    public static let requiredFiles = [
        "describe-vpcs.json", "describe-subnets.json", "describe-route-tables.json", "describe-internet-gateways.json",
        "describe-nat-gateways.json", "describe-security-groups.json", "describe-network-acls.json", "describe-network-interfaces.json",
        "describe-instances.json", "describe-addresses.json", "describe-vpc-endpoints.json", "describe-prefix-lists.json",
    ]
    /// Files read when present.
    public static let optionalFiles = [
        "describe-vpc-peering-connections.json", "describe-load-balancers.json", "describe-target-groups.json", "describe-listeners.json",
        "describe-target-health.json",
    ]

    /// The outcome of an import.
    public struct Result: Sendable {
        /// The model, when the input was usable.
        public var topology: Topology?
        /// Problems (errors) and things left out (warnings).
        public var diagnostics: [Diagnostic]

        /// Creates a result.
        public init(topology: Topology?, diagnostics: [Diagnostic]) {
            self.topology = topology
            self.diagnostics = diagnostics
        }
    }

    private let documents: [String: DocumentNode]
    private var diagnostics: [Diagnostic] = []

    /// Imports from parsed documents keyed by file name (`describe-vpcs.json`); `vpc` picks one VPC when there are several.
    public static func run(documents: [String: DocumentNode], vpc: String? = nil) -> Result {
        var importer = AWSImporter(documents: documents)
        let topology = importer.build(vpc: vpc)
        return Result(topology: topology, diagnostics: importer.diagnostics)
    }

    private init(documents: [String: DocumentNode]) { self.documents = documents }

    // MARK: Reading helpers

    private mutating func error(_ node: DocumentNode, _ message: String) {
        diagnostics.append(Diagnostic(.error, at: node.location, code: "import", message))
    }

    private mutating func warning(_ node: DocumentNode, _ message: String) {
        diagnostics.append(Diagnostic(.warning, at: node.location, code: "import", message))
    }

    /// The top-level list `key` of a file, or nil when the file is absent (``build(vpc:)`` has already reported
    /// missing required files) or, with an error, when it is not the shape AWS writes.
    private mutating func list(_ file: String, _ key: String) -> [DocumentNode]? {
        guard let document = documents[file] else { return nil }
        guard case .mapping = document.value, let items = document[key]?.elements else {
            error(
                document,
                "expected a JSON object with a \"\(key)\" list, as `aws \(file.dropLast(5)) --output json` writes; found \(document.kindDescription)")
            return nil
        }
        return items
    }

    private func string(_ node: DocumentNode, _ key: String) -> String? {
        node[key]?.scalar
    }

    private mutating func required(_ node: DocumentNode, _ key: String, _ what: String) -> String? {
        guard let value = node[key]?.scalar, !value.isEmpty else {
            error(node, "\(what) has no \(key)")
            return nil
        }
        return value
    }

    private mutating func cidr(_ node: DocumentNode, _ key: String, _ what: String) -> CIDR? {
        guard let text = required(node, key, what) else { return nil }
        guard let block = CIDR(text) else {
            error(node[key]!, "\(what): \(key) '\(text)' is not an IPv4 CIDR block")
            return nil
        }
        return block
    }

    private mutating func address(_ node: DocumentNode?, _ what: String) -> IPv4Address? {
        guard let node, let text = node.scalar else { return nil }
        guard let value = IPv4Address(text) else {
            error(node, "\(what): '\(text)' is not an IPv4 address")
            return nil
        }
        return value
    }

    private func int(_ node: DocumentNode?) -> Int? { node?.scalar.flatMap { Int($0) } }
    private func bool(_ node: DocumentNode?) -> Bool? { node?.scalar.map { $0 == "true" } }

    private func tag(_ node: DocumentNode, _ key: String) -> String? {
        for tags in [node["Tags"], node["TagSet"]] {
            for entry in tags?.elements ?? [] where entry["Key"]?.scalar == key { return entry["Value"]?.scalar }
        }
        return nil
    }

    private func inVPC(_ node: DocumentNode, _ vpc: String) -> Bool { node["VpcId"]?.scalar == vpc }

    // MARK: Build

    private mutating func build(vpc requested: String?) -> Topology? {
        for file in AWSImporter.requiredFiles where documents[file] == nil {
            diagnostics.append(
                Diagnostic(
                    .error, at: SourceLocation(file: file, line: 1, column: 1), code: "import",
                    "missing: write it with `aws ec2 \(file.dropLast(5)) --output json > \(file)`"))
        }
        guard !diagnostics.hasErrors, let vpcs = list("describe-vpcs.json", "Vpcs") else { return nil }
        let candidates = vpcs.filter { requested == nil || $0["VpcId"]?.scalar == requested }
        let vpcNode: DocumentNode
        if candidates.count == 1 {
            vpcNode = candidates[0]
        } else if requested == nil, case let nonDefault = candidates.filter({ $0["IsDefault"]?.scalar != "true" }), nonDefault.count == 1 {
            vpcNode = nonDefault[0]
        } else {
            let ids = vpcs.compactMap { $0["VpcId"]?.scalar }.joined(separator: ", ")
            let message =
                requested.map { "VPC \($0) is not in this file (it has: \(ids.isEmpty ? "none" : ids))" }
                ?? "the file holds \(vpcs.count) VPCs (\(ids)); pick one with --vpc"
            error(documents["describe-vpcs.json"]!, message)
            return nil
        }
        guard let vpcId = required(vpcNode, "VpcId", "the VPC") else { return nil }
        var blocks: [CIDR] = []
        for association in vpcNode["CidrBlockAssociationSet"]?.elements ?? [] {
            let state = association["CidrBlockState"]?["State"]?.scalar ?? "associated"
            if state == "associated", let block = cidr(association, "CidrBlock", "VPC \(vpcId) block") { blocks.append(block) }
        }
        if blocks.isEmpty, let block = cidr(vpcNode, "CidrBlock", "VPC \(vpcId)") { blocks.append(block) }
        var topology = Topology(
            name: tag(vpcNode, "Name") ?? vpcId,
            vpc: VPC(id: vpcId, name: tag(vpcNode, "Name"), cidrBlocks: blocks, account: vpcNode["OwnerId"]?.scalar))

        for gateway in list("describe-internet-gateways.json", "InternetGateways") ?? [] {
            let attached = gateway["Attachments"]?.elements?.contains { $0["VpcId"]?.scalar == vpcId } ?? false
            if attached, let id = required(gateway, "InternetGatewayId", "an internet gateway") {
                topology.internetGateway = InternetGateway(id: id, name: tag(gateway, "Name"))
            }
        }
        for list in list("describe-prefix-lists.json", "PrefixLists") ?? [] {
            guard let id = required(list, "PrefixListId", "a prefix list") else { continue }
            let cidrs = (list["Cidrs"]?.elements ?? []).compactMap { $0.scalar.flatMap { CIDR($0) } }
            if cidrs.isEmpty { warning(list, "prefix list \(id) has no Cidrs; flows to its service cannot be matched (fill them in)") }
            topology.prefixLists.append(PrefixList(id: id, name: string(list, "PrefixListName"), cidrs: cidrs))
        }
        for subnet in list("describe-subnets.json", "Subnets") ?? [] where inVPC(subnet, vpcId) {
            guard let id = required(subnet, "SubnetId", "a subnet"), let block = cidr(subnet, "CidrBlock", "subnet \(id)") else { continue }
            topology.subnets.append(Subnet(id: id, name: tag(subnet, "Name"), cidr: block, zone: string(subnet, "AvailabilityZone")))
        }
        importNATs(&topology, vpcId: vpcId)
        importSecurityGroups(&topology, vpcId: vpcId)
        importNetworkACLs(&topology, vpcId: vpcId)
        importInstances(&topology, vpcId: vpcId)
        importEndpointsAndPeerings(&topology, vpcId: vpcId)
        importRouteTables(&topology, vpcId: vpcId)
        importLoadBalancers(&topology, vpcId: vpcId)
        return diagnostics.hasErrors ? nil : topology
    }

    private mutating func importNATs(_ topology: inout Topology, vpcId: String) {
        for gateway in list("describe-nat-gateways.json", "NatGateways") ?? [] where inVPC(gateway, vpcId) {
            guard let id = required(gateway, "NatGatewayId", "a NAT gateway") else { continue }
            let state = string(gateway, "State") ?? "available"
            if state == "deleted" || state == "deleting" || state == "failed" {
                warning(gateway, "NAT gateway \(id) is \(state); left out, so routes to it become blackholes")
                continue
            }
            let addresses = gateway["NatGatewayAddresses"]?.elements ?? []
            let primary = addresses.first { $0["IsPrimary"]?.scalar == "true" } ?? addresses.first
            let connectivity = string(gateway, "ConnectivityType")?.lowercased() ?? "public"
            topology.nats.append(
                NAT(
                    id: id, name: tag(gateway, "Name"), kind: .gateway, subnet: string(gateway, "SubnetId"),
                    privateIp: address(primary?["PrivateIp"], "NAT gateway \(id) PrivateIp"), connectivity: connectivity,
                    elasticIp: connectivity == "private" ? nil : address(primary?["PublicIp"], "NAT gateway \(id) PublicIp")))
        }
    }

    private mutating func ruleProtocol(_ text: String?, _ node: DocumentNode) -> IPProtocol? {
        guard let text, let value = IPProtocol(text) else {
            error(node, "protocol '\(text ?? "")' is not tcp, udp, icmp, -1 or a protocol number")
            return nil
        }
        return value
    }

    private mutating func importSecurityGroups(_ topology: inout Topology, vpcId: String) {
        for group in list("describe-security-groups.json", "SecurityGroups") ?? [] where inVPC(group, vpcId) {
            guard let id = required(group, "GroupId", "a security group") else { continue }
            func rules(_ key: String) -> [SecurityGroupRule] {
                var out: [SecurityGroupRule] = []
                for permission in group[key]?.elements ?? [] {
                    guard let proto = ruleProtocol(permission["IpProtocol"]?.scalar, permission) else { continue }
                    var ports: PortRange?
                    var icmpCode: Int?
                    let from = int(permission["FromPort"]) ?? -1
                    let to = int(permission["ToPort"]) ?? -1
                    if proto == .icmp {
                        ports = from == -1 ? nil : PortRange(from)
                        icmpCode = to == -1 ? nil : to
                    } else if proto.hasPorts, from != -1 {
                        guard (0...65535).contains(from), (from...65535).contains(to) else {
                            error(permission, "security group \(id): port range \(from)-\(to) is not valid")
                            continue
                        }
                        ports = from == 0 && to == 65535 ? nil : PortRange(from, to)
                    }
                    for range in permission["IpRanges"]?.elements ?? [] {
                        if let block = cidr(range, "CidrIp", "security group \(id) rule") {
                            out.append(
                                SecurityGroupRule(
                                    protocol: proto, ports: ports, icmpCode: icmpCode, cidr: block, description: string(range, "Description")))
                        }
                    }
                    for pair in permission["UserIdGroupPairs"]?.elements ?? [] {
                        if let peer = required(pair, "GroupId", "security group \(id) rule") {
                            out.append(
                                SecurityGroupRule(
                                    protocol: proto, ports: ports, icmpCode: icmpCode, securityGroup: peer, description: string(pair, "Description")))
                        }
                    }
                    for list in permission["PrefixListIds"]?.elements ?? [] {
                        if let peer = required(list, "PrefixListId", "security group \(id) rule") {
                            out.append(
                                SecurityGroupRule(
                                    protocol: proto, ports: ports, icmpCode: icmpCode, prefixList: peer, description: string(list, "Description")))
                        }
                    }
                }
                return out
            }
            topology.securityGroups.append(
                SecurityGroup(
                    id: id, name: string(group, "GroupName"), description: string(group, "Description"), ingress: rules("IpPermissions"),
                    egress: rules("IpPermissionsEgress")))
        }
    }

    private mutating func importNetworkACLs(_ topology: inout Topology, vpcId: String) {
        for acl in list("describe-network-acls.json", "NetworkAcls") ?? [] where inVPC(acl, vpcId) {
            guard let id = required(acl, "NetworkAclId", "a network ACL") else { continue }
            var ingress: [NetworkACLRule] = []
            var egress: [NetworkACLRule] = []
            for entry in acl["Entries"]?.elements ?? [] {
                guard let number = int(entry["RuleNumber"]) else {
                    error(entry, "network ACL \(id): entry has no RuleNumber")
                    continue
                }
                // 32767 is the implicit final deny (NACL-3); IPv6 entries are not modelled (NACL-7).
                if number >= 32767 || entry["Ipv6CidrBlock"] != nil { continue }
                guard let proto = ruleProtocol(entry["Protocol"]?.scalar, entry),
                    let block = cidr(entry, "CidrBlock", "network ACL \(id) rule \(number)")
                else { continue }
                var ports: PortRange?
                var icmpCode: Int?
                if proto == .icmp, let typeCode = entry["IcmpTypeCode"] {
                    let type = int(typeCode["Type"]) ?? -1
                    ports = type == -1 ? nil : PortRange(type)
                    let code = int(typeCode["Code"]) ?? -1
                    icmpCode = code == -1 ? nil : code
                } else if proto == .tcp || proto == .udp, let range = entry["PortRange"], let from = int(range["From"]), let to = int(range["To"]) {
                    ports = (0...65535).contains(from) && (from...65535).contains(to) ? PortRange(from, to) : nil
                }
                let rule = NetworkACLRule(
                    rule: number, protocol: proto, ports: ports, icmpCode: icmpCode, cidr: block,
                    action: entry["RuleAction"]?.scalar == "allow" ? .allow : .deny)
                if bool(entry["Egress"]) == true { egress.append(rule) } else { ingress.append(rule) }
            }
            let subnets = (acl["Associations"]?.elements ?? []).compactMap { $0["SubnetId"]?.scalar }
            topology.networkAcls.append(
                NetworkACL(
                    id: id, name: tag(acl, "Name"), default: bool(acl["IsDefault"]) == true ? true : nil, subnets: subnets.isEmpty ? nil : subnets,
                    ingress: ingress, egress: egress))
        }
    }

    private mutating func importInstances(_ topology: inout Topology, vpcId: String) {
        let elasticIps = Set((list("describe-addresses.json", "Addresses") ?? []).compactMap { $0["PublicIp"]?.scalar.flatMap { IPv4Address($0) } })
        var descriptions: [String: String] = [:]
        for interface in list("describe-network-interfaces.json", "NetworkInterfaces") ?? [] where inVPC(interface, vpcId) {
            guard let id = interface["NetworkInterfaceId"]?.scalar else { continue }
            if let text = string(interface, "Description"), !text.isEmpty { descriptions[id] = text }
            // NAT gateway, load balancer and endpoint ENIs are AWS-managed; their owners are imported instead.
            if (string(interface, "InterfaceType") ?? "interface") != "interface" { continue }
            if interface["Attachment"] == nil && string(interface, "Status") == "available" {
                warning(interface, "network interface \(id) is attached to nothing; left out")
            }
        }
        for reservation in list("describe-instances.json", "Reservations") ?? [] {
            for instance in reservation["Instances"]?.elements ?? [] where inVPC(instance, vpcId) {
                guard let id = required(instance, "InstanceId", "an instance") else { continue }
                let state = instance["State"]?["Name"]?.scalar ?? "running"
                if state == "terminated" || state == "shutting-down" { continue }
                let instanceCheck = bool(instance["SourceDestCheck"])
                var interfaces: [NetworkInterface] = []
                for eni in instance["NetworkInterfaces"]?.elements ?? [] {
                    guard let eniId = required(eni, "NetworkInterfaceId", "instance \(id) interface"),
                        let subnet = required(eni, "SubnetId", "interface \(eniId)"),
                        let primary = address(eni["PrivateIpAddress"], "interface \(eniId) PrivateIpAddress")
                    else { continue }
                    let secondaries = (eni["PrivateIpAddresses"]?.elements ?? []).filter { $0["Primary"]?.scalar != "true" }
                        .compactMap { address($0["PrivateIpAddress"], "interface \(eniId) secondary address") }
                    let associated = address(eni["Association"]?["PublicIp"], "interface \(eniId) public IP")
                    let deviceIndex = int(eni["Attachment"]?["DeviceIndex"]) ?? interfaces.count
                    // ENI-4: the instance attribute reflects the primary ENI; the ENI's own flag is authoritative for the others.
                    var check = bool(eni["SourceDestCheck"]) ?? true
                    if deviceIndex == 0, instanceCheck == false { check = false }
                    let groups = (eni["Groups"]?.elements ?? []).compactMap { $0["GroupId"]?.scalar }
                    interfaces.append(
                        NetworkInterface(
                            id: eniId, mac: string(eni, "MacAddress"), subnet: subnet, privateIp: primary,
                            secondaryIps: secondaries.isEmpty ? nil : secondaries,
                            publicIp: associated.flatMap { elasticIps.contains($0) ? nil : $0 },
                            elasticIp: associated.flatMap { elasticIps.contains($0) ? $0 : nil },
                            securityGroups: groups, deviceIndex: deviceIndex, sourceDestCheck: check ? nil : false, description: descriptions[eniId]))
                }
                if interfaces.isEmpty {
                    warning(instance, "instance \(id) has no network interfaces in the file; left out")
                    continue
                }
                let roles = tag(instance, "Role").map { $0.split(separator: ",").map { String($0.trimmingSpaces) } }
                topology.instances.append(Instance(id: id, name: tag(instance, "Name"), roles: roles, interfaces: interfaces))
            }
        }
    }

    private mutating func importEndpointsAndPeerings(_ topology: inout Topology, vpcId: String) {
        for endpoint in list("describe-vpc-endpoints.json", "VpcEndpoints") ?? [] where inVPC(endpoint, vpcId) {
            guard let id = required(endpoint, "VpcEndpointId", "a VPC endpoint") else { continue }
            let type = (string(endpoint, "VpcEndpointType") ?? "Gateway").lowercased()
            guard type == "gateway" || type == "interface" else {
                warning(endpoint, "VPC endpoint \(id) is of type \(type), which is not modelled; left out")
                continue
            }
            let service = string(endpoint, "ServiceName")
            let prefixList = topology.prefixLists.first { $0.name != nil && $0.name == service }?.id
            let tables = (endpoint["RouteTableIds"]?.elements ?? []).compactMap(\.scalar)
            topology.vpcEndpoints.append(
                VPCEndpoint(id: id, type: type, service: service, prefixList: prefixList, routeTables: tables.isEmpty ? nil : tables))
        }
        for peering in list("describe-vpc-peering-connections.json", "VpcPeeringConnections") ?? [] {
            guard let id = required(peering, "VpcPeeringConnectionId", "a peering connection") else { continue }
            let requester = peering["RequesterVpcInfo"]
            let accepter = peering["AccepterVpcInfo"]
            let peerSide = requester?["VpcId"]?.scalar == vpcId ? accepter : requester
            guard requester?["VpcId"]?.scalar == vpcId || accepter?["VpcId"]?.scalar == vpcId, let peerSide else { continue }
            var blocks = (peerSide["CidrBlockSet"]?.elements ?? []).compactMap { $0["CidrBlock"]?.scalar.flatMap { CIDR($0) } }
            if blocks.isEmpty, let block = peerSide["CidrBlock"]?.scalar.flatMap({ CIDR($0) }) { blocks.append(block) }
            topology.peerings.append(Peering(id: id, peerVpc: peerSide["VpcId"]?.scalar, peerCidrs: blocks))
        }
    }

    private mutating func importRouteTables(_ topology: inout Topology, vpcId: String) {
        let known = Set(
            topology.nats.map(\.id) + topology.instances.map(\.id) + topology.instances.flatMap { $0.interfaces.map(\.id) }
                + topology.peerings.map(\.id) + topology.vpcEndpoints.map(\.id) + [topology.internetGateway?.id ?? "local", "local"])
        var natInstances: [String: String] = [:]
        for table in list("describe-route-tables.json", "RouteTables") ?? [] where inVPC(table, vpcId) {
            guard let id = required(table, "RouteTableId", "a route table") else { continue }
            var main = false
            var subnets: [String] = []
            for association in table["Associations"]?.elements ?? [] {
                if association["Main"]?.scalar == "true" { main = true }
                if let subnet = association["SubnetId"]?.scalar { subnets.append(subnet) }
            }
            var routes: [Route] = []
            for route in table["Routes"]?.elements ?? [] {
                if route["DestinationIpv6CidrBlock"] != nil { continue }  // IPv6 is not modelled (RT-3: independent families)
                let targetKeys = ["GatewayId", "NatGatewayId", "InstanceId", "NetworkInterfaceId", "VpcPeeringConnectionId"]
                let unsupported = ["TransitGatewayId", "EgressOnlyInternetGatewayId", "CarrierGatewayId", "LocalGatewayId", "CoreNetworkArn"]
                var target = targetKeys.lazy.compactMap { route[$0]?.scalar }.first
                // An instance route also names its ENI; the instance is the clearer target.
                if let instance = route["InstanceId"]?.scalar { target = instance }
                var state: RouteState? = route["State"]?.scalar == "blackhole" ? .blackhole : nil
                if target == nil, let key = unsupported.first(where: { route[$0] != nil }) {
                    warning(route, "route table \(id): \(key) targets are not modelled; the route is treated as dropping traffic")
                    target = route[key]?.scalar
                    state = .blackhole
                }
                guard let target else {
                    error(route, "route table \(id): route has no target")
                    continue
                }
                if !known.contains(target) && state == nil {
                    warning(route, "route table \(id): target \(target) is not in the import; the route is treated as a blackhole (RT-6)")
                    state = .blackhole
                }
                if let instance = route["InstanceId"]?.scalar, route["DestinationCidrBlock"]?.scalar == "0.0.0.0/0" {
                    natInstances[instance] = instance
                }
                if let block = route["DestinationCidrBlock"] {
                    guard let destination = block.scalar.flatMap({ CIDR($0) }) else {
                        error(block, "route table \(id): '\(block.scalar ?? "")' is not an IPv4 CIDR block")
                        continue
                    }
                    routes.append(Route(destination: destination, target: target, state: state))
                } else if let list = route["DestinationPrefixListId"]?.scalar {
                    routes.append(Route(destinationPrefixList: list, target: target, state: state))
                }
            }
            topology.routeTables.append(
                RouteTable(id: id, name: tag(table, "Name"), main: main ? true : nil, subnets: subnets.isEmpty ? nil : subnets, routes: routes))
        }
        // An instance that a default route points at, with source/dest check off, is a NAT instance.
        for (index, instance) in topology.instances.enumerated() where natInstances[instance.id] != nil {
            guard let primary = instance.interfaces.first, primary.sourceDestCheck == false else { continue }
            topology.nats.append(NAT(id: "nat-\(instance.id)", kind: .instance, instance: instance.id, elasticIp: primary.elasticIp))
            if !(instance.roles ?? []).contains("nat") { topology.instances[index].roles = (instance.roles ?? []) + ["nat"] }
        }
    }

    private mutating func importLoadBalancers(_ topology: inout Topology, vpcId: String) {
        guard let balancers = list("describe-load-balancers.json", "LoadBalancers") else { return }
        let groups = list("describe-target-groups.json", "TargetGroups") ?? []
        let listeners = list("describe-listeners.json", "Listeners") ?? []
        let health = list("describe-target-health.json", "TargetHealthDescriptions") ?? []
        for balancer in balancers where inVPC(balancer, vpcId) {
            guard let arn = required(balancer, "LoadBalancerArn", "a load balancer") else { continue }
            let type = string(balancer, "Type") ?? "application"
            if type == "gateway" {
                warning(balancer, "gateway load balancer \(arn) is not modelled; left out")
                continue
            }
            var subnets: [String] = []
            var nodes: [LoadBalancerNode] = []
            for zone in balancer["AvailabilityZones"]?.elements ?? [] {
                guard let subnet = zone["SubnetId"]?.scalar else { continue }
                subnets.append(subnet)
                for address in zone["LoadBalancerAddresses"]?.elements ?? [] {
                    nodes.append(
                        LoadBalancerNode(
                            subnet: subnet, privateIp: self.address(address["PrivateIPv4Address"], "load balancer address"),
                            publicIp: self.address(address["IpAddress"], "load balancer address")))
                }
            }
            var modelListeners: [Listener] = []
            var targets: [String] = []
            for listener in listeners where listener["LoadBalancerArn"]?.scalar == arn {
                guard let port = int(listener["Port"]) else { continue }
                let proto: IPProtocol = (string(listener, "Protocol") ?? "TCP").uppercased() == "UDP" ? .udp : .tcp
                let groupArn = listener["DefaultActions"]?.elements?.lazy.compactMap { $0["TargetGroupArn"]?.scalar }.first
                let group = groups.first { $0["TargetGroupArn"]?.scalar == groupArn }
                modelListeners.append(Listener(port: port, protocol: proto, targetPort: group.flatMap { int($0["Port"]) }))
                for description in health where description["TargetGroupArn"]?.scalar == groupArn {
                    if let target = description["Target"]?["Id"]?.scalar, !targets.contains(target) { targets.append(target) }
                }
            }
            let securityGroups = balancer["SecurityGroups"]?.elements?.compactMap(\.scalar)
            topology.loadBalancers.append(
                LoadBalancer(
                    id: arn, name: string(balancer, "LoadBalancerName"), scheme: string(balancer, "Scheme") ?? "internal", type: type,
                    subnets: subnets,
                    nodes: nodes.isEmpty ? nil : nodes, securityGroups: securityGroups, listeners: modelListeners, targets: targets))
        }
    }
}
