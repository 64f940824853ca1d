import Synchronization

/// What the collector re-reads on SIGHUP: hooks that each component adds (the listener's TLS certificate, …), run in
/// the order they were added by `reload()`.
///
/// `buildApplication` adds its own hooks to the reloader it is given; `plumb-collector` calls `reload()` on SIGHUP.
public final class CollectorReloader: Sendable {
    /// One thing to re-read; it logs its own outcome and never stops the collector.
    public typealias Hook = @Sendable () async -> Void

    private let hooks = Mutex<[(name: String, hook: Hook)]>([])

    /// A reloader with no hooks.
    public init() {}

    /// Adds `hook`, run by every later `reload()`; `name` says what it reloads.
    public func add(_ name: String, _ hook: @escaping Hook) {
        hooks.withLock { $0.append((name, hook)) }
    }

    /// The names of the hooks, in the order they run.
    public var names: [String] { hooks.withLock { $0.map(\.name) } }

    /// Runs every hook, one after the other; returns when they are done. Hooks may run concurrently with themselves
    /// when `reload()` is called again before it returns (`plumb-collector` awaits one before starting the next).
    public func reload() async {
        for hook in hooks.withLock({ $0.map(\.hook) }) { await hook() }
    }
}
