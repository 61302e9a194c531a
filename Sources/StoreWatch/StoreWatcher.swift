import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Watches directories with inotify and reports debounced batches of changed entry names.
///
/// Watch directories, not files: a file renamed into place raises `IN_MOVED_TO`, a written file
/// `IN_CLOSE_WRITE`, and the store's `live/<name>` symlink swap `IN_MOVED_TO` on `live/`. Events are
/// collected for ``debounce`` after the first one, then delivered as one ``ChangeBatch``. A queue overflow or a
/// watched directory that disappears yields ``ChangeBatch/rescanAll(reason:)``; the watch is re-added once the
/// path exists again (checked every second).
///
/// ```swift
/// let watcher = StoreWatcher(directories: ["/var/lib/certkeeper/live"], logger: logger)
/// for await batch in try watcher.changes() {
///     // re-read what `batch` names, re-verify, then act
/// }
/// ```
///
/// Reading happens on one dedicated thread per ``changes()`` stream, blocked in `poll(2)`, never on the
/// cooperative pool. The thread closes its descriptors and exits as soon as the stream's consumer stops
/// iterating (task cancelled or loop left). Consumers must iterate the stream they asked for: a stream that is
/// created and never iterated keeps its thread until the process ends.
public final class StoreWatcher: Sendable {
    /// The watched directories, as given.
    public let directories: [String]
    /// How long to collect events after the first one before delivering a batch.
    public let debounce: Duration
    private let logger: Logger
    private let running: RunningCount

    /// How many reader threads of this watcher are still running (one per ``changes()`` stream being iterated).
    /// Drops back once the consumer has stopped and the thread has closed its descriptors.
    public var activeStreams: Int { running.value }

    /// Creates a watcher. Nothing is opened until ``changes()``.
    /// - Parameters:
    ///   - directories: Directories to watch (each must exist when ``changes()`` is called).
    ///   - debounce: Collection window after the first event of a batch.
    ///   - logger: Where lost watches and overflows are logged.
    public init(directories: [String], debounce: Duration = .milliseconds(50), logger: Logger) {
        self.directories = directories
        self.debounce = debounce
        self.logger = logger
        self.running = RunningCount()
    }

    /// Starts watching and returns the batches as they come.
    ///
    /// Each call opens its own inotify instance and thread; both end when the consumer stops iterating.
    /// - Returns: A stream of batches; it finishes only when iteration stops.
    /// - Throws: ``StoreWatchError`` when inotify cannot be initialised or a directory cannot be watched
    ///   (missing, not a directory, watch limit reached).
    public func changes() throws(StoreWatchError) -> AsyncStream<ChangeBatch> {
        let inotifyFD = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard inotifyFD >= 0 else { throw StoreWatchError(operation: "inotify_init1", path: "", errno: errno) }
        var watches: [Int32: String] = [:]
        for directory in directories {
            let wd = inotify_add_watch(inotifyFD, directory, InotifyMask.directoryWatch)
            guard wd >= 0 else {
                let error = StoreWatchError(operation: "inotify_add_watch", path: directory, errno: errno)
                close(inotifyFD)
                throw error
            }
            watches[wd] = directory
        }
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0 else {
            let error = StoreWatchError(operation: "pipe", path: "", errno: errno)
            close(inotifyFD)
            throw error
        }
        for fd in pipeFDs {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        let stop = StopSignal(writeFD: pipeFDs[1])
        let (stream, continuation) = AsyncStream.makeStream(of: ChangeBatch.self)
        continuation.onTermination = { _ in stop.signal() }
        let loop = WatchLoop(
            inotifyFD: inotifyFD, stopFD: pipeFDs[0], stop: stop, watches: watches, debounce: debounce,
            continuation: continuation, logger: logger)
        let running = self.running
        running.add(1)
        let thread = Thread {
            loop.run()
            running.add(-1)
        }
        thread.name = "certkeeper-storewatch"
        thread.start()
        return stream
    }
}

/// A counter shared between a watcher and its threads.
private final class RunningCount: Sendable {
    private let count = Mutex(0)
    var value: Int { count.withLock { $0 } }
    func add(_ delta: Int) { count.withLock { $0 += delta } }
}

/// The write end of the self-pipe that wakes the watch thread; closed by the thread when it exits, so a late
/// ``signal()`` never writes to a descriptor number that was reused.
private final class StopSignal: Sendable {
    private let writeFD: Mutex<Int32?>

    init(writeFD: Int32) {
        self.writeFD = Mutex(writeFD)
    }

    func signal() {
        writeFD.withLock { fd in
            guard let fd else { return }
            var byte: UInt8 = 1
            _ = write(fd, &byte, 1)
        }
    }

    func close() {
        writeFD.withLock { fd in
            if let open = fd { _ = Glibc.close(open) }
            fd = nil
        }
    }
}

/// The body of the watch thread: poll, read, fold into a batch, deliver after the debounce window.
private struct WatchLoop: Sendable {
    let inotifyFD: Int32
    let stopFD: Int32
    let stop: StopSignal
    var watches: [Int32: String]
    let debounce: Duration
    let continuation: AsyncStream<ChangeBatch>.Continuation
    let logger: Logger

    /// How often a lost directory watch is retried.
    static let retryInterval: Duration = .seconds(1)

    func run() {
        var state = self
        state.loop()
        close(inotifyFD)
        close(stopFD)
        stop.close()
        continuation.finish()
    }

    private mutating func loop() {
        var builder = ChangeBatchBuilder()
        var deadline: ContinuousClock.Instant?
        var missing: [String] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            var timeout: Duration?
            if let deadline { timeout = max(.zero, deadline - .now) }
            if !missing.isEmpty { timeout = min(timeout ?? Self.retryInterval, Self.retryInterval) }
            var fds = [
                pollfd(fd: inotifyFD, events: Int16(POLLIN), revents: 0),
                pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0),
            ]
            let result = poll(&fds, 2, timeout.map(Self.milliseconds) ?? -1)
            if result < 0 {
                if errno == EINTR { continue }
                logger.error("store watch poll failed, stopping", metadata: ["error.errno": "\(errno)"])
                return
            }
            if fds[1].revents != 0 { return }
            if fds[0].revents & Int16(POLLIN) != 0 {
                for event in readEvents(into: &buffer) {
                    handle(event, builder: &builder, missing: &missing)
                }
            }
            if !missing.isEmpty { restoreWatches(&missing, builder: &builder) }
            if deadline == nil, !builder.isEmpty { deadline = .now + debounce }
            if let due = deadline, ContinuousClock.now >= due {
                deadline = nil
                if let batch = builder.take() {
                    if case .rescanAll(let reason) = batch {
                        logger.warning("store watch asks for a full rescan", metadata: ["watch.reason": "\(reason)"])
                    }
                    continuation.yield(batch)
                }
            }
        }
    }

    /// Reads until the descriptor is drained.
    private func readEvents(into buffer: inout [UInt8]) -> [InotifyEvent] {
        var events: [InotifyEvent] = []
        while true {
            let count = buffer.withUnsafeMutableBytes { read(inotifyFD, $0.baseAddress, $0.count) }
            if count > 0 {
                events += buffer.withUnsafeBytes { InotifyEventParser.parse(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
                continue
            }
            if count < 0, errno == EINTR { continue }
            return events
        }
    }

    private mutating func handle(_ event: InotifyEvent, builder: inout ChangeBatchBuilder, missing: inout [String]) {
        let directory = watches[event.watchDescriptor]
        builder.add(event, directory: directory)
        guard let directory, event.watchedDirectoryGone else { return }
        // A moved directory keeps its watch on the old inode: drop it and watch the path again.
        if event.mask & InotifyMask.ignored == 0 {
            inotify_rm_watch(inotifyFD, event.watchDescriptor)
        }
        watches[event.watchDescriptor] = nil
        if !missing.contains(directory) {
            missing.append(directory)
            logger.warning("watched directory went away; will watch it again when it exists", metadata: ["watch.path": "\(directory)"])
        }
    }

    private mutating func restoreWatches(_ missing: inout [String], builder: inout ChangeBatchBuilder) {
        missing.removeAll { directory in
            let wd = inotify_add_watch(inotifyFD, directory, InotifyMask.directoryWatch)
            guard wd >= 0 else { return false }
            watches[wd] = directory
            builder.requestRescan(.watchRestored(directory))
            logger.info("watching directory again", metadata: ["watch.path": "\(directory)"])
            return true
        }
    }

    private static func milliseconds(_ duration: Duration) -> Int32 {
        let (seconds, attoseconds) = duration.components
        let ms = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: max(0, ms))
    }
}
