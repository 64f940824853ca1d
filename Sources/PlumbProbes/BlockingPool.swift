import Glibc
import Synchronization

/// A fixed set of threads for blocking calls (libcurl easy handles, getaddrinfo, file I/O).
///
/// `run` suspends the calling task and executes the closure on one of the pool's threads, so the cooperative pool is
/// never blocked. Jobs run in submission order; at most `threads` run at once.
public final class BlockingPool: Sendable {
    /// The pool for probes: http(s) transfers and name lookups (16 threads, so up to 16 such probes run at once).
    public static let shared = BlockingPool(threads: 16, name: "plumb-probe")

    /// The pool for the agent's own I/O: IMDS, the collector, the spool (4 threads), kept apart so slow probes never
    /// delay reports.
    public static let control = BlockingPool(threads: 4, name: "plumb-control")

    private struct State {
        var jobs: [@Sendable () -> Void] = []
        var head = 0
    }

    private let state = Mutex(State())
    private let available: Semaphore

    /// Starts `threads` threads named `name`.
    public init(threads: Int, name: String) {
        available = Semaphore()
        for index in 0..<max(1, threads) {
            OSThread(name: "\(name)-\(index)") { [self] in self.work() }.start()
        }
    }

    /// Runs `body` on a pool thread and returns its value.
    public func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
            state.withLock { state in
                state.jobs.append { continuation.resume(returning: body()) }
            }
            available.signal()
        }
    }

    private func work() {
        while true {
            available.wait()
            let job = state.withLock { state -> (@Sendable () -> Void)? in
                guard state.head < state.jobs.count else { return nil }
                let job = state.jobs[state.head]
                state.head += 1
                if state.head > 256 && state.head * 2 > state.jobs.count {
                    state.jobs.removeFirst(state.head)
                    state.head = 0
                }
                return job
            }
            job?()
        }
    }
}

/// A counting semaphore for threads (not for tasks).
final class Semaphore: @unchecked Sendable {
    // Invariant: the mutex, the condition and `count` are only touched with the mutex held; the pointers are
    // allocated once and never move.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var count = 0

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        pthread_cond_destroy(condition)
        mutex.deallocate()
        condition.deallocate()
    }

    func signal() {
        pthread_mutex_lock(mutex)
        count += 1
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }

    func wait() {
        pthread_mutex_lock(mutex)
        while count == 0 { pthread_cond_wait(condition, mutex) }
        count -= 1
        pthread_mutex_unlock(mutex)
    }
}
