import ACMEProtocol
import CertStore
import CertkeeperTestSupport
import Crypto
import Dispatch
import Foundation
import Logging
import NIOConcurrencyHelpers

/// What the targets that answer requests serve from: a real ``CertificateStore`` in a temporary directory with
/// one installed certificate (`web`, from a test CA made in memory) and an ACME account, created once per process
/// and removed at exit.
///
/// Only the request is fuzzed; the store is fixed, so the same input always takes the same path.
struct FuzzFixture: Sendable {
    /// The certificate installed as `live/web`.
    static let certificateName = "web"
    /// The ACME directory whose account is stored.
    static let directoryURL = "https://acme.invalid/directory"

    /// The process's fixture.
    static let shared: FuzzFixture = {
        do {
            return try FuzzFixture()
        } catch {
            fatalError("cannot set up the fuzz fixture: \(error)")
        }
    }()

    /// Logs go nowhere: a fuzz run makes millions of requests.
    static let logger = Logger(label: "certkeeper.fuzz", factory: { _ in SwiftLogNoOpLogHandler() })

    /// The store's directory (under `TMPDIR`).
    let root: String
    /// The store.
    let store: CertificateStore
    /// Where ``CertificateLoaderInput`` writes the file it loads.
    let scratchFile: String

    private init() throws {
        let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        root = "\(base)/certkeeper-fuzz-\(getpid())"
        scratchFile = root + "/scratch.pem"
        try? FileManager.default.removeItem(atPath: root)
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        FuzzFixtureCleanup.register(root)
        store = CertificateStore(root: root + "/store", logger: Self.logger)
        try store.prepare()

        let rootCA = try TestCA.make(commonName: "certkeeper fuzz root")
        let intermediate = try rootCA.issueIntermediate(commonName: "certkeeper fuzz intermediate")
        let leaf = try intermediate.issueLeaf(dnsNames: ["web.fuzz.example"])
        let bundle = CertificateBundle(certificatePEM: leaf.certificatePEM, chainPEM: leaf.chainPEM, privateKeyPEM: leaf.privateKeyPEM)
        let verified = try BundleVerifier().verify(bundle, expectedDomains: ["web.fuzz.example"], now: Date())
        try store.install(verified, name: Self.certificateName, issuedBy: "fuzz-node", now: Date())

        try store.saveAccountKey(directoryURL: Self.directoryURL, keyPEM: P256.Signing.PrivateKey().pemRepresentation)
        try store.saveAccountRecord(
            directoryURL: Self.directoryURL,
            record: AccountRecord(directoryURL: Self.directoryURL, accountURL: "https://acme.invalid/acct/1", contact: [], createdAt: Date()))
    }
}

/// Removes the fixture's directory when the process exits normally (libFuzzer exits through `exit`).
private enum FuzzFixtureCleanup {
    private static let path = NIOLockedValueBox<String?>(nil)

    static func register(_ directory: String) {
        path.withLockedValue { $0 = directory }
        atexit {
            if let directory = FuzzFixtureCleanup.path.withLockedValue({ $0 }) {
                try? FileManager.default.removeItem(atPath: directory)
            }
        }
    }
}

/// Runs an async function to completion from synchronous code (the fuzzer's callback), on a detached task.
func runBlocking<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
    let result = NIOLockedValueBox<T?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        let value = await body()
        result.withLockedValue { $0 = value }
        done.signal()
    }
    done.wait()
    return result.withLockedValue { $0! }
}
