import Foundation
import Logging
import StoreWatch
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A scratch directory under /tmp, removed by `remove()`.
struct ScratchDirectory {
    let path: String

    init(_ name: String) throws {
        path = "/tmp/certkeeper-tests/storewatch-\(name)-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func appending(_ name: String) -> String { "\(path)/\(name)" }

    func write(_ text: String, to name: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: appending(name)))
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Collects batches from a watcher stream in a background task.
final class BatchCollector: Sendable {
    private let task: Task<Void, Never>

    init(_ stream: AsyncStream<ChangeBatch>) {
        let storage = Storage()
        self.storage = storage
        task = Task {
            for await batch in stream { storage.append(batch) }
        }
    }

    private let storage: Storage

    var received: [ChangeBatch] { storage.all }

    /// Waits (at most `timeout`) until some batch satisfies `condition`.
    func wait(timeout: Duration = .seconds(10), until condition: ([ChangeBatch]) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition(received) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return condition(received)
    }

    /// Names reported for `directory` across all batches so far.
    func names(in directory: String) -> Set<String> {
        received.reduce(into: Set<String>()) { all, batch in
            if case .changed(let byDirectory) = batch { all.formUnion(byDirectory[directory] ?? []) }
        }
    }

    func cancel() { task.cancel() }

    final class Storage: Sendable {
        private let items = Mutex<[ChangeBatch]>([])
        func append(_ batch: ChangeBatch) { items.withLock { $0.append(batch) } }
        var all: [ChangeBatch] { items.withLock { $0 } }
    }
}

/// Waits (bounded) until the watcher has no running reader thread.
func waitForStop(_ watcher: StoreWatcher, timeout: Duration = .seconds(10)) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if watcher.activeStreams == 0 { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return watcher.activeStreams == 0
}

let testLogger = Logger(label: "storewatch-tests", factory: { _ in SwiftLogNoOpLogHandler() })
