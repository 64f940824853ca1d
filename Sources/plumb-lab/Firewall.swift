import PlumbCore

/// Security groups and network ACLs as iptables-restore input, from the model.
///
/// Security groups are stateful and sit on the instance: in its namespace, `SG-IN` for new inbound connections and
/// `SG-OUT` for new outbound ones, with established and related traffic accepted before either. A forwarding
/// instance (a NAT instance: source/destination check off) also filters what it forwards, as AWS applies the
/// groups of its ENI to that traffic: `SG-FWD` checks the inbound rules, then the outbound ones.
///
/// Network ACLs are stateless and sit at the subnet boundary: on the router, a packet leaving subnet X goes through
/// `NACL-X-OUT` and one entering subnet Y through `NACL-Y-IN`; rules in rule-number order, allow returns, deny drops,
/// and the implicit `*` rule drops. Traffic inside a subnet is bridged and never sees them, as in a VPC.
struct Firewall {
    let layout: LabLayout
    var topology: Topology { layout.topology }

    /// iptables match arguments for a rule's protocol and ports.
    func match(_ proto: IPProtocol, _ ports: PortRange?) -> String {
        switch proto {
        case .all: return ""
        case .tcp, .udp:
            guard let ports, !(ports.from == 0 && ports.to == 65_535) else { return "-p \(proto)" }
            return "-p \(proto) -m \(proto) --dport \(ports.from == ports.to ? "\(ports.from)" : "\(ports.from):\(ports.to)")"
        case .icmp: return "-p icmp"
        case .number(let number): return "-p \(number)"
        }
    }

    /// The peer addresses of a security-group rule (a CIDR, a referenced group's members, or a prefix list).
    func peers(_ rule: SecurityGroupRule) -> [String] {
        if let cidr = rule.cidr { return [cidr.description] }
        if let group = rule.securityGroup { return layout.members(of: group) }
        if let list = rule.prefixList { return layout.prefixList(list) }
        return []
    }

    func groupRules(_ groups: [String], chain: String, inbound: Bool, target: String) -> [String] {
        var lines: [String] = []
        for id in groups {
            guard let group = topology.securityGroups.first(where: { $0.id == id }) else { continue }
            let rules: [SecurityGroupRule]
            if inbound {
                rules = group.ingress ?? []
            } else if let egress = group.egress {
                rules = egress
            } else {
                // No egress list: AWS's default group rule, everything out.
                lines.append("-A \(chain) -m comment --comment \"\(id) default egress\" -j \(target)")
                continue
            }
            for rule in rules {
                for peer in peers(rule) {
                    let side = inbound ? "-s" : "-d"
                    let text = [side, peer, match(rule.protocol, rule.ports)].filter { !$0.isEmpty }.joined(separator: " ")
                    lines.append("-A \(chain) \(text) -m comment --comment \"\(id)\" -j \(target)")
                }
            }
        }
        return lines
    }

    /// The filter table of a namespace whose interfaces carry `groups`.
    func hostRules(groups: [String], forwards: Bool) -> String {
        var lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":SG-IN - [0:0]", ":SG-OUT - [0:0]"]
        if forwards { lines.append(":SG-FWD - [0:0]") }
        lines += [
            "-A INPUT -i lo -j ACCEPT",
            "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
            "-A INPUT -j SG-IN",
            "-A OUTPUT -o lo -j ACCEPT",
            "-A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
            "-A OUTPUT -j SG-OUT",
        ]
        if forwards {
            lines += ["-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT", "-A FORWARD -j SG-FWD"]
        }
        var unique: [String] = []
        for group in groups where !unique.contains(group) { unique.append(group) }
        lines += groupRules(unique, chain: "SG-IN", inbound: true, target: "ACCEPT")
        lines.append("-A SG-IN -j DROP")
        lines += groupRules(unique, chain: "SG-OUT", inbound: false, target: "ACCEPT")
        lines.append("-A SG-OUT -j DROP")
        if forwards {
            lines += groupRules(unique, chain: "SG-FWD", inbound: true, target: "SG-OUT")
            lines.append("-A SG-FWD -j DROP")
        }
        lines.append("COMMIT")
        return lines.joined(separator: "\n") + "\n"
    }

    func instance(_ id: String) throws -> String {
        guard let instance = topology.instances.first(where: { $0.id == id || $0.name == id }) else {
            throw LabLayout.LayoutError.unsupported("no instance \(id) in the model")
        }
        return hostRules(
            groups: instance.interfaces.flatMap(\.securityGroups), forwards: instance.interfaces.contains { $0.sourceDestCheck == false })
    }

    func loadBalancer(_ id: String) throws -> String {
        guard let balancer = topology.loadBalancers.first(where: { $0.id == id || $0.name == id }) else {
            throw LabLayout.LayoutError.unsupported("no load balancer \(id) in the model")
        }
        return hostRules(groups: balancer.securityGroups ?? [], forwards: false)
    }

    func aclChain(_ name: String, _ rules: [NetworkACLRule], inbound: Bool) -> [String] {
        var lines: [String] = []
        for rule in rules.sorted(by: { $0.rule < $1.rule }) {
            let side = inbound ? "-s" : "-d"
            let text = [side, rule.cidr.description, match(rule.protocol, rule.ports)].filter { !$0.isEmpty }.joined(separator: " ")
            lines.append("-A \(name) \(text) -m comment --comment \"rule \(rule.rule)\" -j \(rule.action == .allow ? "RETURN" : "DROP")")
        }
        lines.append("-A \(name) -m comment --comment \"rule *\" -j DROP")
        return lines
    }

    /// The router: NACL chains per subnet, and the internet gateway (1:1 NAT of public addresses; nothing else
    /// leaves or enters through it).
    func router() -> String {
        var chains: [String] = [":IGW-OUT - [0:0]", ":IGW-IN - [0:0]"]
        var forward: [String] = []
        var bodies: [String] = []
        for subnet in topology.subnets {
            let name = layout.subnetName(subnet.id).uppercased()
            let bridge = layout.bridge(subnet.id)
            guard let acl = layout.networkACL(of: subnet) else { continue }
            chains += [":NACL-\(name)-OUT - [0:0]", ":NACL-\(name)-IN - [0:0]"]
            forward.append("-A FORWARD -i \(bridge) -m comment --comment \"\(acl.id) egress of \(subnet.id)\" -j NACL-\(name)-OUT")
            forward.append("-A FORWARD -o \(bridge) -m comment --comment \"\(acl.id) ingress of \(subnet.id)\" -j NACL-\(name)-IN")
            bodies += aclChain("NACL-\(name)-OUT", acl.egress, inbound: false)
            bodies += aclChain("NACL-\(name)-IN", acl.ingress, inbound: true)
        }
        forward += ["-A FORWARD -o r-inet -j IGW-OUT", "-A FORWARD -i r-inet -j IGW-IN", "-A FORWARD -j ACCEPT"]
        var nat = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]"]
        for instance in topology.instances {
            for eni in instance.interfaces {
                guard let outside = eni.elasticIp ?? eni.publicIp else { continue }
                bodies.append("-A IGW-OUT -s \(eni.privateIp) -j ACCEPT")
                bodies.append("-A IGW-IN -d \(eni.privateIp) -j ACCEPT")
                nat.append("-A PREROUTING -i r-inet -d \(outside) -j DNAT --to-destination \(eni.privateIp)")
                nat.append("-A POSTROUTING -o r-inet -s \(eni.privateIp) -j SNAT --to-source \(outside)")
            }
        }
        bodies += ["-A IGW-OUT -m comment --comment \"no public address: the internet gateway drops it\" -j DROP", "-A IGW-IN -j DROP"]
        let filter = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"] + chains + forward + bodies + ["COMMIT"]
        return (filter + nat + ["COMMIT"]).joined(separator: "\n") + "\n"
    }
}
