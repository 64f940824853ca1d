import CPlumbSys
import Glibc
import Synchronization

/// Monotonic time in nanoseconds.
@inline(__always) public func monotonicNanoseconds() -> UInt64 { plumb_monotonic_ns() }

/// Wall-clock milliseconds since the Unix epoch.
@inline(__always) public func wallClockMilliseconds() -> Int64 { plumb_wall_ms() }

/// What a socket is waited for.
public enum SocketInterest: Sendable {
    case readable
    case writable
}

/// How a wait on a socket ended.
public enum SocketReadiness: Sendable, Equatable {
    /// The socket is ready (or has an error pending: read it).
    case ready
    /// The deadline passed first.
    case timedOut
    /// The waiting task was cancelled.
    case cancelled
}

/// One thread running epoll for every probe socket of the process.
///
/// Probes use non-blocking sockets and `await` readiness here, so a thousand probes in flight cost a thousand file
/// descriptors and no threads. Continuations are resumed on the reactor thread; the awaiting task then continues on
/// its executor. A file descriptor may be awaited by one task at a time.
public final class Reactor: Sendable {
    /// The process-wide reactor; its thread starts on first use and lives as long as the process.
    public static let shared = Reactor()

    private struct Waiter {
        var fd: Int32
        var deadline: UInt64
        var continuation: CheckedContinuation<SocketReadiness, Never>
    }

    private struct State {
        var nextToken: UInt64 = 1
        var waiters: [UInt64: Waiter] = [:]
        var cancelledBeforeStart: Set<UInt64> = []
    }

    private let epoll: Int32
    private let wakeup: Int32
    private let state = Mutex(State())

    private init() {
        epoll = plumb_epoll_create()
        wakeup = plumb_eventfd_create()
        precondition(epoll >= 0 && wakeup >= 0, "epoll or eventfd could not be created: errno \(errno)")
        _ = plumb_epoll_add_oneshot(epoll, wakeup, 1, 0, 0)
        let thread = OSThread(name: "plumb-reactor") { [self] in self.loop() }
        thread.start()
    }

    /// Waits until `fd` is ready for `interest`, the monotonic `deadline` (nanoseconds) passes, or the task is
    /// cancelled.
    public func wait(_ fd: Int32, for interest: SocketInterest, deadline: UInt64) async -> SocketReadiness {
        let token = state.withLock { state -> UInt64 in
            defer { state.nextToken &+= 1 }
            return state.nextToken
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<SocketReadiness, Never>) in
                let started = state.withLock { state -> Bool in
                    if state.cancelledBeforeStart.remove(token) != nil { return false }
                    state.waiters[token] = Waiter(fd: fd, deadline: deadline, continuation: continuation)
                    return true
                }
                guard started else {
                    continuation.resume(returning: .cancelled)
                    return
                }
                let added = plumb_epoll_add_oneshot(epoll, fd, interest == .readable ? 1 : 0, interest == .writable ? 1 : 0, token)
                if added != 0 {
                    // Not pollable (closed descriptor): report ready so the caller reads the error itself.
                    if let waiter = state.withLock({ $0.waiters.removeValue(forKey: token) }) {
                        waiter.continuation.resume(returning: .ready)
                    }
                    return
                }
                plumb_eventfd_signal(wakeup)  // the loop recomputes its timeout with the new deadline
            }
        } onCancel: {
            let waiter = state.withLock { state -> Waiter? in
                if let waiter = state.waiters.removeValue(forKey: token) { return waiter }
                state.cancelledBeforeStart.insert(token)
                return nil
            }
            if let waiter {
                _ = plumb_epoll_remove(epoll, waiter.fd)
                waiter.continuation.resume(returning: .cancelled)
            }
        }
    }

    private func loop() {
        let capacity = 64
        var tokens = [UInt64](repeating: 0, count: capacity)
        var events = [UInt32](repeating: 0, count: capacity)
        while true {
            let now = monotonicNanoseconds()
            let nextDeadline = state.withLock { state in state.waiters.values.map(\.deadline).min() }
            var timeout: Int32 = -1
            if let nextDeadline {
                timeout = nextDeadline <= now ? 0 : Int32(min((nextDeadline - now + 999_999) / 1_000_000, 60_000))
            }
            let count = plumb_epoll_wait(epoll, &tokens, &events, Int32(capacity), timeout)
            var ready: [CheckedContinuation<SocketReadiness, Never>] = []
            var expired: [CheckedContinuation<SocketReadiness, Never>] = []
            if count > 0 {
                for index in 0..<Int(count) {
                    let token = tokens[index]
                    if token == 0 {
                        plumb_eventfd_drain(wakeup)
                        _ = plumb_epoll_remove(epoll, wakeup)
                        _ = plumb_epoll_add_oneshot(epoll, wakeup, 1, 0, 0)
                        continue
                    }
                    if let waiter = state.withLock({ $0.waiters.removeValue(forKey: token) }) {
                        _ = plumb_epoll_remove(epoll, waiter.fd)
                        ready.append(waiter.continuation)
                    }
                }
            }
            let after = monotonicNanoseconds()
            let late = state.withLock { state -> [Waiter] in
                let tokens = state.waiters.filter { $0.value.deadline <= after }.map(\.key)
                return tokens.compactMap { state.waiters.removeValue(forKey: $0) }
            }
            for waiter in late {
                _ = plumb_epoll_remove(epoll, waiter.fd)
                expired.append(waiter.continuation)
            }
            for continuation in ready { continuation.resume(returning: .ready) }
            for continuation in expired { continuation.resume(returning: .timedOut) }
        }
    }
}

/// A plain OS thread; blocking work and the reactor live on these, never on the cooperative pool.
public final class OSThread: @unchecked Sendable {
    // Invariant: `body` is set once in init and read once by the started thread.
    private let body: @Sendable () -> Void
    private let name: String

    /// A thread named `name` that runs `body` once started.
    public init(name: String, body: @escaping @Sendable () -> Void) {
        self.name = name
        self.body = body
    }

    /// Starts the thread (detached).
    public func start() {
        let box = Unmanaged.passRetained(self)
        var thread = pthread_t()
        let result = pthread_create(
            &thread, nil,
            { raw in
                let me = Unmanaged<OSThread>.fromOpaque(raw!).takeRetainedValue()
                plumb_set_thread_name(String(me.name.prefix(15)))
                me.body()
                return nil
            }, box.toOpaque())
        precondition(result == 0, "pthread_create failed: \(result)")
        pthread_detach(thread)
    }
}
