extension Network {
    /// The class that stands for "the internet": the addresses no block of the model names (other than
    /// `0.0.0.0/0`); when the model names every internet address, its largest class. Nil only when nothing is left
    /// of the internet (the VPC and its peers cover all of it).
    public var arbitraryInternetClass: InternetClass? {
        internetClasses.isEmpty ? nil : internetClasses[arbitraryInternetClassIndex]
    }

    /// What `internet` resolves to: the representative of ``arbitraryInternetClass``, an address outside every
    /// block the model names, labelled `internet`.
    public var internetParty: Party {
        .external(arbitraryInternetClass?.representative ?? Network.internetAddress, .internet, label: "internet")
    }

    /// The representative of internet class `index`, labelled `internet` for the arbitrary class and
    /// `internet 198.51.100.0/24` for the others.
    public func internetParty(ofClass index: Int) -> Party {
        let internetClass = internetClasses[index]
        let label = index == arbitraryInternetClassIndex ? "internet" : "internet \(internetClass.description)"
        return .external(internetClass.representative, .internet, label: label)
    }

    /// One party per internet class, in the order of ``internetClasses``.
    public var internetParties: [Party] {
        internetClasses.isEmpty ? [internetParty] : internetClasses.indices.map { internetParty(ofClass: $0) }
    }

    /// Explains a flow with `internet` at exactly one end, as `plumb explain` does: ``Explanation/verdict`` and the
    /// hops are those of the arbitrary internet address (what "from the internet" means), and
    /// ``Explanation/internetClasses`` holds the verdict for every class of internet addresses the model tells
    /// apart, summed up in ``Explanation/internetSummary``. With `internet` at neither or both ends, the same as
    /// ``explain(from:to:port:protocol:)`` without classes.
    public func explainInternet(from: String, to: String, port: Int, protocol proto: IPProtocol) throws(ExplainError) -> Explanation {
        let inbound = from == "internet"
        var explanation = try explainNamed(from: from, to: to, port: port, protocol: proto)
        guard inbound != (to == "internet") else { return explanation }
        let other = try resolve(inbound ? to : from, role: inbound ? "destination" : "source")
        // Rules the arbitrary address passed; a class allowed by others is allowed because of those.
        let baseline = Set(explanation.hops.filter(Self.isRuleHop).map(Self.ruleText))
        var verdicts: [InternetClassVerdict] = []
        verdicts.reserveCapacity(internetClasses.count)
        for (index, internetClass) in internetClasses.enumerated() {
            let arbitrary = index == arbitraryInternetClassIndex
            let result: Explanation
            if arbitrary {
                result = explanation
            } else if inbound {
                let party = internetParty(ofClass: index)
                result = try explain(from: party, to: IPv4Address(to) == nil ? addressed(other, from: party) : other, port: port, protocol: proto)
            } else {
                result = try explain(from: other, to: internetParty(ofClass: index), port: port, protocol: proto)
            }
            let allowedBy =
                arbitrary || result.verdict == .blocked
                ? []
                : result.hops.filter {
                    Self.isRuleHop($0) && !baseline.contains(Self.ruleText($0)) && namesRange(holding: internetClass.representative, $0)
                }.map(Self.ruleText)
            verdicts.append(
                InternetClassVerdict(
                    cidrs: internetClass.cidrs, description: internetClass.description, representative: internetClass.representative,
                    arbitrary: arbitrary, verdict: result.verdict, blockedBy: result.blockedBy, allowedBy: allowedBy))
        }
        explanation.internetClasses = verdicts
        explanation.internetSummary = Self.internetSummary(verdicts, way: inbound ? "from" : "to")
        return explanation
    }

    /// True when the rule of `hop` matches on a block narrower than `0.0.0.0/0` that holds `address`: a rule
    /// about a range of the internet rather than about all of it.
    private func namesRange(holding address: IPv4Address, _ hop: Hop) -> Bool {
        func narrow(_ blocks: [CIDR]) -> Bool { blocks.contains { $0.prefixLength > 0 && $0.contains(address) } }
        guard let rule = hop.rule else { return false }
        switch hop.componentType {
        case "security-group":
            // `ingress[2]` / `egress[0]`.
            guard let group = securityGroupById[hop.component], let open = rule.firstIndex(of: "["),
                let position = Int(rule[rule.index(after: open)...].dropLast())
            else { return false }
            let rules = rule.hasPrefix("ingress") ? securityGroups[group].ingress : securityGroups[group].egress
            guard rules.indices.contains(position) else { return false }
            switch rules[position].peer {
            case .cidr(let block): return narrow([block])
            case .prefixList(let blocks): return narrow(blocks)
            case .group: return false
            }
        case "network-acl":
            guard let number = Int(rule.dropFirst("rule ".count)), let acl = acls.first(where: { $0.id == hop.component }) else { return false }
            let rules = hop.check == "nacl-ingress" ? acl.ingress : acl.egress
            return narrow(rules.filter { $0.number == number }.map(\.cidr))
        case "route-table":
            // `203.0.113.0/24 -> pcx-1` / `pl-s3 -> vpce-1`.
            guard let destination = rule.split(separator: " ").first else { return false }
            return narrow(CIDR(destination).map { [$0] } ?? prefixListById[String(destination)] ?? [])
        default:
            return false
        }
    }

    /// A hop that passed the flow by a rule: a security group, NACL or route rule.
    private static func isRuleHop(_ hop: Hop) -> Bool {
        hop.outcome == .pass && hop.rule != nil && ["security-group", "network-acl", "route-table"].contains(hop.componentType)
    }

    /// `sg-bastion ingress[0]`, `acl-public rule 120`, `rtb-app 203.0.113.0/24 -> pcx-1`.
    private static func ruleText(_ hop: Hop) -> String { "\(hop.component) \(hop.rule ?? "")" }

    /// The classes in one sentence: the arbitrary verdict, and the classes that differ from it with why.
    static func internetSummary(_ verdicts: [InternetClassVerdict], way: String) -> String {
        guard let arbitrary = verdicts.first(where: \.arbitrary) else { return "" }
        let differing = verdicts.filter { !$0.arbitrary && $0.verdict != arbitrary.verdict }
        guard !differing.isEmpty else {
            let named = verdicts.count - 1
            let same =
                switch named {
                case 0: ""
                case 1: " (the one range the model names gets the same verdict)"
                default: " (all \(named) ranges the model names get the same verdict)"
                }
            return "\(arbitrary.verdict.rawValue) \(way) every internet address\(same)"
        }
        func item(_ verdict: InternetClassVerdict) -> String {
            let why =
                verdict.verdict == .allowed
                ? verdict.allowedBy.joined(separator: ", ")
                : verdict.blockedBy.map { "blocked by \($0.component)\($0.rule.map { " \($0)" } ?? "")" } ?? ""
            return why.isEmpty ? verdict.description : "\(verdict.description) (\(why))"
        }
        var shown = differing.prefix(5).map(item)
        if differing.count > 5 { shown.append("\(differing.count - 5) more") }
        switch arbitrary.verdict {
        case .blocked: return "allowed \(way) \(joinedWithAnd(shown)) only; blocked \(way) the rest of the internet"
        case .allowed: return "allowed \(way) the internet, except \(way) \(joinedWithAnd(shown)), where it is blocked"
        }
    }
}
