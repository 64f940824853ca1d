import PlumbCore

/// The VPC drawn as an operator would on a whiteboard, as positioned boxes and paths: computed from the model alone,
/// so the same model always gives the same drawing (ids sorted, no randomness), and a new topology version moves
/// only what changed and what comes after it in its column.
public struct Diagram: Sendable, Codable, Equatable {
    /// A drawn thing: the VPC, a zone, a subnet, an instance, a NAT, a load balancer, an endpoint, the internet gateway.
    public struct Box: Sendable, Codable, Equatable {
        public enum Kind: String, Sendable, Codable {
            case internet, vpc, zone, subnet, instance, nat, loadBalancer = "load-balancer", endpoint, internetGateway = "internet-gateway"
            case collapsed
        }

        /// The model ids this box stands for (the first is its own; a NAT instance's box also names its NAT).
        public var components: [String]
        public var kind: Kind
        public var x: Double
        public var y: Double
        public var width: Double
        public var height: Double
        public var title: String
        /// Lines under the title; each may name components of its own (a route table, a NACL, security groups, ENIs).
        public var lines: [Line]
        /// CSS classes: `public`/`private` (subnets), `bastion`, `nat-instance`, `internet-facing`.
        public var tags: [String]
        /// For a collapsed box: the instances it stands for.
        public var members: [String]?
    }

    /// A line of text in a box; `components` are the ids it names, `tags` its classes (`static` for a static-IP ENI).
    public struct Line: Sendable, Codable, Equatable {
        public var text: String
        public var components: [String]
        public var tags: [String]

        init(_ text: String, components: [String] = [], tags: [String] = []) {
            self.text = text
            self.components = components
            self.tags = tags
        }
    }

    /// An intended path between two boxes: a default route, a NAT's way out, a listener to its targets, an endpoint's use.
    public struct Edge: Sendable, Codable, Equatable {
        public enum Kind: String, Sendable, Codable { case route, egress, listener, endpoint }
        public var from: String
        public var to: String
        public var kind: Kind
        public var label: String?
        /// The points of the path (a cubic curve through them).
        public var points: [Point]
    }

    public struct Point: Sendable, Codable, Equatable {
        public var x: Double
        public var y: Double
    }

    public var width: Double
    public var height: Double
    public var title: String
    public var boxes: [Box]
    public var edges: [Edge]
}

/// Computes a `Diagram` from a topology.
public struct DiagramLayout: Sendable {
    /// Subnets with more instances than this draw them as one box with counts (NATs and bastions stay visible).
    public var collapseAbove: Int
    /// Instances per row in a subnet.
    public var columns: Int

    public init(collapseAbove: Int = 12, columns: Int = 3) {
        self.collapseAbove = collapseAbove
        self.columns = max(1, columns)
    }

    static let margin = 24.0
    static let gap = 16.0
    static let memberWidth = 178.0
    static let lineHeight = 14.0
    static let titleHeight = 20.0

    public func layout(_ topology: Topology) -> Diagram {
        let model = ModelFacts(topology)
        var boxes: [Diagram.Box] = []
        var edges: [Diagram.Edge] = []
        let margin = Self.margin
        let gap = Self.gap

        // The subnets' contents first: their sizes set the columns'.
        struct SubnetDrawing {
            var box: Diagram.Box
            var members: [Diagram.Box]
        }
        var zones: [String: [SubnetDrawing]] = [:]
        for subnet in topology.subnets.sorted(by: {
            ($0.zone ?? "", model.isPublic($0) ? 0 : 1, $0.id) < ($1.zone ?? "", model.isPublic($1) ? 0 : 1, $1.id)
        }) {
            let members = memberBoxes(in: subnet, model: model)
            let rows = stride(from: 0, to: members.count, by: columns).map { Array(members[$0..<min(members.count, $0 + columns)]) }
            var placed: [Diagram.Box] = []
            var y = 0.0
            for row in rows {
                var x = 0.0
                for var member in row {
                    member.x = x
                    member.y = y
                    placed.append(member)
                    x += member.width + 10
                }
                y += (row.map(\.height).max() ?? 0) + 10
            }
            let contentWidth = rows.map { row in row.map(\.width).reduce(0, +) + Double(row.count - 1) * 10 }.max() ?? Self.memberWidth
            let header = [
                Diagram.Line(subnet.cidr.description + (subnet.zone.map { " · \($0)" } ?? "")),
                Diagram.Line(
                    "routes: \(model.routeTable(of: subnet)?.id ?? "none") · nacl: \(model.networkACL(of: subnet)?.id ?? "default")",
                    components: [model.routeTable(of: subnet)?.id, model.networkACL(of: subnet)?.id].compactMap { $0 }),
            ]
            let headerHeight = Self.titleHeight + Double(header.count) * Self.lineHeight + 12
            let width = max(contentWidth, Double(header.map(\.text.count).max() ?? 0) * 6.7, 260) + 20
            let height = headerHeight + max(y, 24) + 6
            let box = Diagram.Box(
                components: [subnet.id], kind: .subnet, x: 0, y: headerHeight, width: width, height: height,
                title: subnet.id + (subnet.name.map { " (\($0))" } ?? ""), lines: header, tags: [model.isPublic(subnet) ? "public" : "private"])
            zones[subnet.zone ?? "", default: []].append(SubnetDrawing(box: box, members: placed))
        }

        // The VPC: a band for load balancers, then the zones side by side.
        let vpcX = margin
        let vpcY = margin + 96
        let lbs = topology.loadBalancers.sorted { $0.id < $1.id }
        var y = vpcY + 40
        var lbBoxes: [Diagram.Box] = []
        var x = vpcX + gap
        for lb in lbs {
            let lines = [
                Diagram.Line(lb.scheme + (lb.type.map { " · \($0)" } ?? "")),
                Diagram.Line(lb.listeners.map { "\($0.port)" + ($0.targetPort.map { "→\($0)" } ?? "") }.joined(separator: " ")),
            ]
            let box = Diagram.Box(
                components: [lb.id], kind: .loadBalancer, x: x, y: y, width: Self.memberWidth, height: Self.titleHeight + 2 * Self.lineHeight + 10,
                title: lb.id, lines: lines, tags: lb.isInternetFacing ? ["internet-facing"] : [])
            lbBoxes.append(box)
            x += Self.memberWidth + gap
        }
        if !lbBoxes.isEmpty { y += (lbBoxes.map(\.height).max() ?? 0) + gap }
        var zoneX = vpcX + gap
        var vpcBottom = y
        var zoneBoxes: [Diagram.Box] = []
        // Subnets side by side within a zone when there are few zones, so a one-zone VPC is not one tall column.
        let perRow = zones.count == 1 ? 3 : (zones.count == 2 ? 2 : 1)
        for zone in zones.keys.sorted() {
            let drawings = zones[zone]!
            let columnWidth = drawings.map(\.box.width).max() ?? 280
            let across = max(1, min(perRow, drawings.count))
            var subnetY = y + 28
            var drawn: [Diagram.Box] = []
            for rowStart in stride(from: 0, to: drawings.count, by: across) {
                let row = drawings[rowStart..<min(drawings.count, rowStart + across)]
                let rowHeight = row.map(\.box.height).max() ?? 0
                for (column, drawing) in row.enumerated() {
                    var box = drawing.box
                    let headerHeight = box.y
                    box.x = zoneX + 10 + Double(column) * (columnWidth + gap)
                    box.y = subnetY
                    box.width = columnWidth
                    box.height = rowHeight
                    drawn.append(box)
                    for var member in drawing.members {
                        member.x += box.x + 10
                        member.y += box.y + headerHeight
                        drawn.append(member)
                    }
                }
                subnetY += rowHeight + gap
            }
            let zoneWidth = Double(across) * (columnWidth + gap) - gap + 20
            let zoneBox = Diagram.Box(
                components: [], kind: .zone, x: zoneX, y: y, width: zoneWidth, height: subnetY - y, title: zone.isEmpty ? "no zone" : zone,
                lines: [], tags: [])
            zoneBoxes.append(zoneBox)
            zoneBoxes.append(contentsOf: drawn)
            zoneX += zoneWidth + gap
            vpcBottom = max(vpcBottom, subnetY)
        }
        let vpcWidth = max(zoneX - vpcX, x - vpcX, 420)
        let vpc = topology.vpc
        let vpcBox = Diagram.Box(
            components: [vpc.id], kind: .vpc, x: vpcX, y: vpcY, width: vpcWidth, height: vpcBottom - vpcY + 8,
            title: vpc.id + (vpc.name.map { " (\($0))" } ?? ""),
            lines: [
                Diagram.Line(
                    (vpc.cidrBlocks.map(\.description) + [vpc.account.map { "account \($0)" }, vpc.region].compactMap { $0 }).joined(separator: " · ")
                )
            ], tags: [])

        // Outside: the internet band with the gateway, endpoints in a column on the right.
        let internet = Diagram.Box(
            components: ["internet"], kind: .internet, x: vpcX, y: margin, width: vpcWidth, height: 72, title: "internet", lines: [], tags: [])
        var igwBox: Diagram.Box?
        if let igw = topology.internetGateway {
            igwBox = Diagram.Box(
                components: [igw.id], kind: .internetGateway, x: vpcX + vpcWidth / 2 - 90, y: vpcY - 30, width: 180, height: 38,
                title: igw.id, lines: [Diagram.Line("internet gateway")], tags: [])
        }
        var endpointBoxes: [Diagram.Box] = []
        var endpointY = vpcY
        for endpoint in topology.endpoints.sorted(by: { $0.id < $1.id }) {
            let target = endpoint.url ?? endpoint.addresses?.map(\.description).joined(separator: ", ") ?? endpoint.prefixList ?? ""
            let box = Diagram.Box(
                components: [endpoint.id], kind: .endpoint, x: vpcX + vpcWidth + 48, y: endpointY, width: 200,
                height: Self.titleHeight + 2 * Self.lineHeight + 10, title: endpoint.id,
                lines: [Diagram.Line(endpoint.kind.rawValue), Diagram.Line(String(target.prefix(30)))], tags: [])
            endpointBoxes.append(box)
            endpointY += box.height + gap
        }

        boxes = [internet] + (igwBox.map { [$0] } ?? []) + [vpcBox] + lbBoxes + zoneBoxes + endpointBoxes
        var index: [String: Diagram.Box] = [:]
        for box in boxes { for component in box.components where index[component] == nil { index[component] = box } }

        // Paths: default routes, NATs' way out, listeners to their targets, endpoints by the subnets that use them.
        for subnet in topology.subnets.sorted(by: { $0.id < $1.id }) {
            guard let table = model.routeTable(of: subnet), let from = index[subnet.id] else { continue }
            for route in table.routes where route.destination?.prefixLength == 0 {
                guard let to = index[route.target] else { continue }
                edges.append(edge(from, to, kind: .route, label: nil))
            }
        }
        for nat in topology.nats.sorted(by: { $0.id < $1.id }) where !nat.isPrivate {
            guard let from = index[nat.id], let igw = igwBox else { continue }
            edges.append(edge(from, igw, kind: .egress, label: nat.elasticIp?.description))
        }
        for lb in lbs {
            guard let from = index[lb.id] else { continue }
            for target in lb.targets.sorted() { if let to = index[target] { edges.append(edge(from, to, kind: .listener, label: nil)) } }
            if lb.isInternetFacing, let igw = igwBox { edges.append(edge(igw, from, kind: .listener, label: nil)) }
        }
        for endpoint in topology.endpoints.sorted(by: { $0.id < $1.id }) {
            guard let to = index[endpoint.id] else { continue }
            let users = model.subnetsUsing(endpoint)
            for subnet in users.sorted() { if let from = index[subnet] { edges.append(edge(from, to, kind: .endpoint, label: nil)) } }
        }
        let width = max(internet.x + internet.width, (endpointBoxes.map { $0.x + $0.width }.max() ?? 0)) + margin
        let height = max(vpcBox.y + vpcBox.height, endpointY) + margin
        return Diagram(width: width, height: height, title: topology.name ?? vpc.id, boxes: boxes, edges: edges)
    }

    /// The boxes inside a subnet, before placement: NATs, bastions and instances with a static-IP ENI first, then
    /// the other instances by id, which become one box of counts past `collapseAbove`.
    private func memberBoxes(in subnet: Subnet, model: ModelFacts) -> [Diagram.Box] {
        var special: [Diagram.Box] = []
        var ordinary: [Diagram.Box] = []
        for nat in model.gateways(in: subnet.id) {
            let lines = [
                Diagram.Line("NAT gateway" + (nat.isPrivate ? " (private)" : "")),
                Diagram.Line([nat.privateIp.map { "\($0)" }, nat.elasticIp.map { "EIP \($0)" }].compactMap { $0 }.joined(separator: " · ")),
            ]
            special.append(member(components: [nat.id], kind: .nat, title: nat.id, lines: lines, tags: ["nat"]))
        }
        for instance in model.instances(in: subnet.id) {
            var components = [instance.id]
            var tags: [String] = []
            var lines: [Diagram.Line] = []
            if let nat = model.natOfInstance[instance.id] {
                components.append(nat.id)
                tags.append("nat-instance")
                lines.append(Diagram.Line("NAT \(nat.id)" + (nat.elasticIp.map { " · EIP \($0)" } ?? ""), components: [nat.id], tags: ["nat"]))
            }
            if model.isBastion(instance) {
                tags.append("bastion")
                lines.append(Diagram.Line("bastion"))
            }
            for interface in instance.interfaces.sorted(by: { ($0.deviceIndex ?? 0, $0.id) < ($1.deviceIndex ?? 0, $1.id) }) {
                let isStatic = (interface.deviceIndex ?? 0) > 0 || interface.elasticIp != nil
                var text = "\(interface.id) \(interface.privateIp)"
                if let eip = interface.elasticIp { text += " EIP \(eip)" } else if let ip = interface.publicIp { text += " \(ip)" }
                if interface.subnet != subnet.id { text += " (\(interface.subnet))" }
                lines.append(Diagram.Line(text, components: [interface.id], tags: isStatic ? ["eni", "static"] : ["eni"]))
            }
            let groups = Array(Set(instance.interfaces.flatMap(\.securityGroups))).sorted()
            if !groups.isEmpty { lines.append(Diagram.Line(groups.joined(separator: " "), components: groups, tags: ["groups"])) }
            let box = member(
                components: components, kind: .instance, title: instance.id + (instance.name.map { " (\($0))" } ?? ""), lines: lines, tags: tags)
            // NATs, bastions and instances with a static-IP ENI stay visible when a subnet collapses.
            let hasStatic = lines.contains { $0.tags.contains("static") }
            if tags.isEmpty && !hasStatic { ordinary.append(box) } else { special.append(box) }
        }
        guard special.count + ordinary.count > collapseAbove, !ordinary.isEmpty else { return special + ordinary }
        let members = ordinary.map(\.components[0])
        let collapsed = member(
            components: ["collapsed:\(subnet.id)"], kind: .collapsed, title: "\(members.count) instances",
            lines: [Diagram.Line("live ?, silent ?", tags: ["counts"]), Diagram.Line("blamed 0", tags: ["blamed-count"])], tags: ["collapsed"])
        var box = collapsed
        box.members = members
        return special + [box]
    }

    private func member(components: [String], kind: Diagram.Box.Kind, title: String, lines: [Diagram.Line], tags: [String]) -> Diagram.Box {
        Diagram.Box(
            components: components, kind: kind, x: 0, y: 0, width: Self.width(title: title, lines: lines),
            height: Self.titleHeight + Double(lines.count) * Self.lineHeight + 8, title: title, lines: lines, tags: tags)
    }

    /// Wide enough for the longest line (11 px monospace is about 6.7 px a character), within bounds.
    static func width(title: String, lines: [Diagram.Line]) -> Double {
        let characters = max(Double(title.count) * 7.4, lines.map { Double($0.text.count) * 6.7 }.max() ?? 0)
        return min(max(memberWidth, characters + 18), 340)
    }

    private func edge(_ from: Diagram.Box, _ to: Diagram.Box, kind: Diagram.Edge.Kind, label: String?) -> Diagram.Edge {
        // From the nearer side of each box: below or above when they are stacked, else the sides.
        let fromCenter = Diagram.Point(x: from.x + from.width / 2, y: from.y + from.height / 2)
        let toCenter = Diagram.Point(x: to.x + to.width / 2, y: to.y + to.height / 2)
        let start: Diagram.Point
        let end: Diagram.Point
        if to.x >= from.x + from.width {
            start = Diagram.Point(x: from.x + from.width, y: fromCenter.y)
            end = Diagram.Point(x: to.x, y: toCenter.y)
        } else if to.x + to.width <= from.x {
            start = Diagram.Point(x: from.x, y: fromCenter.y)
            end = Diagram.Point(x: to.x + to.width, y: toCenter.y)
        } else if to.y + to.height <= from.y {
            start = Diagram.Point(x: fromCenter.x, y: from.y)
            end = Diagram.Point(x: toCenter.x, y: to.y + to.height)
        } else {
            start = Diagram.Point(x: fromCenter.x, y: from.y + from.height)
            end = Diagram.Point(x: toCenter.x, y: to.y)
        }
        return Diagram.Edge(from: from.components[0], to: to.components[0], kind: kind, label: label, points: [start, end])
    }
}

/// What the layout asks of the model: route tables and NACLs per subnet (explicit or main/default), public subnets,
/// instances by primary subnet, NATs, bastions, endpoint users.
struct ModelFacts {
    let topology: Topology
    var natOfInstance: [String: NAT] = [:]
    private var tableBySubnet: [String: RouteTable] = [:]
    private var mainTable: RouteTable?
    private var aclBySubnet: [String: NetworkACL] = [:]
    private var defaultACL: NetworkACL?
    private var instancesBySubnet: [String: [Instance]] = [:]
    private var subnetOfInstance: [String: String] = [:]

    init(_ topology: Topology) {
        self.topology = topology
        for nat in topology.nats { if let instance = nat.instance { natOfInstance[instance] = nat } }
        let tables = Dictionary(topology.routeTables.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        for table in topology.routeTables {
            if table.isMain && mainTable == nil { mainTable = table }
            for subnet in table.subnets ?? [] { tableBySubnet[subnet] = table }
        }
        let acls = Dictionary(topology.networkAcls.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        for acl in topology.networkAcls {
            if acl.isDefault && defaultACL == nil { defaultACL = acl }
            for subnet in acl.subnets ?? [] { aclBySubnet[subnet] = acl }
        }
        for subnet in topology.subnets {
            if let id = subnet.routeTable, let table = tables[id] { tableBySubnet[subnet.id] = table }
            if let id = subnet.networkAcl, let acl = acls[id] { aclBySubnet[subnet.id] = acl }
        }
        for instance in topology.instances.sorted(by: { $0.id < $1.id }) {
            guard let primary = instance.interfaces.min(by: { ($0.deviceIndex ?? 0) < ($1.deviceIndex ?? 0) }) else { continue }
            instancesBySubnet[primary.subnet, default: []].append(instance)
            subnetOfInstance[instance.id] = primary.subnet
        }
    }

    func routeTable(of subnet: Subnet) -> RouteTable? { tableBySubnet[subnet.id] ?? mainTable }
    func networkACL(of subnet: Subnet) -> NetworkACL? { aclBySubnet[subnet.id] ?? defaultACL }
    func instances(in subnet: String) -> [Instance] { instancesBySubnet[subnet] ?? [] }
    func gateways(in subnet: String) -> [NAT] { topology.nats.filter { $0.kind != .instance && $0.subnet == subnet }.sorted { $0.id < $1.id } }

    /// A subnet is public when its route table sends somewhere through the internet gateway.
    func isPublic(_ subnet: Subnet) -> Bool {
        guard let table = routeTable(of: subnet) else { return false }
        let igw = topology.internetGateway?.id
        return table.routes.contains { $0.target == igw || $0.target.hasPrefix("igw-") }
    }

    func isBastion(_ instance: Instance) -> Bool {
        (instance.roles ?? []).contains("bastion") || instance.id.contains("bastion") || (instance.name ?? "").lowercased().contains("bastion")
    }

    /// The subnets of the instances an endpoint names (`usedBy`: instance ids or `role:NAME`); every private subnet
    /// with instances when it names none.
    func subnetsUsing(_ endpoint: Endpoint) -> Set<String> {
        guard let users = endpoint.usedBy, !users.isEmpty else {
            return Set(topology.subnets.filter { !isPublic($0) && !(instancesBySubnet[$0.id] ?? []).isEmpty }.map(\.id))
        }
        var subnets: Set<String> = []
        for instance in topology.instances {
            let selected = users.contains(instance.id) || (instance.roles ?? []).contains { users.contains("role:\($0)") }
            if selected, let subnet = subnetOfInstance[instance.id] { subnets.insert(subnet) }
        }
        return subnets
    }
}
