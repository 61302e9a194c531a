import Glibc

/// The end of one child process.
public enum ProcessOutcome: Sendable, Equatable, CustomStringConvertible {
    /// The process exited on its own with this status (0 = success).
    case exited(code: Int32)
    /// The process was ended by a signal it did not handle (and was not a timeout on our side).
    case signalled(signal: Int32)
    /// The process was still running after this many seconds, so its whole process group was killed.
    case timedOut(after: Double)
    /// The process never ran; `reason` says why in one line (e.g. "no such file: /etc/hook.sh").
    case failedToStart(reason: String)

    /// `true` only for `.exited(code: 0)`.
    public var succeeded: Bool {
        if case .exited(code: 0) = self { return true }
        return false
    }

    /// One line such as "exited with status 1", "killed by signal 9 (SIGKILL)", "timed out after 30 s".
    public var description: String {
        switch self {
        case .exited(let code):
            return "exited with status \(code)"
        case .signalled(let signal):
            return "killed by signal \(signal)\(SignalNames.suffix(for: signal))"
        case .timedOut(let after):
            return "timed out after \(SecondsFormat.string(after)) s"
        case .failedToStart(let reason):
            return "failed to start: \(reason)"
        }
    }
}

/// What one child process did: how it ended and what it printed.
public struct ProcessResult: Sendable {
    /// How much merged output is kept at most; longer output keeps its beginning and its end around a marker.
    public static let outputLimit = 64 * 1024

    /// How the process ended.
    public var outcome: ProcessOutcome
    /// stdout and stderr merged in the order they were written, decoded as UTF-8 (invalid bytes replaced).
    /// At most ``outputLimit`` bytes: when longer, the first and last parts are kept with a
    /// "[certkeeper: N bytes of output omitted]" line between them.
    public var output: String
    /// How many bytes of output were dropped from the middle (0 when nothing was).
    public var omittedOutputBytes: Int
    /// Wall-clock seconds from start to the end of supervision (0 when the process never started).
    public var duration: Double
    /// The child's pid, which is also its process group id; `nil` when it never started.
    public var pid: Int32?

    /// Creates a result.
    /// - Parameters:
    ///   - outcome: how the process ended.
    ///   - output: merged output (already truncated).
    ///   - omittedOutputBytes: bytes dropped from the middle of the output.
    ///   - duration: seconds the process ran.
    ///   - pid: the child's pid / process group id, if it started.
    public init(outcome: ProcessOutcome, output: String, omittedOutputBytes: Int = 0, duration: Double = 0, pid: Int32? = nil) {
        self.outcome = outcome
        self.output = output
        self.omittedOutputBytes = omittedOutputBytes
        self.duration = duration
        self.pid = pid
    }

    /// Whether the output was shortened to fit ``outputLimit``.
    public var outputTruncated: Bool { omittedOutputBytes > 0 }

    /// The last `count` non-empty lines of the output, for a log line about a failure.
    /// - Parameter count: how many lines at most.
    public func lastOutputLines(_ count: Int) -> [String] {
        guard count > 0 else { return [] }
        let lines = output.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
            .map { String($0) }
            .filter { !$0.allSatisfy(\.isWhitespace) }
        return Array(lines.suffix(count))
    }
}

/// Short signal names for log lines ("SIGTERM"); no lookup table in libc is locale-independent.
enum SignalNames {
    static func name(of signal: Int32) -> String? {
        switch signal {
        case SIGHUP: return "SIGHUP"
        case SIGINT: return "SIGINT"
        case SIGQUIT: return "SIGQUIT"
        case SIGILL: return "SIGILL"
        case SIGTRAP: return "SIGTRAP"
        case SIGABRT: return "SIGABRT"
        case SIGBUS: return "SIGBUS"
        case SIGFPE: return "SIGFPE"
        case SIGKILL: return "SIGKILL"
        case SIGUSR1: return "SIGUSR1"
        case SIGSEGV: return "SIGSEGV"
        case SIGUSR2: return "SIGUSR2"
        case SIGPIPE: return "SIGPIPE"
        case SIGALRM: return "SIGALRM"
        case SIGTERM: return "SIGTERM"
        case SIGXCPU: return "SIGXCPU"
        case SIGXFSZ: return "SIGXFSZ"
        case SIGSYS: return "SIGSYS"
        default: return nil
        }
    }

    static func suffix(for signal: Int32) -> String {
        name(of: signal).map { " (\($0))" } ?? ""
    }
}

/// Prints seconds the way an operator wrote them: "30", "0.5", "2.25".
enum SecondsFormat {
    static func string(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "\(seconds)" }
        if seconds == seconds.rounded(), abs(seconds) < 1e15 { return String(Int64(seconds)) }
        let milliseconds = (seconds * 1000).rounded() / 1000
        return "\(milliseconds)"
    }
}
