import Foundation
import PlumbWire
import Synchronization

/// Errors of the spool; each names the file and what to do.
public enum SpoolError: Error, CustomStringConvertible {
    /// The directory cannot be created or read.
    case directory(String, String)
    /// A batch could not be written (disk full, read-only file system).
    case write(String, String)

    public var description: String {
        switch self {
        case .directory(let path, let reason):
            return "spool directory \(path): \(reason); create it writable for the agent's user, or choose another with --spool-dir"
        case .write(let path, let reason):
            return "cannot write \(path): \(reason); the batch stays in memory and is retried (free space on that file system)"
        }
    }
}

/// The on-disk queue of report batches between the agent and the collector.
///
/// Every batch is written here before it is sent (write to a temporary file, fsync, rename), and removed only when the
/// collector acknowledged it, so a batch survives a collector outage and an agent restart. The directory holds one file
/// per batch, named `SEQUENCE-COUNT.json`, and `state.json` with the next sequence number and the drop counters. When
/// the files exceed `maxBytes`, the oldest are dropped and counted; the counters travel in the next report.
///
/// File I/O blocks; callers run these methods off the cooperative pool (the reporter uses the blocking pool).
public final class Spool: Sendable {
    /// One spooled batch.
    public struct Entry: Sendable, Equatable {
        /// The batch's sequence number.
        public var sequence: Int64
        /// Results in it.
        public var count: Int
        /// Bytes on disk.
        public var bytes: Int
        /// File name.
        public var name: String
    }

    private struct PersistentState: Codable {
        var nextSequence: Int64
        var dropped: DropCounters
    }

    private struct State {
        var entries: [Entry] = []
        var totalBytes = 0
        var persistent = PersistentState(nextSequence: 1, dropped: DropCounters())
    }

    /// The directory.
    public let directory: String
    /// The size bound.
    public let maxBytes: Int
    private let state = Mutex(State())

    /// Opens (or creates) the spool in `directory` and reads what a previous run left.
    public init(directory: String, maxBytes: Int) throws {
        self.directory = directory
        self.maxBytes = maxBytes
        let files = FileManager.default
        do {
            try files.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw SpoolError.directory(directory, error.localizedDescription)
        }
        guard files.isWritableFile(atPath: directory) else { throw SpoolError.directory(directory, "not writable") }
        let names: [String]
        do {
            names = try files.contentsOfDirectory(atPath: directory)
        } catch {
            throw SpoolError.directory(directory, error.localizedDescription)
        }
        var entries: [Entry] = []
        for name in names {
            if name.hasPrefix(".tmp-") {
                try? files.removeItem(atPath: path(name))  // a write that did not finish
                continue
            }
            guard name.hasSuffix(".json"), name != "state.json" else { continue }
            let parts = name.dropLast(5).split(separator: "-")
            guard parts.count == 2, let sequence = Int64(parts[0]), let count = Int(parts[1]) else { continue }
            let size = (try? files.attributesOfItem(atPath: path(name))[.size] as? Int) ?? 0
            entries.append(Entry(sequence: sequence, count: count, bytes: size, name: name))
        }
        entries.sort { $0.sequence < $1.sequence }
        var persistent = PersistentState(nextSequence: 1, dropped: DropCounters())
        if let data = files.contents(atPath: path("state.json")), let saved = try? JSONDecoder().decode(PersistentState.self, from: data) {
            persistent = saved
        }
        // Never reuse a sequence number, even if state.json was lost.
        persistent.nextSequence = max(persistent.nextSequence, Self.after(entries.last?.sequence ?? 0))
        let initial = State(entries: entries, totalBytes: entries.reduce(0) { $0 + $1.bytes }, persistent: persistent)
        state.withLock { $0 = initial }
    }

    private func path(_ name: String) -> String { directory + "/" + name }

    /// Batches waiting for an acknowledgement, oldest first.
    public var entries: [Entry] { state.withLock { $0.entries } }

    /// Bytes waiting.
    public var totalBytes: Int { state.withLock { $0.totalBytes } }

    /// What was dropped so far.
    public var dropped: DropCounters { state.withLock { $0.persistent.dropped } }

    /// The sequence after `sequence`, saturating: a number read from disk or from the collector never traps the agent
    /// (the collector refuses sequences that jump, so the top is never reached in use).
    static func after(_ sequence: Int64) -> Int64 { sequence == .max ? .max : max(0, sequence) + 1 }

    /// The sequence number the next batch gets.
    public var nextSequence: Int64 { state.withLock { $0.persistent.nextSequence } }

    /// Numbers the batch, encodes it with `encode(sequence, dropped)`, writes it durably and returns it. Drops the
    /// oldest batches if the spool is over its bound afterwards.
    @discardableResult
    public func append(count: Int, encode: (Int64, DropCounters) throws -> Data) throws -> Entry {
        let (sequence, dropped) = state.withLock { ($0.persistent.nextSequence, $0.persistent.dropped) }
        let data = try encode(sequence, dropped)
        let name = String(format: "%020lld-%d.json", sequence, count)
        try writeDurably(data, to: name)
        let entry = Entry(sequence: sequence, count: count, bytes: data.count, name: name)
        var evicted: [Entry] = []
        let persistent = state.withLock { state -> PersistentState in
            state.entries.append(entry)
            state.totalBytes += entry.bytes
            state.persistent.nextSequence = Self.after(sequence)
            // Keep the newest batch even if it alone is over the bound.
            while state.totalBytes > maxBytes && state.entries.count > 1 {
                let oldest = state.entries.removeFirst()
                state.totalBytes -= oldest.bytes
                state.persistent.dropped.batches += 1
                state.persistent.dropped.results += oldest.count
                evicted.append(oldest)
            }
            return state.persistent
        }
        for old in evicted { try? FileManager.default.removeItem(atPath: path(old.name)) }
        // The batch is safe on disk; state.json only speeds up the next start (sequence numbers are also recovered
        // from the file names), so a failure here must not make the caller spool the results twice.
        try? saveState(persistent)
        return entry
    }

    /// Makes the next sequence number at least `sequence + 1` (the collector knows of later batches than this spool,
    /// e.g. after the spool directory was lost).
    public func advance(past sequence: Int64) {
        let persistent = state.withLock { state -> PersistentState? in
            guard state.persistent.nextSequence <= sequence else { return nil }
            state.persistent.nextSequence = Self.after(sequence)
            return state.persistent
        }
        if let persistent { try? saveState(persistent) }
    }

    /// The bytes of a spooled batch; nil if the file vanished.
    public func read(_ entry: Entry) -> Data? { FileManager.default.contents(atPath: path(entry.name)) }

    /// Removes an acknowledged batch.
    public func remove(sequence: Int64) {
        let removed = state.withLock { state -> Entry? in
            guard let index = state.entries.firstIndex(where: { $0.sequence == sequence }) else { return nil }
            let entry = state.entries.remove(at: index)
            state.totalBytes -= entry.bytes
            return entry
        }
        if let removed { try? FileManager.default.removeItem(atPath: path(removed.name)) }
    }

    /// Moves a batch the collector refused for good into `rejected/`, where an operator can read it.
    public func reject(sequence: Int64) {
        let removed = state.withLock { state -> Entry? in
            guard let index = state.entries.firstIndex(where: { $0.sequence == sequence }) else { return nil }
            let entry = state.entries.remove(at: index)
            state.totalBytes -= entry.bytes
            return entry
        }
        guard let removed else { return }
        let files = FileManager.default
        try? files.createDirectory(atPath: path("rejected"), withIntermediateDirectories: true)
        try? files.moveItem(atPath: path(removed.name), toPath: path("rejected/" + removed.name))
    }

    private func saveState(_ persistent: PersistentState) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(persistent)) ?? Data()
        try writeDurably(data, to: "state.json")
    }

    private func writeDurably(_ data: Data, to name: String) throws {
        let temporary = path(".tmp-" + name)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SpoolError.write(temporary, String(cString: strerror(errno))) }
        var failure: Int32 = 0
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return
                }
                offset += written
            }
        }
        if failure == 0 && fsync(fd) != 0 { failure = errno }
        close(fd)
        if failure == 0 && rename(temporary, path(name)) != 0 { failure = errno }
        if failure != 0 {
            unlink(temporary)
            throw SpoolError.write(path(name), String(cString: strerror(failure)))
        }
        // The rename is durable only once the directory is.
        let directoryFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 {
            fsync(directoryFD)
            close(directoryFD)
        }
    }
}
