import Foundation
import Glibc
import Logging
import Synchronization
@testable import CertHooks

/// A fresh directory under /tmp, removed when the test is done with it.
final class TemporaryDirectory: Sendable {
    let path: String

    init() throws {
        var template = Array("/tmp/certhooks-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw TestSetupError("mkdtemp failed: \(String(cString: strerror(errno)))")
        }
        path = String(cString: made)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { path + "/" + name }

    /// Writes `contents` to `name` with `mode` and returns its path.
    @discardableResult
    func write(_ name: String, _ contents: String, mode: Int = 0o644) throws -> String {
        let target = file(name)
        try contents.write(toFile: target, atomically: false, encoding: .utf8)
        guard chmod(target, mode_t(mode)) == 0 else { throw TestSetupError("chmod \(target) failed") }
        return target
    }

    /// Writes an executable `#!/bin/sh` script.
    @discardableResult
    func script(_ name: String, _ body: String) throws -> String {
        try write(name, "#!/bin/sh\n" + body + "\n", mode: 0o755)
    }

    func read(_ name: String) -> String? {
        try? String(contentsOfFile: file(name), encoding: .utf8)
    }
}

struct TestSetupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Captures log records in memory instead of bootstrapping the logging system.
final class CapturedLogs: Sendable {
    struct Record: Sendable {
        let level: Logger.Level
        let message: String
        let metadata: [String: String]
    }

    private let storage = Mutex<[Record]>([])

    var records: [Record] { storage.withLock { $0 } }

    func append(_ record: Record) { storage.withLock { $0.append(record) } }

    func logger() -> Logger {
        var logger = Logger(label: "certhooks-test") { _ in CapturingHandler(sink: self) }
        logger.logLevel = .trace
        return logger
    }

    func messages(at level: Logger.Level) -> [String] {
        records.filter { $0.level == level }.map(\.message)
    }
}

struct CapturingHandler: LogHandler {
    let sink: CapturedLogs
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged: [String: String] = [:]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { _, new in new }) {
            merged[key] = "\(value)"
        }
        sink.append(.init(level: event.level, message: "\(event.message)", metadata: merged))
    }
}

/// Polls `condition` until it holds or `seconds` pass.
func eventually(within seconds: Double, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return condition()
}

/// Parses `env` output ("KEY=value" lines) into a dictionary.
func parseEnvironment(_ text: String) -> [String: String] {
    var result: [String: String] = [:]
    for line in text.split(separator: "\n") {
        guard let equals = line.firstIndex(of: "=") else { continue }
        result[String(line[..<equals])] = String(line[line.index(after: equals)...])
    }
    return result
}

/// Pids written one per line into a file by a test script.
func readPids(_ path: String) -> [pid_t] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
    return text.split(whereSeparator: \.isWhitespace).compactMap { pid_t($0) }
}

/// Kills a group a test left running on purpose.
func cleanUpGroup(_ pid: Int32?) {
    if let pid { kill(-pid, SIGKILL) }
}

let shortPath = ["PATH": "/usr/local/bin:/usr/bin:/bin"]
