import PlumbProbes
import PlumbWire
import Synchronization

/// Runs the probes of the current plan, each on its own interval, and hands every result to `emit`.
///
/// - Start times are spread: each probe first runs at a random offset within its interval, and every interval gets
///   ±10 % jitter, so agents and probes never fire in synchronised bursts.
/// - `maxConcurrency` bounds probes in flight; `maxProbesPerSecond` paces starts across all probes.
/// - `apply` swaps plans without a restart: removed or changed probes are cancelled (a result of a removed probe is
///   not reported), new ones start, unchanged ones keep their rhythm.
public final class Scheduler: Sendable {
    private struct Running {
        var spec: ProbeSpec
        var task: Task<Void, Never>
    }

    private let runner: ProbeRunner
    private let emit: @Sendable (ProbeResult) -> Void
    private let running = Mutex<[String: Running]>([:])
    private let gate: AsyncGate
    private let pacer: Pacer

    /// A scheduler that runs probes with `runner` and reports to `emit`.
    public init(runner: ProbeRunner = ProbeRunner(), settings: PlanSettings = PlanSettings(), emit: @escaping @Sendable (ProbeResult) -> Void) {
        self.runner = runner
        self.emit = emit
        gate = AsyncGate(capacity: settings.maxConcurrency)
        pacer = Pacer(perSecond: settings.maxProbesPerSecond)
    }

    /// The ids of the probes running now.
    public var probeIds: Set<String> { running.withLock { Set($0.keys) } }

    /// Replaces the plan's probes and limits.
    public func apply(_ plan: Plan) {
        gate.setCapacity(plan.settings.maxConcurrency)
        pacer.setRate(plan.settings.maxProbesPerSecond)
        let wanted = Dictionary(plan.probes.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        running.withLock { running in
            for (id, current) in running where wanted[id] != current.spec {
                current.task.cancel()
                running[id] = nil
            }
            for (id, spec) in wanted where running[id] == nil {
                running[id] = Running(spec: spec, task: start(spec))
            }
        }
    }

    /// Cancels every probe and waits until they have stopped.
    public func stop() async {
        let tasks = running.withLock { running -> [Task<Void, Never>] in
            defer { running = [:] }
            return running.values.map(\.task)
        }
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
    }

    private func start(_ spec: ProbeSpec) -> Task<Void, Never> {
        // One task per probe, owned by `running` and cancelled by `apply`/`stop`: an edge of the structured world.
        Task { [runner, emit, gate, pacer] in
            let clock = ContinuousClock()
            let interval = Duration.milliseconds(max(100, spec.intervalMs))
            var generator = SystemRandomNumberGenerator()
            var next = clock.now + .milliseconds(Int.random(in: 0..<max(1, spec.intervalMs), using: &generator))
            while !Task.isCancelled {
                do {
                    try await clock.sleep(until: next)
                    try await pacer.wait()
                    try await gate.acquire()
                } catch {
                    return
                }
                let result = await runner.run(spec)
                gate.release()
                if Task.isCancelled { return }
                emit(result)
                let jitter = Double.random(in: -0.1...0.1, using: &generator)
                next = next + interval * (1 + jitter)
                let now = clock.now
                if next < now { next = now + interval * Double.random(in: 0...0.1, using: &generator) }  // overran: skip, don't burst
            }
        }
    }
}

/// A counting semaphore for tasks, with cancellable waits and a capacity that can change.
public final class AsyncGate: Sendable {
    private struct State {
        var capacity: Int
        var inUse = 0
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
        var nextId: UInt64 = 0
    }

    private let state: Mutex<State>

    /// A gate letting `capacity` holders through at once.
    public init(capacity: Int) { state = Mutex(State(capacity: max(1, capacity))) }

    /// Changes the capacity; waiters are let through if there is room now.
    public func setCapacity(_ capacity: Int) {
        let woken = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.capacity = max(1, capacity)
            return Self.admit(&state)
        }
        for continuation in woken { continuation.resume() }
    }

    /// Waits for a slot; throws `CancellationError` if the task is cancelled first.
    public func acquire() async throws {
        let id = state.withLock { state -> UInt64 in
            state.nextId += 1
            return state.nextId
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let admitted = state.withLock { state -> Bool in
                    if Task.isCancelled { return false }
                    if state.inUse < state.capacity && state.waiters.isEmpty {
                        state.inUse += 1
                        return true
                    }
                    state.waiters.append((id, continuation))
                    return false
                }
                if admitted {
                    continuation.resume()
                } else if Task.isCancelled && !state.withLock({ $0.waiters.contains { $0.id == id } }) {
                    continuation.resume(throwing: CancellationError())
                }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index).continuation
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// Returns a slot.
    public func release() {
        let woken = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.inUse -= 1
            return Self.admit(&state)
        }
        for continuation in woken { continuation.resume() }
    }

    private static func admit(_ state: inout State) -> [CheckedContinuation<Void, any Error>] {
        var woken: [CheckedContinuation<Void, any Error>] = []
        while state.inUse < state.capacity && !state.waiters.isEmpty {
            state.inUse += 1
            woken.append(state.waiters.removeFirst().continuation)
        }
        return woken
    }
}

/// Paces starts to at most `perSecond`, evenly spaced (a virtual-time scheduler: each caller gets the next free slot).
public final class Pacer: Sendable {
    private struct State {
        var spacing: Duration
        var nextSlot: ContinuousClock.Instant
    }

    private let state: Mutex<State>

    /// A pacer allowing `perSecond` starts per second.
    public init(perSecond: Double) {
        state = Mutex(State(spacing: Self.spacing(perSecond), nextSlot: ContinuousClock.now))
    }

    /// Changes the rate.
    public func setRate(_ perSecond: Double) { state.withLock { $0.spacing = Self.spacing(perSecond) } }

    /// Waits for the caller's slot; throws `CancellationError` when cancelled.
    public func wait() async throws {
        let now = ContinuousClock.now
        let slot = state.withLock { state -> ContinuousClock.Instant in
            let slot = max(now, state.nextSlot)
            state.nextSlot = slot + state.spacing
            return slot
        }
        if slot > now { try await Task.sleep(until: slot, clock: .continuous) }
    }

    private static func spacing(_ perSecond: Double) -> Duration {
        .nanoseconds(Int64(1e9 / max(0.001, perSecond)))
    }
}
