import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A long-running program started for a test (Pebble, a server under test), with stdout and stderr in a log file.
///
/// Always pair ``start(name:executable:arguments:environment:logDirectory:)`` with ``stop()``: run the test body
/// in a do/catch that stops the process before rethrowing, so a failing test leaves nothing running.
public final class ManagedProcess: Sendable {
    /// A short name used in log file names and error messages.
    public let name: String
    /// The program that was started.
    public let executable: String
    /// Its arguments.
    public let arguments: [String]
    /// Where stdout and stderr go.
    public let logPath: String
    /// The child's process id (also its process group id: signals go to the whole group).
    public var processIdentifier: Int32 { child.pid }

    private let child: ChildProcess

    private init(name: String, executable: String, arguments: [String], logPath: String, child: ChildProcess) {
        self.name = name
        self.executable = executable
        self.arguments = arguments
        self.logPath = logPath
        self.child = child
    }

    /// Starts `executable` with `arguments` in its own process group, with a clean signal mask; stdout and stderr
    /// go to `<logDirectory>/<name>.log`, stdin is `/dev/null`.
    /// - Parameters:
    ///   - name: A short name for logs and errors.
    ///   - executable: Absolute path of the program.
    ///   - arguments: Its arguments.
    ///   - environment: Variables added to (or replacing those in) this process's environment.
    ///   - logDirectory: An existing directory for the log file.
    /// - Throws: ``TestSupportError/launchFailed(executable:reason:)``.
    public static func start(
        name: String,
        executable: String,
        arguments: [String] = [],
        environment: [String: String] = [:],
        logDirectory: String
    ) throws -> ManagedProcess {
        let logPath = "\(logDirectory)/\(name).log"
        let child = try ChildProcess.spawn(
            executable: executable, arguments: arguments,
            environment: ProcessInfo.processInfo.environment.merging(environment) { _, new in new },
            currentDirectory: nil, stdoutPath: logPath, stderrPath: logPath)
        return ManagedProcess(name: name, executable: executable, arguments: arguments, logPath: logPath, child: child)
    }

    /// Whether the program is still running.
    public var isRunning: Bool { child.isRunning }

    /// The exit status, or `nil` while running. A program killed by a signal reports 128 + the signal number.
    public var exitCode: Int32? { child.exitCode }

    /// Waits until a TCP connection to `host:port` succeeds.
    /// - Parameters:
    ///   - host: An IPv4 or IPv6 literal, or `localhost`.
    ///   - port: The port.
    ///   - timeout: Seconds to keep trying; each attempt is itself bounded to 0.5 s.
    /// - Throws: ``TestSupportError/exitedEarly(what:exitCode:logTail:)`` if the program dies first,
    ///   ``TestSupportError/timedOut(what:seconds:logTail:)`` if the port never answers.
    public func waitForTCPPort(host: String = "127.0.0.1", port: Int, timeout: Double = 15) async throws {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while true {
            if let exitCode {
                throw TestSupportError.exitedEarly(what: describe(), exitCode: exitCode, logTail: logTail())
            }
            if TCPProbe.canConnect(host: host, port: port, timeoutMilliseconds: 500) { return }
            if ContinuousClock.now >= deadline {
                throw TestSupportError.timedOut(
                    what: "\(describe()) listening on \(host):\(port)", seconds: timeout, logTail: logTail())
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Stops the program and everything it started: SIGTERM to its process group, then SIGKILL after
    /// `gracePeriod` seconds, then waits (at most 5 s more) for it to be reaped. Safe to call more than once.
    public func stop(gracePeriod: Double = 3) async {
        await child.terminate(gracePeriod: gracePeriod)
    }

    /// Sends `signal` (e.g. `SIGHUP`) to the program's process group.
    public func send(signal: Int32) {
        child.send(signal)
    }

    /// Waits up to `timeout` seconds for the program to exit by itself.
    /// - Returns: Its exit code, or `nil` if it is still running.
    public func waitForExit(timeout: Double) async -> Int32? {
        _ = await child.waitForExit(seconds: timeout)
        return exitCode
    }

    /// The last `lines` lines of the log, for failure messages.
    public func logTail(lines: Int = 30) -> String {
        guard let data = FileManager.default.contents(atPath: logPath) else { return "" }
        let text = String(decoding: data, as: UTF8.self)
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    private func describe() -> String { "\(name) (\(executable), pid \(processIdentifier))" }
}

/// A bounded TCP connect check.
public enum TCPProbe {
    /// Whether a TCP connection to `host:port` can be established within `timeoutMilliseconds`.
    /// - Parameters:
    ///   - host: An IPv4 or IPv6 literal, or `localhost` (meaning 127.0.0.1).
    ///   - port: The port.
    ///   - timeoutMilliseconds: Bound on the connect attempt.
    public static func canConnect(host: String, port: Int, timeoutMilliseconds: Int32 = 500) -> Bool {
        let literal = host == "localhost" ? "127.0.0.1" : host
        var storage = sockaddr_storage()
        let length: socklen_t
        let family: Int32
        if let v4 = TestCA.ipAddressBytes(literal), v4.count == 4 {
            family = AF_INET
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            withUnsafeMutableBytes(of: &storage) { raw in
                let address = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)
                address.pointee.sin_family = sa_family_t(AF_INET)
                address.pointee.sin_port = in_port_t(UInt16(port).bigEndian)
                withUnsafeMutableBytes(of: &address.pointee.sin_addr) { $0.copyBytes(from: v4) }
            }
        } else if let v6 = TestCA.ipAddressBytes(literal), v6.count == 16 {
            family = AF_INET6
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            withUnsafeMutableBytes(of: &storage) { raw in
                let address = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self)
                address.pointee.sin6_family = sa_family_t(AF_INET6)
                address.pointee.sin6_port = in_port_t(UInt16(port).bigEndian)
                withUnsafeMutableBytes(of: &address.pointee.sin6_addr) { $0.copyBytes(from: v6) }
            }
        } else {
            return false
        }
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let result = withUnsafePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) }
        }
        if result == 0 { return true }
        guard errno == EINPROGRESS else { return false }
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&poller, 1, timeoutMilliseconds) == 1 else { return false }
        var socketError: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &socketError, &size) == 0 else { return false }
        return socketError == 0
    }
}
