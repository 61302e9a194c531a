import Foundation

/// One configured deploy hook: a shell command (run as `/bin/sh -c`) or an executable file.
public struct DeployHook: Sendable, Equatable, CustomStringConvertible {
    /// What to run.
    public enum Kind: Sendable, Equatable {
        /// A command line given to `/bin/sh -c`.
        case shell(String)
        /// A file run directly with no arguments (it needs a `#!` line if it is a script).
        case executable(path: String)
    }

    /// What to run.
    public var kind: Kind
    /// Seconds the hook may run before its process group is killed.
    public var timeout: Double
    /// The name used in logs (a configured name, or the file's path).
    public var label: String

    /// Creates a hook.
    /// - Parameters:
    ///   - kind: a shell command or an executable file.
    ///   - timeout: seconds the hook may run.
    ///   - label: the name used in logs; `nil` uses the command (shortened) or the path.
    public init(kind: Kind, timeout: Double, label: String? = nil) {
        self.kind = kind
        self.timeout = timeout
        self.label = label ?? Self.defaultLabel(for: kind)
    }

    /// The program and arguments that run this hook.
    public var commandLine: (executable: String, arguments: [String]) {
        switch kind {
        case .shell(let command): return ("/bin/sh", ["-c", command])
        case .executable(let path): return (path, [])
        }
    }

    /// "label (sh -c 'command')" or "label (/path)", for listings.
    public var description: String {
        switch kind {
        case .shell(let command): return label == command ? "sh -c '\(command)'" : "\(label) (sh -c '\(command)')"
        case .executable(let path): return label == path ? path : "\(label) (\(path))"
        }
    }

    private static func defaultLabel(for kind: Kind) -> String {
        switch kind {
        case .shell(let command):
            let oneLine = command.split(whereSeparator: \.isNewline).joined(separator: " ")
            return oneLine.count > 60 ? String(oneLine.prefix(57)) + "..." : oneLine
        case .executable(let path):
            return path
        }
    }
}

/// What was installed, passed to every deploy hook as environment variables.
public struct DeployEvent: Sendable, Equatable {
    /// File names inside the live directory (certbot's layout plus `bundle.pem`: full chain then key, for HAProxy).
    public enum LiveFile {
        /// The leaf certificate.
        public static let cert = "cert.pem"
        /// The intermediates.
        public static let chain = "chain.pem"
        /// Leaf followed by intermediates.
        public static let fullchain = "fullchain.pem"
        /// The private key.
        public static let privkey = "privkey.pem"
        /// Full chain followed by the private key in one file.
        public static let bundle = "bundle.pem"
    }

    /// The certificate's name (the `live/<name>` directory name).
    public var name: String
    /// The absolute path of `live/<name>`.
    public var liveDirectory: String
    /// Every DNS name (and IP address) the certificate covers, primary first.
    public var domains: [String]
    /// The certificate's serial number (hex).
    public var serial: String
    /// When the certificate expires.
    public var notAfter: Date
    /// Which node or issuer produced it.
    public var issuedBy: String

    /// Creates an event.
    /// - Parameters:
    ///   - name: the certificate name.
    ///   - liveDirectory: absolute path of `live/<name>`.
    ///   - domains: the names it covers.
    ///   - serial: serial number in hex.
    ///   - notAfter: expiry.
    ///   - issuedBy: the node or issuer that produced it.
    public init(name: String, liveDirectory: String, domains: [String], serial: String, notAfter: Date, issuedBy: String) {
        self.name = name
        self.liveDirectory = liveDirectory
        self.domains = domains
        self.serial = serial
        self.notAfter = notAfter
        self.issuedBy = issuedBy
    }

    /// certbot's names `RENEWED_LINEAGE` (= liveDirectory) and `RENEWED_DOMAINS` (space separated), and
    /// certkeeper's own: `CERTKEEPER_EVENT=deploy`, `CERTKEEPER_CERT_NAME`, `CERTKEEPER_LIVE_DIR`,
    /// `CERTKEEPER_DOMAINS` (space separated), `CERTKEEPER_SERIAL`, `CERTKEEPER_NOT_AFTER` (ISO 8601 UTC,
    /// e.g. 2026-09-21T14:13:20Z), `CERTKEEPER_ISSUED_BY`, and the paths `CERTKEEPER_CERT`, `CERTKEEPER_CHAIN`,
    /// `CERTKEEPER_FULLCHAIN`, `CERTKEEPER_PRIVKEY`, `CERTKEEPER_BUNDLE` inside liveDirectory.
    public var environment: [String: String] {
        let domainList = domains.joined(separator: " ")
        return [
            "RENEWED_LINEAGE": liveDirectory,
            "RENEWED_DOMAINS": domainList,
            "CERTKEEPER_EVENT": "deploy",
            "CERTKEEPER_CERT_NAME": name,
            "CERTKEEPER_LIVE_DIR": liveDirectory,
            "CERTKEEPER_DOMAINS": domainList,
            "CERTKEEPER_SERIAL": serial,
            "CERTKEEPER_NOT_AFTER": notAfter.formatted(.iso8601),
            "CERTKEEPER_ISSUED_BY": issuedBy,
            "CERTKEEPER_CERT": path(LiveFile.cert),
            "CERTKEEPER_CHAIN": path(LiveFile.chain),
            "CERTKEEPER_FULLCHAIN": path(LiveFile.fullchain),
            "CERTKEEPER_PRIVKEY": path(LiveFile.privkey),
            "CERTKEEPER_BUNDLE": path(LiveFile.bundle),
        ]
    }

    private func path(_ file: String) -> String {
        liveDirectory.hasSuffix("/") ? liveDirectory + file : liveDirectory + "/" + file
    }
}

/// One hook and what running it did.
public struct HookResult: Sendable {
    /// The hook that ran.
    public var hook: DeployHook
    /// Its outcome and output.
    public var result: ProcessResult

    /// Creates a result.
    /// - Parameters:
    ///   - hook: the hook that ran.
    ///   - result: its outcome and output.
    public init(hook: DeployHook, result: ProcessResult) {
        self.hook = hook
        self.result = result
    }

    /// Whether the hook exited with status 0.
    public var succeeded: Bool { result.outcome.succeeded }
}

extension Array where Element == HookResult {
    /// Whether every hook exited with status 0 (true for no hooks).
    public var allSucceeded: Bool { allSatisfy(\.succeeded) }

    /// The hooks that did not exit with status 0.
    public var failures: [HookResult] { filter { !$0.succeeded } }
}
