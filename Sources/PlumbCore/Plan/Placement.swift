extension Network {
    /// The model instance an agent runs on: by instance id, else by one of its ENI ids, else by one of its private
    /// addresses. Nil when the model has no such instance.
    public func instanceIndex(instanceId: String, interfaceIds: [String], addresses: [IPv4Address]) -> Int? {
        if let index = instances.firstIndex(where: { $0.id == instanceId }) { return index }
        for id in interfaceIds {
            if let interface = interfaces.first(where: { $0.id == id }), case .instance(let owner) = interface.owner { return owner }
        }
        for address in addresses {
            if let interface = interfaces.first(where: { $0.privateIps.contains(address) }), case .instance(let owner) = interface.owner {
                return owner
            }
        }
        return nil
    }

    /// ENIs an agent reports on its instance that the model attaches to another instance (by ENI id, or by a
    /// private address the model gives to another instance's ENI).
    public func placementDrift(agentId: String, instance: Int, interfaceIds: [String?], addresses: [[IPv4Address]]) -> [InterfacePlacementDrift] {
        var drift: [InterfacePlacementDrift] = []
        for (position, id) in interfaceIds.enumerated() {
            var modelInterface: Interface?
            if let id { modelInterface = interfaces.first { $0.id == id } }
            if modelInterface == nil, position < addresses.count {
                modelInterface = interfaces.first { candidate in addresses[position].contains { candidate.privateIps.contains($0) } }
            }
            guard let modelInterface, case .instance(let owner) = modelInterface.owner, owner != instance else { continue }
            drift.append(
                InterfacePlacementDrift(
                    interface: modelInterface.id, expectedInstance: instances[owner].id, observedInstance: instances[instance].id, agentId: agentId))
        }
        return drift
    }
}
