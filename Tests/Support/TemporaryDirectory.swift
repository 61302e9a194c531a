import Foundation

/// A uniquely named directory under `/tmp/certkeeper-tests/`, created on init and deleted by ``remove()``.
///
/// Tests should `defer { directory.remove() }` so the directory goes away even when the test fails.
public struct TemporaryDirectory: Sendable {
    /// The parent of every test directory.
    public static let root = "/tmp/certkeeper-tests"

    /// The absolute path of the directory.
    public let path: String

    /// The directory as a file URL.
    public var url: URL { URL(fileURLWithPath: path, isDirectory: true) }

    /// Creates `/tmp/certkeeper-tests/<name>-<random>`.
    /// - Parameter name: A readable prefix, usually the test's name; `/` is replaced by `_`.
    /// - Throws: ``TestSupportError/fileSystem(operation:path:reason:)`` when the directory cannot be created.
    public init(name: String = "test") throws {
        let safeName = name.replacingOccurrences(of: "/", with: "_")
        let suffix = UInt64.random(in: 0...UInt64.max)
        let path = "\(Self.root)/\(safeName)-\(String(suffix, radix: 36))"
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw TestSupportError.fileSystem(operation: "create directory", path: path, reason: "\(error)")
        }
        self.path = path
    }

    /// The absolute path of `relativePath` inside this directory.
    public func appending(_ relativePath: String) -> String {
        path + "/" + relativePath
    }

    /// Writes `contents` to `relativePath` inside this directory (creating parent directories) and returns its path.
    /// - Throws: ``TestSupportError/fileSystem(operation:path:reason:)`` when the write fails.
    @discardableResult
    public func write(_ contents: String, to relativePath: String) throws -> String {
        let target = appending(relativePath)
        do {
            let parent = (target as NSString).deletingLastPathComponent
            try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            try Data(contents.utf8).write(to: URL(fileURLWithPath: target))
        } catch {
            throw TestSupportError.fileSystem(operation: "write", path: target, reason: "\(error)")
        }
        return target
    }

    /// Deletes the directory and everything in it. Errors are ignored: cleanup must not mask a test failure.
    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}
