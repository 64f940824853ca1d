import PlumbWire

/// A registration for an agent on instance `instance`.
func registration(_ instance: String) -> Registration {
    Registration(
        agentId: instance, identity: AgentIdentity(instanceId: instance, interfaces: [], source: .local), agentVersion: "test",
        capabilities: [.udpEcho, .tcp, .http], responderPort: 7471)
}
