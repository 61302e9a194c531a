import Logging
import NIOConcurrencyHelpers

/// Log lines kept in memory, so tests can check what was logged without bootstrapping swift-log.
public final class CapturedLogs: Sendable {
    /// Starts with no lines.
    public init() {}

    private let lines = NIOLockedValueBox<[String]>([])

    /// Every line so far: `<level> <message> <key=value …>`.
    public var all: [String] { lines.withLockedValue { $0 } }

    /// Adds a line.
    public func append(_ line: String) { lines.withLockedValue { $0.append(line) } }

    /// A logger (debug and up) whose lines land here.
    public var logger: Logger {
        Logger(label: "captured") { _ in CapturingLogHandler(sink: self) }
    }
}

public struct CapturingLogHandler: LogHandler {
    let sink: CapturedLogs
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .debug

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { _, new in new }
        let fields = all.keys.sorted().map { "\($0)=\(all[$0]!)" }.joined(separator: " ")
        sink.append("\(event.level) \(event.message) \(fields)")
    }
}
