import PlumbWire
import Synchronization

/// A one-slot signal between tasks: `signal()` wakes the waiter, or the next `wait` if nobody waits now.
public final class Wakeup: Sendable {
    private struct State {
        var signalled = false
        var waiter: CheckedContinuation<Bool, Never>?
    }

    private let state = Mutex(State())

    /// An unsignalled wakeup.
    public init() {}

    /// Wakes the waiter (or the next one).
    public func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.signalled = true
            return nil
        }
        waiter?.resume(returning: true)
    }

    /// Waits up to `duration`; true when signalled, false on timeout or cancellation. One waiter at a time.
    public func wait(for duration: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                try? await Task.sleep(for: duration)
                return false
            }
            group.addTask { await self.waitForSignal() }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    private func waitForSignal() async -> Bool {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let immediate = state.withLock { state -> Bool? in
                    if state.signalled {
                        state.signalled = false
                        return true
                    }
                    if Task.isCancelled { return false }
                    state.waiter = continuation
                    return nil
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Bool, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: false)
        }
    }
}

/// The agent's current identity, shared by the discovery loop, the registration and the responder.
final class IdentityBox: Sendable {
    private let state: Mutex<AgentIdentity>

    init(_ identity: AgentIdentity) { state = Mutex(identity) }

    var value: AgentIdentity {
        get { state.withLock { $0 } }
        set { state.withLock { $0 = newValue } }
    }
}
