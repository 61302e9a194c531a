#if canImport(Glibc)
import Glibc
#endif

/// Why a ``StoreWatcher`` could not start: which system call failed, on which path, and the system's reason.
public struct StoreWatchError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was being done, e.g. `inotify_add_watch`.
    public var operation: String
    /// The directory concerned (empty when none).
    public var path: String
    /// The `errno` of the failed call.
    public var errno: Int32

    /// Creates an error.
    /// - Parameters:
    ///   - operation: What was being done.
    ///   - path: The directory concerned, or empty.
    ///   - errno: The `errno` of the failed call.
    public init(operation: String, path: String, errno: Int32) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    /// `inotify_add_watch /var/lib/certkeeper/live: No such file or directory (errno 2)`.
    public var description: String {
        "\(operation)\(path.isEmpty ? "" : " \(path)"): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}
