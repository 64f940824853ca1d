/// One network interface (ENI) of the agent's instance.
public struct InterfaceInfo: Codable, Sendable, Hashable {
    /// MAC address, lowercase, colon separated.
    public var mac: String
    /// The ENI id (from IMDS or configuration).
    public var interfaceId: String?
    /// Kernel interface name, when the agent could match the MAC to one.
    public var name: String?
    /// The ENI's device index.
    public var deviceNumber: Int?
    /// The subnet the ENI is in.
    public var subnetId: String?
    /// The VPC the ENI is in.
    public var vpcId: String?
    /// Private IPv4 addresses, primary first.
    public var privateIPv4s: [String]
    /// Public or Elastic IPv4 addresses mapped to this ENI.
    public var publicIPv4s: [String]
    /// Security group ids attached to the ENI.
    public var securityGroupIds: [String]

    /// Creates an interface.
    public init(
        mac: String, interfaceId: String? = nil, name: String? = nil, deviceNumber: Int? = nil, subnetId: String? = nil,
        vpcId: String? = nil, privateIPv4s: [String] = [], publicIPv4s: [String] = [], securityGroupIds: [String] = []
    ) {
        self.mac = mac
        self.interfaceId = interfaceId
        self.name = name
        self.deviceNumber = deviceNumber
        self.subnetId = subnetId
        self.vpcId = vpcId
        self.privateIPv4s = privateIPv4s
        self.publicIPv4s = publicIPv4s
        self.securityGroupIds = securityGroupIds
    }
}

/// Where an agent's identity came from.
public enum DiscoverySource: String, Codable, Sendable {
    /// EC2 instance metadata (IMDSv2).
    case imds
    /// The kernel's interfaces plus configuration.
    case local
}

/// The agent's instance as it sees itself.
public struct AgentIdentity: Codable, Sendable, Hashable {
    /// The EC2 instance id (or the configured stand-in).
    public var instanceId: String
    /// Host name.
    public var hostname: String?
    /// Availability zone.
    public var zone: String?
    /// Region.
    public var region: String?
    /// The instance's interfaces, by device number then MAC.
    public var interfaces: [InterfaceInfo]
    /// Where this came from.
    public var source: DiscoverySource

    /// Creates an identity.
    public init(
        instanceId: String, hostname: String? = nil, zone: String? = nil, region: String? = nil, interfaces: [InterfaceInfo],
        source: DiscoverySource
    ) {
        self.instanceId = instanceId
        self.hostname = hostname
        self.zone = zone
        self.region = region
        self.interfaces = interfaces
        self.source = source
    }
}

/// `POST /v1/agents/register`, authorised by the enrollment token (first time) or the agent's own token.
public struct Registration: Codable, Sendable, Hashable {
    /// Document version; `1`.
    public var version: Int
    /// The id the agent asks for (configured); the collector assigns the instance id otherwise.
    public var agentId: String?
    /// What the agent discovered.
    public var identity: AgentIdentity
    /// The agent's software version.
    public var agentVersion: String
    /// Probe kinds this agent can run here (`icmp` is missing without a way to send ICMP).
    public var capabilities: [ProbeKind]
    /// The responder's port (UDP and TCP).
    public var responderPort: Int?
    /// On EC2: the instance identity document and its signature from IMDS, which the collector verifies against
    /// AWS's certificate for the region (docs/security.md).
    public var instanceIdentity: InstanceIdentityProof?
    /// A secret the agent made at its first start and keeps in its spool directory (`agent-key`, mode 0600), sent
    /// with every registration. The collector keeps its hash: while the agent that registered an instance is live,
    /// a registration of that instance with another key is refused (`identity_conflict`), even with a valid identity
    /// document, which anyone who saw one can replay.
    public var agentKey: String?

    /// Creates a registration.
    public init(
        version: Int = 1, agentId: String? = nil, identity: AgentIdentity, agentVersion: String, capabilities: [ProbeKind],
        responderPort: Int?, instanceIdentity: InstanceIdentityProof? = nil, agentKey: String? = nil
    ) {
        self.instanceIdentity = instanceIdentity
        self.agentKey = agentKey
        self.version = version
        self.agentId = agentId
        self.identity = identity
        self.agentVersion = agentVersion
        self.capabilities = capabilities
        self.responderPort = responderPort
    }
}

/// What IMDS says about the instance, signed by AWS: `/latest/dynamic/instance-identity/document` (JSON, sent
/// exactly as read) and `/latest/dynamic/instance-identity/signature` (base64 RSA-SHA256 of the document).
public struct InstanceIdentityProof: Codable, Sendable, Hashable {
    /// The document, byte for byte as IMDS served it.
    public var document: String
    /// The base64 signature.
    public var signature: String

    /// Creates a proof.
    public init(document: String, signature: String) {
        self.document = document
        self.signature = signature
    }
}

/// The collector's answer to a registration.
public struct RegistrationResponse: Codable, Sendable, Hashable {
    /// The highest report sequence the collector has stored for this agent, so an agent that lost its spool
    /// continues after it instead of reusing numbers the collector would take for replays.
    public var lastSequence: Int64?
    /// The agent's id from now on.
    public var agentId: String
    /// The bearer token for the agent routes (returned once; the collector keeps only its hash).
    public var agentToken: String
    /// Milliseconds between plan fetches the collector asks for.
    public var planRefreshMs: Int?

    /// Creates a response.
    public init(agentId: String, agentToken: String, planRefreshMs: Int? = nil, lastSequence: Int64? = nil) {
        self.agentId = agentId
        self.agentToken = agentToken
        self.planRefreshMs = planRefreshMs
        self.lastSequence = lastSequence
    }
}

/// What the agent had to drop since its spool was created: cumulative, carried by every report.
public struct DropCounters: Codable, Sendable, Hashable {
    /// Times results were dropped: a batch evicted from a full spool, or results dropped from memory while the spool
    /// could not be written.
    public var batches: Int
    /// Results in those batches.
    public var results: Int

    /// Creates counters.
    public init(batches: Int = 0, results: Int = 0) {
        self.batches = batches
        self.results = results
    }
}

/// `POST /v1/agents/{id}/reports`: one batch of results.
public struct Report: Codable, Sendable, Hashable {
    /// Document version; `1`.
    public var version: Int
    /// The reporting agent.
    public var agentId: String
    /// Monotonically increasing per agent, starting at 1, with no gaps except batches dropped from a full spool.
    public var sequence: Int64
    /// When the batch was closed, milliseconds since the Unix epoch.
    public var createdAtMs: Int64
    /// The plan the results were produced under.
    public var planId: String?
    /// What the spool dropped so far (cumulative).
    public var dropped: DropCounters
    /// The agent's current identity when it changed since the previous batch (an ENI came or went, an address moved).
    public var identity: AgentIdentity?
    /// The results, in the order the probes finished.
    public var results: [ProbeResult]
    /// Batches waiting in the agent's spool when this one was sent, this one included (optional; agents since issue 13).
    public var spoolBatches: Int?

    /// Creates a report.
    public init(
        version: Int = 1, agentId: String, sequence: Int64, createdAtMs: Int64, planId: String? = nil, dropped: DropCounters = DropCounters(),
        identity: AgentIdentity? = nil, results: [ProbeResult], spoolBatches: Int? = nil
    ) {
        self.spoolBatches = spoolBatches
        self.version = version
        self.agentId = agentId
        self.sequence = sequence
        self.createdAtMs = createdAtMs
        self.planId = planId
        self.dropped = dropped
        self.identity = identity
        self.results = results
    }
}

/// The collector's answer to a report.
public struct ReportAcknowledgement: Codable, Sendable, Hashable {
    /// The sequence acknowledged.
    public var sequence: Int64
    /// False when the batch had been stored before (a replay): acknowledged all the same.
    public var stored: Bool

    /// Creates an acknowledgement.
    public init(sequence: Int64, stored: Bool) {
        self.sequence = sequence
        self.stored = stored
    }
}

/// The JSON error body of every 4xx/5xx answer.
public struct ErrorBody: Codable, Sendable, Hashable {
    /// The error.
    public struct Detail: Codable, Sendable, Hashable {
        /// Machine-readable code.
        public var code: String
        /// What went wrong and what to do.
        public var message: String
        /// The field at fault, if one is.
        public var field: String?
        /// For `identity_refused`: which check failed (`source_address`, `identity_signature`, `instance_in_use`, …).
        public var reason: String?

        /// Creates a detail.
        public init(code: String, message: String, field: String? = nil, reason: String? = nil) {
            self.code = code
            self.message = message
            self.field = field
            self.reason = reason
        }
    }

    /// The error.
    public var error: Detail

    /// Creates an error body.
    public init(code: String, message: String, field: String? = nil, reason: String? = nil) {
        error = Detail(code: code, message: message, field: field, reason: reason)
    }
}
