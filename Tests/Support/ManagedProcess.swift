import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// A long-running program started for a test (Pebble, a server under test), with stdout and stderr in a log file.
///
/// Always pair ``start(name:executable:arguments:environment:logDirectory:)`` with ``stop()``, for example in a
/// `defer { Task { await process.stop() } }` or better a do/catch that stops before rethrowing.
public final class ManagedProcess: Sendable {
    /// A short name used in log file names and error messages.
    public let name: String
    /// The program that was started.
    public let executable: String
    /// Its arguments.
    public let arguments: [String]
    /// Where stdout and stderr go.
    public let logPath: String
    /// The child's process id.
    public let processIdentifier: Int32

    // Foundation marks `Process` Sendable but gives no guarantees about concurrent use; serialise it.
    private let process: NIOLockedValueBox<Process>
    private let logHandle: NIOLockedValueBox<FileHandle?>

    private init(name: String, executable: String, arguments: [String], logPath: String,
                 process: Process, logHandle: FileHandle) {
        self.name = name
        self.executable = executable
        self.arguments = arguments
        self.logPath = logPath
        self.processIdentifier = process.processIdentifier
        self.process = NIOLockedValueBox(process)
        self.logHandle = NIOLockedValueBox(logHandle)
    }

    /// Starts `executable` with `arguments`; stdout and stderr go to `<logDirectory>/<name>.log`, stdin is
    /// `/dev/null`.
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
        guard FileManager.default.createFile(atPath: logPath, contents: nil),
              let logHandle = FileHandle(forWritingAtPath: logPath)
        else {
            throw TestSupportError.launchFailed(executable: executable, reason: "cannot create log file \(logPath)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = logHandle
        process.standardError = logHandle
        do {
            try process.run()
        } catch {
            try? logHandle.close()
            throw TestSupportError.launchFailed(executable: executable, reason: "\(error)")
        }
        return ManagedProcess(name: name, executable: executable, arguments: arguments, logPath: logPath,
                              process: process, logHandle: logHandle)
    }

    /// Whether the program is still running.
    public var isRunning: Bool { process.withLockedValue { $0.isRunning } }

    /// The exit status, or `nil` while running. A program killed by a signal reports 128 + the signal number.
    public var exitCode: Int32? {
        process.withLockedValue { process in
            guard !process.isRunning else { return nil }
            return process.terminationReason == .uncaughtSignal
                ? 128 + process.terminationStatus : process.terminationStatus
        }
    }

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

    /// Stops the program: SIGTERM, then SIGKILL after `gracePeriod` seconds, then waits (at most 5 s more) for it
    /// to be reaped. Safe to call more than once.
    public func stop(gracePeriod: Double = 3) async {
        await Self.terminate(pid: processIdentifier, isRunning: { self.isRunning }, gracePeriod: gracePeriod)
        logHandle.withLockedValue { handle in
            try? handle?.close()
            handle = nil
        }
    }

    /// The last `lines` lines of the log, for failure messages.
    public func logTail(lines: Int = 30) -> String {
        guard let data = FileManager.default.contents(atPath: logPath) else { return "" }
        let text = String(decoding: data, as: UTF8.self)
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    private func describe() -> String { "\(name) (\(executable), pid \(processIdentifier))" }

    /// SIGTERM, bounded wait, SIGKILL, bounded wait. Shared with ``OneShotProcess``.
    static func terminate(pid: Int32, isRunning: @Sendable () -> Bool, gracePeriod: Double) async {
        guard isRunning() else { return }
        kill(pid, SIGTERM)
        if await waitUntil(seconds: gracePeriod, { !isRunning() }) { return }
        kill(pid, SIGKILL)
        _ = await waitUntil(seconds: 5, { !isRunning() })
    }

    /// Polls `condition` every 20 ms for at most `seconds`; returns whether it became true.
    static func waitUntil(seconds: Double, _ condition: @Sendable () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while !condition() {
            if ContinuousClock.now >= deadline { return false }
            // Cancellation must not cut cleanup short, so the sleep's error is ignored.
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }
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
