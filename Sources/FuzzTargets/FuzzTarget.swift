/// One coverage-guided fuzz target: a parser that bytes from outside reach, fed with arbitrary bytes and checked
/// for the invariants that must hold whatever the bytes are.
///
/// Each target calls the project's real parser (no copies): a trap inside it is a crash, a broken invariant is a
/// thrown ``FuzzViolation``. libFuzzer (`certkeeper-fuzz` built with `-DFUZZING`) turns the violation into a crash
/// too; the replay test and the regression runner report it instead.
public struct FuzzTarget: Sendable {
    /// The name used for `CERTKEEPER_FUZZ_TARGET`, `Fuzz/corpus/<name>/` and `Fuzz/regressions/<name>/`.
    public let name: String
    /// What the target feeds, in one line.
    public let summary: String
    private let body: @Sendable (UnsafeRawBufferPointer) throws(FuzzViolation) -> Void

    init(name: String, summary: String, body: @escaping @Sendable (UnsafeRawBufferPointer) throws(FuzzViolation) -> Void) {
        self.name = name
        self.summary = summary
        self.body = body
    }

    /// Feeds one input to the parser and checks the invariants.
    /// - Parameter bytes: The input; not retained.
    /// - Throws: ``FuzzViolation`` when the parser's answer breaks an invariant.
    public func run(_ bytes: UnsafeRawBufferPointer) throws(FuzzViolation) {
        try body(bytes)
    }

    /// Feeds one input to the parser and checks the invariants.
    /// - Parameter bytes: The input.
    /// - Throws: ``FuzzViolation`` when the parser's answer breaks an invariant.
    public func run(_ bytes: [UInt8]) throws(FuzzViolation) {
        // withUnsafeBytes rethrows untyped errors: carry the violation out as a value.
        let violation: FuzzViolation? = bytes.withUnsafeBytes { raw in
            do throws(FuzzViolation) {
                try body(raw)
                return nil
            } catch {
                return error
            }
        }
        if let violation { throw violation }
    }

    /// Every target, in the order `scripts/fuzz.sh` runs them.
    public static let all: [FuzzTarget] = [
        FuzzTarget(name: "peer-query", summary: "peer API request targets: PeerAPI.respond, SyncIndex", body: PeerQueryTarget.run),
        FuzzTarget(name: "peer-json", summary: "what a follower decodes: PeerCatalog, BundlePayload, AccountPayload", body: PeerJSONTarget.run),
        FuzzTarget(name: "mqtt", summary: "MQTT CONNECT packets: MQTTConnectParser", body: MQTTConnectTarget.run),
        FuzzTarget(name: "proxy-v2", summary: "PROXY v2 headers encoded from fuzzed endpoints, decoded back", body: ProxyV2Target.run),
        FuzzTarget(name: "http", summary: "HTTP/1 requests into the http frontend, http-01, stats and peer API handlers", body: HTTPRequestTarget.run),
        FuzzTarget(name: "pem", summary: "PEM splitting and bundle loading: PEMBlocks, CertificateBundle, BundleVerifier, CertificateLoader", body: PEMTarget.run),
        FuzzTarget(name: "acme", summary: "ACME JSON responses, problem documents, Retry-After and RFC 3339 dates", body: ACMETarget.run),
        FuzzTarget(name: "config", summary: "YAML configuration: ConfigLoader.parse", body: ConfigTarget.run),
    ]

    /// The target called `name`, if any.
    public static func named(_ name: String) -> FuzzTarget? {
        all.first { $0.name == name }
    }
}

/// An invariant a fuzz target checks did not hold: which target, and what was seen.
public struct FuzzViolation: Error, Sendable, CustomStringConvertible {
    /// What went wrong, in one line.
    public var description: String

    /// Creates a violation.
    public init(_ description: String) {
        self.description = description
    }
}

/// Throws a ``FuzzViolation`` saying `message` unless `condition` holds.
@inline(__always)
func require(_ condition: Bool, _ message: @autoclosure () -> String) throws(FuzzViolation) {
    if !condition { throw FuzzViolation(message()) }
}

/// A short, printable rendering of fuzzed text for violation messages.
func quoted(_ text: String, limit: Int = 120) -> String {
    let escaped = text.unicodeScalars.prefix(limit).map { $0.escaped(asASCII: true) }.joined()
    return "\"" + escaped + (text.unicodeScalars.count > limit ? "…" : "") + "\""
}
