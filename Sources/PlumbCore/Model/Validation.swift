/// Checks a decoded model: every problem, in two grades (errors and warnings), each at its source location.
///
/// Errors mean the model cannot be evaluated or breaks its own intents; warnings are legal in AWS but
/// probably a mistake. Intents are checked with the engine only when there is no other error.
public struct Validator {
    let topology: Topology
    let sourceMap: SourceMap
    /// The model compiled once for the checks that need resolved references and the engine.
    let network: Network
    private(set) var diagnostics: [Diagnostic] = []

    /// Validates `topology`; `sourceMap` gives locations (an empty map points everything at line 1).
    public static func validate(_ topology: Topology, sourceMap: SourceMap) -> [Diagnostic] {
        var validator = Validator(topology: topology, sourceMap: sourceMap, network: Network(topology))
        validator.run()
        return validator.diagnostics.sortedByLocation()
    }

    private mutating func error(_ path: String, _ code: String, _ message: String) {
        diagnostics.append(Diagnostic(.error, at: sourceMap.location(path), code: code, message))
    }

    private mutating func warning(_ path: String, _ code: String, _ message: String) {
        diagnostics.append(Diagnostic(.warning, at: sourceMap.location(path), code: code, message))
    }

    private mutating func run() {
        let t = topology
        // Ids are unique across every kind of resource.
        var kindById: [String: String] = [:]
        func claim(_ id: String, _ kind: String, _ path: String) {
            if let other = kindById[id] {
                error("\(path).id", "duplicate-id", "id '\(id)' is used twice (already used by a \(other)); every resource needs its own id")
            } else {
                kindById[id] = kind
            }
        }
        claim(t.vpc.id, "vpc", "vpc")
        if let igw = t.internetGateway { claim(igw.id, "internet gateway", "internetGateway") }
        for (i, x) in t.prefixLists.enumerated() { claim(x.id, "prefix list", "prefixLists[\(i)]") }
        for (i, x) in t.subnets.enumerated() { claim(x.id, "subnet", "subnets[\(i)]") }
        for (i, x) in t.routeTables.enumerated() { claim(x.id, "route table", "routeTables[\(i)]") }
        for (i, x) in t.networkAcls.enumerated() { claim(x.id, "network ACL", "networkAcls[\(i)]") }
        for (i, x) in t.securityGroups.enumerated() { claim(x.id, "security group", "securityGroups[\(i)]") }
        for (i, x) in t.instances.enumerated() {
            claim(x.id, "instance", "instances[\(i)]")
            for (j, eni) in x.interfaces.enumerated() { claim(eni.id, "network interface", "instances[\(i)].interfaces[\(j)]") }
        }
        for (i, x) in t.nats.enumerated() { claim(x.id, "NAT", "nats[\(i)]") }
        for (i, x) in t.peerings.enumerated() { claim(x.id, "peering", "peerings[\(i)]") }
        for (i, x) in t.vpcEndpoints.enumerated() { claim(x.id, "VPC endpoint", "vpcEndpoints[\(i)]") }
        for (i, x) in t.loadBalancers.enumerated() { claim(x.id, "load balancer", "loadBalancers[\(i)]") }
        for (i, x) in t.endpoints.enumerated() { claim(x.id, "endpoint", "endpoints[\(i)]") }

        let subnetIds = Set(t.subnets.map(\.id))
        let sgIds = Set(t.securityGroups.map(\.id))
        let prefixListIds = Set(t.prefixLists.map(\.id))
        let instanceKeys = Set(t.instances.map(\.id) + t.instances.compactMap(\.name))

        checkVPCAndSubnets()
        checkRouteTables(kindById: kindById, subnetIds: subnetIds, prefixListIds: prefixListIds)
        checkNetworkACLs(subnetIds: subnetIds)
        checkSecurityGroups(sgIds: sgIds, prefixListIds: prefixListIds)
        checkInstances(subnetIds: subnetIds, sgIds: sgIds)
        checkNATs(subnetIds: subnetIds, instanceKeys: instanceKeys)
        checkOthers(subnetIds: subnetIds, sgIds: sgIds, prefixListIds: prefixListIds, instanceKeys: instanceKeys)
        if !diagnostics.hasErrors { checkIntents() }
    }

    private mutating func checkVPCAndSubnets() {
        let t = topology
        if t.vpc.cidrBlocks.isEmpty { error("vpc.cidrBlocks", "malformed", "the VPC needs at least one CIDR block in cidrBlocks") }
        for (i, block) in t.vpc.cidrBlocks.enumerated() {
            if !block.wasCanonical {
                warning("vpc.cidrBlocks[\(i)]", "non-canonical-cidr", "VPC block has host bits set; AWS stores it as \(block) (NACL-9)")
            }
            if block.prefixLength < 16 || block.prefixLength > 28 {
                error("vpc.cidrBlocks[\(i)]", "invalid-cidr", "VPC block \(block) must be between /16 and /28")
            }
            for other in t.vpc.cidrBlocks[..<i] where other.overlaps(block) {
                error("vpc.cidrBlocks[\(i)]", "overlapping-cidr", "VPC block \(block) overlaps \(other)")
            }
        }
        for (i, subnet) in t.subnets.enumerated() {
            let path = "subnets[\(i)]"
            if !subnet.cidr.wasCanonical {
                warning("\(path).cidr", "non-canonical-cidr", "subnet \(subnet.id) block has host bits set; AWS stores it as \(subnet.cidr) (NACL-9)")
            }
            if !t.vpc.cidrBlocks.contains(where: { $0.contains(subnet.cidr) }) {
                let blocks = t.vpc.cidrBlocks.map(\.description).joined(separator: ", ")
                error("\(path).cidr", "cidr-outside-vpc", "subnet \(subnet.id) block \(subnet.cidr) is not inside the VPC (\(blocks))")
            }
            if subnet.cidr.prefixLength > 28 {
                error("\(path).cidr", "invalid-cidr", "subnet \(subnet.id) block \(subnet.cidr) is smaller than /28, the smallest AWS allows")
            }
            for (j, other) in t.subnets[..<i].enumerated() where other.cidr.overlaps(subnet.cidr) {
                error(
                    "\(path).cidr", "overlapping-cidr",
                    "subnet \(subnet.id) block \(subnet.cidr) overlaps subnet \(other.id) (\(other.cidr), subnets[\(j)])")
            }
            if let table = subnet.routeTable, !t.routeTables.contains(where: { $0.id == table }) {
                error("\(path).routeTable", "dangling-reference", "subnet \(subnet.id) names route table '\(table)', which is not in routeTables")
            }
            if let acl = subnet.networkAcl, !t.networkAcls.contains(where: { $0.id == acl }) {
                error("\(path).networkAcl", "dangling-reference", "subnet \(subnet.id) names network ACL '\(acl)', which is not in networkAcls")
            }
        }
    }

    private mutating func checkRouteTables(kindById: [String: String], subnetIds: Set<String>, prefixListIds: Set<String>) {
        let t = topology
        let mains = t.routeTables.enumerated().filter { $0.element.isMain }
        for (i, table) in mains.dropFirst() {
            error(
                "routeTables[\(i)].main", "multiple-main",
                "route table \(table.id) is main, but \(mains[0].element.id) already is; a VPC has one main table (RT-1)")
        }
        // RT-1: one route table per subnet.
        var tableOf: [String: (table: String, path: String)] = [:]
        for (i, subnet) in t.subnets.enumerated() {
            if let table = subnet.routeTable { tableOf[subnet.id] = (table, "subnets[\(i)].routeTable") }
        }
        for (i, table) in t.routeTables.enumerated() {
            for (j, subnet) in (table.subnets ?? []).enumerated() {
                let path = "routeTables[\(i)].subnets[\(j)]"
                guard subnetIds.contains(subnet) else {
                    error(path, "dangling-reference", "route table \(table.id) lists subnet '\(subnet)', which is not in subnets")
                    continue
                }
                if let other = tableOf[subnet], other.table != table.id {
                    error(
                        path, "multiple-route-tables",
                        "subnet \(subnet) is associated with route table \(table.id) and with \(other.table); a subnet has exactly one (RT-1)")
                } else {
                    tableOf[subnet] = (table.id, path)
                }
            }
        }
        if mains.isEmpty {
            for (i, subnet) in t.subnets.enumerated() where tableOf[subnet.id] == nil {
                error("subnets[\(i)]", "no-route-table", "subnet \(subnet.id) has no route table and no table is main: true; associate one (RT-1)")
            }
        }
        let subnetBlocks = Set(t.subnets.map(\.cidr))
        for (i, table) in t.routeTables.enumerated() {
            var seen: [String: Int] = [:]
            for (j, route) in table.routes.enumerated() {
                let path = "routeTables[\(i)].routes[\(j)]"
                let destination: String
                switch (route.destination, route.destinationPrefixList) {
                case (let block?, nil):
                    destination = block.description
                    if CIDR.awsReserved.overlaps(block) && block.prefixLength > 0 {
                        error("\(path).destination", "reserved-range", "route to \(block) enters 169.254.168.0/22, which AWS reserves (RT-7)")
                    }
                    let inVPC = t.vpc.cidrBlocks.contains { $0.contains(block) && $0 != block }
                    if inVPC && route.target != "local" && !subnetBlocks.contains(block) {
                        error(
                            "\(path).destination", "route-more-specific-than-local",
                            "route to \(block) is more specific than the local route; AWS allows that only for a whole subnet's block (RT-2)")
                    }
                    if route.target == "local" && !t.vpc.cidrBlocks.contains(block) {
                        error("\(path).target", "invalid-local-route", "a local route must be for a VPC block exactly; \(block) is not one (RT-2)")
                    }
                case (nil, let list?):
                    destination = list
                    if !prefixListIds.contains(list) {
                        error("\(path).destinationPrefixList", "dangling-reference", "route names prefix list '\(list)', which is not in prefixLists")
                    }
                case (nil, nil):
                    error(path, "malformed", "route needs a destination (a CIDR block) or a destinationPrefixList")
                    continue
                case (_?, _?):
                    error(path, "malformed", "route has both destination and destinationPrefixList; give one")
                    continue
                }
                if let first = seen[destination] {
                    error(path, "duplicate-route", "route table \(table.id) has two routes to \(destination) (routes[\(first)] and routes[\(j)])")
                }
                seen[destination] = j
                let target = route.target
                if target != "local" {
                    let kind = kindById[target]
                    let routable: Set<String> = ["internet gateway", "NAT", "instance", "network interface", "peering", "VPC endpoint"]
                    let targetIsInstanceName = t.instances.contains { $0.name == target }
                    if kind == nil && !targetIsInstanceName {
                        if route.state == .blackhole {
                            warning(
                                "\(path).target", "blackhole-route",
                                "route to \(destination) is a blackhole: its target \(target) is gone; traffic to it is dropped (RT-6)")
                        } else {
                            error(
                                "\(path).target", "dangling-reference",
                                "route target '\(target)' is not in the model; use local or the id of an internet gateway, NAT, instance, ENI, peering or VPC endpoint"
                            )
                        }
                        continue
                    } else if let kind, !routable.contains(kind) {
                        error("\(path).target", "invalid-route-target", "route target '\(target)' is a \(kind), which cannot be a route target")
                    }
                }
                if route.state == .blackhole {
                    warning(
                        "\(path).state", "blackhole-route", "route to \(destination) via \(target) is a blackhole; traffic to it is dropped (RT-6)")
                }
            }
        }
    }

    private mutating func checkNetworkACLs(subnetIds: Set<String>) {
        let t = topology
        let defaults = t.networkAcls.enumerated().filter { $0.element.isDefault }
        for (i, acl) in defaults.dropFirst() {
            error(
                "networkAcls[\(i)].default", "multiple-default",
                "network ACL \(acl.id) is default, but \(defaults[0].element.id) already is; a VPC has one default NACL")
        }
        var aclOf: [String: String] = [:]
        for subnet in t.subnets { if let acl = subnet.networkAcl { aclOf[subnet.id] = acl } }
        for (i, acl) in t.networkAcls.enumerated() {
            for (j, subnet) in (acl.subnets ?? []).enumerated() {
                let path = "networkAcls[\(i)].subnets[\(j)]"
                guard subnetIds.contains(subnet) else {
                    error(path, "dangling-reference", "network ACL \(acl.id) lists subnet '\(subnet)', which is not in subnets")
                    continue
                }
                if let other = aclOf[subnet], other != acl.id {
                    error(
                        path, "multiple-network-acls",
                        "subnet \(subnet) is associated with network ACL \(acl.id) and with \(other); a subnet has exactly one (NACL-1)")
                } else {
                    aclOf[subnet] = acl.id
                }
            }
            for (direction, rules) in [("ingress", acl.ingress), ("egress", acl.egress)] {
                var numbers: [Int: Int] = [:]
                for (j, rule) in rules.enumerated() {
                    let path = "networkAcls[\(i)].\(direction)[\(j)]"
                    if !(1...32766).contains(rule.rule) {
                        error(
                            "\(path).rule", "invalid-rule-number",
                            "rule number \(rule.rule) is outside 1-32766; 32767 is the implicit final deny (NACL-2, NACL-3)")
                    }
                    if let first = numbers[rule.rule] {
                        error(
                            "\(path).rule", "duplicate-rule-number",
                            "\(acl.id) has two \(direction) rules numbered \(rule.rule) (\(direction)[\(first)] and \(direction)[\(j)])")
                    }
                    numbers[rule.rule] = j
                }
            }
        }
    }

    private mutating func checkSecurityGroups(sgIds: Set<String>, prefixListIds: Set<String>) {
        let t = topology
        var used = Set<String>()
        for instance in t.instances { for eni in instance.interfaces { used.formUnion(eni.securityGroups) } }
        for balancer in t.loadBalancers { used.formUnion(balancer.securityGroups ?? []) }
        for (i, group) in t.securityGroups.enumerated() {
            for (direction, rules) in [("ingress", group.ingress ?? []), ("egress", group.egress ?? [])] {
                for (j, rule) in rules.enumerated() {
                    let path = "securityGroups[\(i)].\(direction)[\(j)]"
                    let peers = [rule.cidr != nil, rule.securityGroup != nil, rule.prefixList != nil].filter { $0 }.count
                    if peers != 1 {
                        error(path, "malformed", "a security group rule needs exactly one of cidr, securityGroup, prefixList (it has \(peers))")
                    }
                    if let peer = rule.securityGroup {
                        used.insert(peer)
                        if !sgIds.contains(peer) {
                            error(
                                "\(path).securityGroup", "dangling-reference", "rule names security group '\(peer)', which is not in securityGroups")
                        }
                    }
                    if let list = rule.prefixList, !prefixListIds.contains(list) {
                        error("\(path).prefixList", "dangling-reference", "rule names prefix list '\(list)', which is not in prefixLists")
                    }
                }
            }
        }
        for (i, group) in t.securityGroups.enumerated() where !used.contains(group.id) {
            warning("securityGroups[\(i)]", "unused-security-group", "security group \(group.id) is attached to nothing and referenced by no rule")
        }
    }

    private mutating func checkInstances(subnetIds: Set<String>, sgIds: Set<String>) {
        let t = topology
        let subnetsById = Dictionary(t.subnets.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var owners: [IPv4Address: String] = [:]
        var elasticIps = Set<IPv4Address>()
        for (i, instance) in t.instances.enumerated() {
            if instance.interfaces.isEmpty {
                error("instances[\(i)].interfaces", "malformed", "instance \(instance.id) has no interfaces; give it at least its primary ENI")
            }
            var deviceIndexes: [Int: String] = [:]
            for (j, eni) in instance.interfaces.enumerated() {
                let path = "instances[\(i)].interfaces[\(j)]"
                if let index = eni.deviceIndex {
                    if let other = deviceIndexes[index] {
                        error(
                            "\(path).deviceIndex", "duplicate-device-index", "\(eni.id) and \(other) both use device index \(index) on \(instance.id)"
                        )
                    }
                    deviceIndexes[index] = eni.id
                }
                for (k, group) in eni.securityGroups.enumerated() where !sgIds.contains(group) {
                    error(
                        "\(path).securityGroups[\(k)]", "dangling-reference",
                        "\(eni.id) names security group '\(group)', which is not in securityGroups")
                }
                if let elasticIp = eni.elasticIp { elasticIps.insert(elasticIp) }
                guard let subnet = subnetsById[eni.subnet] else {
                    error("\(path).subnet", "dangling-reference", "\(eni.id) names subnet '\(eni.subnet)', which is not in subnets")
                    continue
                }
                for (k, address) in eni.privateIps.enumerated() {
                    let addressPath = k == 0 ? "\(path).privateIp" : "\(path).secondaryIps[\(k - 1)]"
                    if !subnet.cidr.contains(address) {
                        error(
                            addressPath, "address-outside-subnet", "\(eni.id) address \(address) is not in its subnet \(subnet.id) (\(subnet.cidr))")
                    } else {
                        let offset = address.value - subnet.cidr.network.value
                        if offset <= 3 || address == subnet.cidr.lastAddress {
                            error(
                                addressPath, "reserved-address",
                                "\(address) is reserved by AWS in subnet \(subnet.cidr) (the first four and the last address; RT-10)")
                        }
                    }
                    if let other = owners[address] {
                        error(addressPath, "duplicate-address", "\(address) is assigned to both \(other) and \(eni.id)")
                    }
                    owners[address] = eni.id
                }
            }
            if let primary = network.instance(named: instance.id).flatMap({ network.instances[$0].interfaces.first }) {
                let eni = network.interfaces[primary]
                if network.subnets[eni.subnet].isPublic && eni.publicIp == nil {
                    warning(
                        "instances[\(i)]", "public-subnet-no-public-ip",
                        "instance \(instance.id) is in public subnet \(network.subnets[eni.subnet].id) but has no public or Elastic IP, so it cannot use the internet gateway (RT-9)"
                    )
                }
            }
        }
        for nat in t.nats { if let ip = nat.elasticIp { elasticIps.insert(ip) } }
        if elasticIps.count > 5 {
            warning("", "elastic-ip-quota", "the model uses \(elasticIps.count) Elastic IPs; the default quota is 5 per region")
        }
    }

    private mutating func checkNATs(subnetIds: Set<String>, instanceKeys: Set<String>) {
        let t = topology
        for (i, nat) in t.nats.enumerated() {
            let path = "nats[\(i)]"
            switch nat.kind {
            case .gateway:
                guard let subnet = nat.subnet else {
                    error(path, "malformed", "NAT gateway \(nat.id) needs a subnet")
                    continue
                }
                guard let index = network.subnet(id: subnet) else {
                    error("\(path).subnet", "dangling-reference", "NAT gateway \(nat.id) names subnet '\(subnet)', which is not in subnets")
                    continue
                }
                if !nat.isPrivate {
                    if nat.elasticIp == nil { error(path, "malformed", "public NAT gateway \(nat.id) needs an elasticIp (NAT-1)") }
                    if !network.subnets[index].isPublic {
                        warning(
                            "\(path).subnet", "nat-in-private-subnet",
                            "public NAT gateway \(nat.id) is in \(subnet), which has no route to the internet gateway (NAT-1)")
                    }
                }
                if let address = nat.privateIp, !network.subnets[index].cidr.contains(address) {
                    error("\(path).privateIp", "address-outside-subnet", "NAT gateway \(nat.id) address \(address) is not in subnet \(subnet)")
                }
            case .instance:
                guard let name = nat.instance else {
                    error(path, "malformed", "NAT instance \(nat.id) needs an instance")
                    continue
                }
                guard instanceKeys.contains(name), let instance = network.instance(named: name),
                    let primary = network.instances[instance].interfaces.first
                else {
                    error("\(path).instance", "dangling-reference", "NAT \(nat.id) names instance '\(name)', which is not in instances")
                    continue
                }
                let eni = network.interfaces[primary]
                if eni.sourceDestCheck {
                    warning(
                        "\(path).instance", "nat-source-dest-check",
                        "NAT instance \(name) has source/destination check on; set sourceDestCheck: false on \(eni.id) or it drops forwarded traffic (NAT-7)"
                    )
                }
                if eni.publicIp == nil && nat.elasticIp == nil {
                    warning(
                        path, "nat-no-public-ip",
                        "NAT instance \(name) has no public or Elastic IP, so its traffic cannot leave through the internet gateway (NAT-7)")
                }
                if !network.subnets[eni.subnet].isPublic {
                    warning(
                        path, "nat-in-private-subnet",
                        "NAT instance \(name) is in \(network.subnets[eni.subnet].id), which has no route to the internet gateway (NAT-7)")
                }
            }
            if let standby = nat.standby, !instanceKeys.contains(standby) {
                error("\(path).standby", "dangling-reference", "NAT \(nat.id) names standby '\(standby)', which is not in instances")
            }
        }
    }

    private mutating func checkOthers(subnetIds: Set<String>, sgIds: Set<String>, prefixListIds: Set<String>, instanceKeys: Set<String>) {
        let t = topology
        for (i, peering) in t.peerings.enumerated() {
            for (j, block) in peering.peerCidrs.enumerated() where t.vpc.cidrBlocks.contains(where: { $0.overlaps(block) }) {
                error(
                    "peerings[\(i)].peerCidrs[\(j)]", "overlapping-cidr", "peer block \(block) overlaps the VPC; peered VPCs cannot overlap (PCX-1)")
            }
        }
        let tableIds = Set(t.routeTables.map(\.id))
        for (i, endpoint) in t.vpcEndpoints.enumerated() {
            if let list = endpoint.prefixList, !prefixListIds.contains(list) {
                error(
                    "vpcEndpoints[\(i)].prefixList", "dangling-reference",
                    "VPC endpoint \(endpoint.id) names prefix list '\(list)', which is not in prefixLists")
            }
            for (j, table) in (endpoint.routeTables ?? []).enumerated() where !tableIds.contains(table) {
                error(
                    "vpcEndpoints[\(i)].routeTables[\(j)]", "dangling-reference",
                    "VPC endpoint \(endpoint.id) names route table '\(table)', which is not in routeTables")
            }
            if endpoint.type != "gateway" && endpoint.type != "interface" {
                error("vpcEndpoints[\(i)].type", "malformed", "VPC endpoint type '\(endpoint.type)' must be gateway or interface")
            }
        }
        for (i, nat) in t.nats.enumerated() {
            if let connectivity = nat.connectivity, connectivity != "public" && connectivity != "private" {
                error("nats[\(i)].connectivity", "malformed", "connectivity '\(connectivity)' must be public or private (NAT-1)")
            }
        }
        for (i, endpoint) in t.vpcEndpoints.enumerated() where endpoint.type == "gateway" {
            for (j, tableId) in (endpoint.routeTables ?? []).enumerated() {
                guard let table = t.routeTables.first(where: { $0.id == tableId }), let list = endpoint.prefixList else { continue }
                if !table.routes.contains(where: { $0.destinationPrefixList == list && $0.target == endpoint.id }) {
                    warning(
                        "vpcEndpoints[\(i)].routeTables[\(j)]", "endpoint-route-missing",
                        "route table \(tableId) has no route {destinationPrefixList: \(list), target: \(endpoint.id)}, so it does not use the endpoint (VPCE-1)"
                    )
                }
            }
        }
        // NAT gateways and load balancer nodes hold addresses too; they must not collide with each other or with ENIs.
        // Instance ENIs come first in the compiled network, so a collision found on a NAT gateway or node names who holds it.
        var holder: [IPv4Address: String] = [:]
        for interface in network.interfaces {
            for address in interface.privateIps {
                guard let other = holder[address] else {
                    holder[address] = interface.id
                    continue
                }
                let path: String
                switch interface.owner {
                case .instance: continue  // duplicate ENI addresses are reported with the instances
                case .natGateway(let index): path = "nats[\(index)]"
                case .loadBalancer(let index): path = "loadBalancers[\(index)]"
                }
                error(
                    path, "duplicate-address",
                    "\(interface.id) would use \(address), which \(other) already holds; give the NAT gateway a privateIp or the load balancer nodes addresses"
                )
            }
        }
        for (i, instance) in t.instances.enumerated() {
            for (j, listen) in (instance.listens ?? []).enumerated() where !(0...65535).contains(listen.port) {
                error("instances[\(i)].listens[\(j)].port", "invalid-port", "port \(listen.port) is outside 0-65535")
            }
            for (j, eni) in instance.interfaces.enumerated() where eni.securityGroups.isEmpty {
                warning(
                    "instances[\(i)].interfaces[\(j)].securityGroups", "no-security-groups",
                    "\(eni.id) has no security group; AWS gives every interface at least one, and with none the model allows nothing in or out")
            }
        }
        for (i, endpoint) in t.endpoints.enumerated() where endpoint.port.map({ !(0...65535).contains($0) }) ?? false {
            error("endpoints[\(i)].port", "invalid-port", "port \(endpoint.port!) is outside 0-65535")
        }
        for (i, balancer) in t.loadBalancers.enumerated() {
            let path = "loadBalancers[\(i)]"
            if let type = balancer.type, type != "application" && type != "network" {
                error(
                    "\(path).type", "malformed",
                    "load balancer type '\(type)' must be application or network (gateway load balancers are not modelled)")
            }
            for (j, listener) in balancer.listeners.enumerated() {
                for port in [listener.port, listener.targetPort ?? listener.port] where !(0...65535).contains(port) {
                    error("\(path).listeners[\(j)]", "invalid-port", "port \(port) is outside 0-65535")
                }
            }
            if balancer.scheme != "internal" && balancer.scheme != "internet-facing" {
                error("\(path).scheme", "malformed", "scheme '\(balancer.scheme)' must be internal or internet-facing (ELB-1)")
            }
            for (j, subnet) in balancer.subnets.enumerated() {
                guard let index = network.subnet(id: subnet) else {
                    error(
                        "\(path).subnets[\(j)]", "dangling-reference",
                        "load balancer \(balancer.id) names subnet '\(subnet)', which is not in subnets")
                    continue
                }
                if balancer.isInternetFacing && !network.subnets[index].isPublic {
                    warning(
                        "\(path).subnets[\(j)]", "internet-facing-in-private-subnet",
                        "internet-facing load balancer \(balancer.id) has a node in private subnet \(subnet) (ELB-1)")
                }
            }
            for (j, group) in (balancer.securityGroups ?? []).enumerated() where !sgIds.contains(group) {
                error(
                    "\(path).securityGroups[\(j)]", "dangling-reference",
                    "load balancer \(balancer.id) names security group '\(group)', which is not in securityGroups")
            }
            for (j, target) in balancer.targets.enumerated() where !instanceKeys.contains(target) {
                error(
                    "\(path).targets[\(j)]", "dangling-reference", "load balancer \(balancer.id) names target '\(target)', which is not in instances")
            }
            for (j, node) in (balancer.nodes ?? []).enumerated() {
                if let address = node.privateIp, let subnet = t.subnets.first(where: { $0.id == node.subnet }), !subnet.cidr.contains(address) {
                    error("\(path).nodes[\(j)].privateIp", "address-outside-subnet", "node address \(address) is not in subnet \(subnet.id)")
                }
            }
        }
        for (i, endpoint) in t.endpoints.enumerated() {
            let path = "endpoints[\(i)]"
            if let list = endpoint.prefixList, !prefixListIds.contains(list) {
                error("\(path).prefixList", "dangling-reference", "endpoint \(endpoint.id) names prefix list '\(list)', which is not in prefixLists")
            }
            if endpoint.addresses == nil && endpoint.prefixList == nil {
                error(path, "malformed", "endpoint \(endpoint.id) needs addresses or a prefixList so the engine knows where it is")
            }
            for (j, selector) in (endpoint.usedBy ?? []).enumerated() where network.select(selector) == nil {
                error("\(path).usedBy[\(j)]", "dangling-reference", "usedBy selector '\(selector)' names nothing in the model")
            }
        }
        for (i, intent) in t.intents.enumerated() {
            let limit = (intent.protocol ?? .tcp) == .icmp ? 255 : 65535
            if !(0...limit).contains(intent.port) {
                error("intents[\(i)].port", "invalid-port", "intent '\(intent.name)': port \(intent.port) is outside 0-\(limit)")
            }
            for (j, selector) in intent.from.enumerated() {
                if let parties = network.select(selector), parties.contains(where: { if case .unassigned = $0 { true } else { false } }) {
                    error(
                        "intents[\(i)].from", "dangling-reference",
                        "intent '\(intent.name)': from[\(j)] \(selector) is inside the VPC but no interface of the model holds it")
                }
            }
            for (field, selectors) in [("from", intent.from), ("to", intent.to), ("except", intent.except ?? [])] {
                for (j, selector) in selectors.enumerated() where network.select(selector) == nil {
                    error(
                        "intents[\(i)].\(field)", "dangling-reference",
                        "intent '\(intent.name)': \(field)[\(j)] '\(selector)' names nothing; use an instance, role:NAME, subnet:ID, private, public, instances, internet, an endpoint, a load balancer or an address"
                    )
                }
            }
        }
    }

    /// An intent the model's own rules contradict is an error that prints the contradicting path.
    private mutating func checkIntents() {
        for (i, intent) in topology.intents.enumerated() {
            let result = network.check(intent, limit: 5)
            if result.sampled && result.violations.isEmpty {
                warning(
                    "intents[\(i)]", "intent-sampled",
                    "intent '\(intent.name)' covers \(result.classPairs) pairs of flow classes; a sample of \(result.checked) was checked. Narrow its selectors, or check the rest with plumb matrix"
                )
            }
            for violation in result.violations {
                let path = violation.explanation.hops.map { "\($0.component) \($0.check)" }.joined(separator: " -> ")
                let reason =
                    violation.explanation.blockedBy.map { " blocked by \($0.component) (\($0.code)\($0.rule.map { ", \($0)" } ?? "")): \($0.detail)" }
                    ?? " allowed along: \(path)"
                error(
                    "intents[\(i)]", "intent-violated",
                    "intent '\(intent.name)' expects \(intent.expect.rawValue), but \(violation.explanation.source) -> \(violation.explanation.destination) \(violation.explanation.protocol) \(violation.explanation.port) is \(violation.explanation.verdict.rawValue);\(reason)"
                )
            }
        }
    }
}
