import CertStore
import CertkeeperTestSupport
import Dispatch
import Foundation
import FuzzTargets
import PeerSync
import Testing

/// Replays every committed seed (`Fuzz/corpus/<target>/`) and reproducer (`Fuzz/regressions/<target>/`) through
/// its fuzz target, so `swift test` keeps each fixed crash fixed without a fuzzer; and feeds the targets real
/// certificates made at run time, which the committed seeds (fake PEM only) do not contain.
///
/// Serialized and run on a GCD thread: the peer targets block their thread on an async call.
@Suite(.serialized)
struct CorpusReplayTests {
    static let fuzzRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz").path

    @Test("every seed and reproducer passes its target", arguments: FuzzTarget.all.map(\.name))
    func replay(target name: String) async throws {
        let target = try #require(FuzzTarget.named(name))
        let seeds = FuzzInputs.files(in: ["\(Self.fuzzRoot)/corpus/\(name)"])
        #expect(!seeds.isEmpty, "Fuzz/corpus/\(name)/ has no seeds")
        for file in seeds + FuzzInputs.files(in: ["\(Self.fuzzRoot)/regressions/\(name)"]) {
            let bytes = try #require(FuzzInputs.read(file))
            let violation = await Self.run(target, bytes)
            #expect(violation == nil, "\(file): \(violation.map(String.init(describing:)) ?? "")")
        }
    }

    @Test("every corpus and regression folder belongs to a target")
    func foldersHaveTargets() throws {
        for kind in ["corpus", "regressions"] {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: "\(Self.fuzzRoot)/\(kind)")) ?? []
            for name in names where !name.hasPrefix(".") {
                #expect(FuzzTarget.named(name) != nil, "Fuzz/\(kind)/\(name) has no fuzz target")
            }
        }
    }

    @Test("a real bundle and its payload pass the pem and peer-json targets")
    func realBundle() async throws {
        let root = try TestCA.make()
        let intermediate = try root.issueIntermediate()
        let leaf = try intermediate.issueLeaf(dnsNames: ["web"], notBefore: Date(timeIntervalSince1970: 1_790_000_000), notAfter: Date(timeIntervalSince1970: 1_810_000_000))
        let pemInput = Array((leaf.fullChainPEM + "\n\u{0}\n" + leaf.privateKeyPEM).utf8)
        #expect(await Self.run(try #require(FuzzTarget.named("pem")), pemInput) == nil)

        let payload = BundlePayload(name: "web", fullchainPEM: leaf.fullChainPEM, privateKeyPEM: leaf.privateKeyPEM, issuedBy: "n1")
        let json = try JSONEncoder().encode(payload)
        #expect(await Self.run(try #require(FuzzTarget.named("peer-json")), Array(json)) == nil)
    }

    /// Runs one input on a GCD thread; the violation, if any.
    static func run(_ target: FuzzTarget, _ bytes: [UInt8]) async -> FuzzViolation? {
        await withCheckedContinuation { (continuation: CheckedContinuation<FuzzViolation?, Never>) in
            DispatchQueue.global().async {
                do throws(FuzzViolation) {
                    try target.run(bytes)
                    continuation.resume(returning: nil)
                } catch {
                    continuation.resume(returning: error)
                }
            }
        }
    }
}
