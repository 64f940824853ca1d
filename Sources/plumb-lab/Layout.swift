import PlumbCore

/// The lab's view of a model: what becomes a namespace, a bridge, a veth, an address, a rule. Names follow one
/// convention so that deploy/lab/lab.sh and these generators agree: bridge `b-SUBNETNAME` in the router namespace,
/// namespace `pl-NAME` per instance and load balancer, veth `ethN` inside (N = the ENI's device index) and `vK` on
/// the router's side (K counts the lab's veths), the router's link to the internet namespace `r-inet`.
struct LabLayout {
    let topology: Topology

    enum LayoutError: Error, CustomStringConvertible {
        case unsupported(String)
        var description: String {
            switch self {
            case .unsupported(let what): return "the lab cannot build this model: \(what)"
            }
        }
    }

    func subnetName(_ id: String) -> String { topology.subnets.first { $0.id == id }?.name ?? id }
    func bridge(_ subnetId: String) -> String { "b-" + subnetName(subnetId) }

    /// The subnet's gateway: the first host address (AWS's VPC router, `.1`).
    func gateway(_ subnet: Subnet) -> IPv4Address { IPv4Address(subnet.cidr.network.value + 1) }

    func routeTable(of subnet: Subnet) -> RouteTable? {
        if let id = subnet.routeTable { return topology.routeTables.first { $0.id == id } }
        return topology.routeTables.first { $0.subnets?.contains(subnet.id) == true } ?? topology.routeTables.first { $0.main == true }
    }

    func networkACL(of subnet: Subnet) -> NetworkACL? {
        if let id = subnet.networkAcl { return topology.networkAcls.first { $0.id == id } }
        return topology.networkAcls.first { $0.subnets?.contains(subnet.id) == true } ?? topology.networkAcls.first { $0.default == true }
    }

    /// Where the subnet's default route goes: `igw`, the private address of a NAT instance, or nothing.
    func defaultRoute(of subnet: Subnet) throws -> String {
        guard let table = routeTable(of: subnet), let route = table.routes.first(where: { $0.destination?.prefixLength == 0 }) else {
            return "none"
        }
        if route.target == topology.internetGateway?.id { return "igw" }
        if let nat = topology.nats.first(where: { $0.id == route.target }) {
            guard nat.kind == .instance, let instance = topology.instances.first(where: { $0.id == nat.instance }),
                let eni = instance.interfaces.first
            else { throw LayoutError.unsupported("NAT \(nat.id) is not a NAT instance (the lab runs NAT instances only)") }
            return eni.privateIp.description
        }
        throw LayoutError.unsupported("the default route of \(table.id) goes to \(route.target)")
    }

    /// The addresses a security group stands for when a rule references it: every ENI and load-balancer node in it.
    func members(of group: String) -> [String] {
        var addresses: [String] = []
        for instance in topology.instances {
            for eni in instance.interfaces where eni.securityGroups.contains(group) {
                addresses.append(eni.privateIp.description)
                addresses += (eni.secondaryIps ?? []).map(\.description)
            }
        }
        for balancer in topology.loadBalancers where balancer.securityGroups?.contains(group) == true {
            addresses += (balancer.nodes ?? []).compactMap { $0.privateIp?.description }
        }
        return addresses
    }

    func prefixList(_ id: String) -> [String] { topology.prefixLists.first { $0.id == id }?.cidrs.map(\.description) ?? [] }

    /// Shell-friendly lines for lab.sh: one per subnet, interface, load balancer, public address and endpoint.
    func describe() throws -> String {
        var lines = topology.vpc.cidrBlocks.map { "vpc \($0)" }
        for subnet in topology.subnets {
            lines.append(
                "subnet \(subnetName(subnet.id)) \(subnet.id) \(subnet.cidr) \(gateway(subnet))/\(subnet.cidr.prefixLength) \(try defaultRoute(of: subnet))"
            )
        }
        for instance in topology.instances {
            let name = instance.name ?? instance.id
            for eni in instance.interfaces {
                guard let subnet = topology.subnets.first(where: { $0.id == eni.subnet }), let mac = eni.mac else {
                    throw LayoutError.unsupported("ENI \(eni.id) needs a subnet and a MAC address")
                }
                lines.append(
                    "eni \(name) \(instance.id) \(eni.deviceIndex ?? 0) \(eni.id) \(mac) \(eni.privateIp)/\(subnet.cidr.prefixLength) \(gateway(subnet)) \(subnetName(subnet.id))"
                )
                if let outside = eni.elasticIp ?? eni.publicIp { lines.append("public \(eni.privateIp) \(outside)") }
            }
            for listen in instance.listens ?? [] { lines.append("listen \(name) \(listen.port)") }
        }
        for balancer in topology.loadBalancers {
            let name = balancer.name ?? balancer.id
            let targets = balancer.targets.compactMap { id in topology.instances.first { $0.id == id }?.interfaces.first?.privateIp.description }
            for (index, node) in (balancer.nodes ?? []).enumerated() {
                guard let address = node.privateIp, let subnet = topology.subnets.first(where: { $0.id == node.subnet }) else { continue }
                for listener in balancer.listeners {
                    lines.append(
                        "lb \(name)-\(index) \(balancer.id) \(address)/\(subnet.cidr.prefixLength) \(gateway(subnet)) \(subnetName(subnet.id)) \(listener.port) \(listener.targetPort ?? listener.port) \(targets.joined(separator: ","))"
                    )
                }
            }
        }
        for endpoint in topology.endpoints {
            var addresses = (endpoint.addresses ?? []).map { $0.network.description }
            if let list = endpoint.prefixList { addresses += prefixList(list).map { String($0.split(separator: "/")[0]) } }
            for address in addresses { lines.append("endpoint \(endpoint.id) \(endpoint.kind.rawValue) \(address) \(endpoint.port ?? 443)") }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
