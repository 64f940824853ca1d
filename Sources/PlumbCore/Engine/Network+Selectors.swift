extension Network {
    /// Expands a selector used by intents and endpoints into parties:
    /// `internet`; `instances` (every instance); `role:NAME`; `subnet:ID-OR-NAME`; `private` / `public`
    /// (instances whose primary interface is in a private / public subnet); or anything ``resolve(_:role:)`` takes.
    /// Returns nil for a selector that names nothing.
    public func select(_ selector: String) -> [Party]? {
        func primaries(_ include: (InstanceInfo, Interface) -> Bool) -> [Party] {
            instances.compactMap { instance in
                guard let primary = instance.interfaces.first, include(instance, interfaces[primary]) else { return nil }
                return .interface(primary, address: interfaces[primary].privateIp)
            }
        }
        switch selector {
        case "instances", "*": return primaries { _, _ in true }
        case "private": return primaries { _, eni in !subnets[eni.subnet].isPublic }
        case "public": return primaries { _, eni in subnets[eni.subnet].isPublic }
        default: break
        }
        if selector.hasPrefix("role:") {
            let role = String(selector.dropFirst(5))
            guard instances.contains(where: { $0.roles.contains(role) }) else { return nil }
            return primaries { instance, _ in instance.roles.contains(role) }
        }
        if selector.hasPrefix("subnet:") {
            let key = String(selector.dropFirst(7))
            guard let subnet = subnets.firstIndex(where: { $0.id == key || $0.label == key }) else { return nil }
            return primaries { _, eni in eni.subnet == subnet }
        }
        return (try? resolve(selector)).map { [$0] }
    }
}
