import Foundation
import Glibc
import Synchronization
import Testing
import X509

@testable import CertStore

/// Install failures must leave `live/` byte-for-byte as it was and leave no partial version behind.
@Suite("CertificateStore failures and atomicity")
struct CertificateStoreFailureTests {
    /// What a reader sees through `live/<name>`: the symlink and every file's bytes.
    struct LiveSnapshot: Equatable {
        var target: String?
        var files: [String: String]

        init(root: String, name: String) {
            target = symlinkTarget("\(root)/live/\(name)")
            files = [:]
            for file in ["cert.pem", "chain.pem", "fullchain.pem", "privkey.pem", "bundle.pem", "meta.json"] {
                files[file] = readText("\(root)/live/\(name)/\(file)")
            }
        }
    }

    func expectInstallFails(
        _ store: Store, _ verified: VerifiedBundle, name: String = "web", now: Date,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> StoreError? {
        do {
            _ = try store.install(verified, name: name, issuedBy: "n", now: now)
            Issue.record("install should have failed", sourceLocation: sourceLocation)
            return nil
        } catch {
            #expect(!error.description.contains("\n"), sourceLocation: sourceLocation)
            return error
        }
    }

    @Test func aFileWhereTheNextVersionDirectoryGoesFailsTheInstall() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let (store, root) = (fixture.store, fixture.root)
        _ = try store.install(try TestChain().verified(), name: "web", issuedBy: "n", now: testNow)
        let before = LiveSnapshot(root: root, name: "web")
        #expect(before.files["bundle.pem"] != nil)

        // The next install at testNow + 60 s would create v000002-20260101000100.
        let squatter = "\(root)/archive/web/v000002-20260101000100"
        try AtomicFile.write(Array("in the way".utf8), to: squatter, mode: 0o644)

        let error = expectInstallFails(store, try TestChain().verified(), now: testNow + 60)
        #expect(error?.path == squatter)
        #expect(LiveSnapshot(root: root, name: "web") == before)
        #expect(try store.versions(name: "web") == [1])
        #expect(directoryEntries("\(root)/archive/web") == ["v000001-20260101000000", "v000002-20260101000100"])
        #expect(readText(squatter) == "in the way")
        #expect(directoryEntries("\(root)/live") == ["web"])
    }

    @Test func anArchiveEntryThatIsAFileFailsTheInstall() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let (store, root) = (fixture.store, fixture.root)
        _ = try store.install(try TestChain().verified(), name: "other", issuedBy: "n", now: testNow)
        let otherBefore = LiveSnapshot(root: root, name: "other")
        try AtomicFile.write(Array("not a directory".utf8), to: "\(root)/archive/web", mode: 0o644)

        let error = expectInstallFails(store, try TestChain().verified(), now: testNow)
        #expect(error?.path == "\(root)/archive/web")
        #expect(error?.errno == ENOTDIR)
        #expect(symlinkTarget("\(root)/live/web") == nil)
        #expect(directoryEntries("\(root)/live") == ["other"])
        #expect(LiveSnapshot(root: root, name: "other") == otherBefore)
    }

    /// ENOSPC (or EIO, EROFS…) on any step before the swap: the error names the step and file, the partial
    /// version directory is gone and live is unchanged.
    @Test(arguments: [
        (FileSystem.FileOperation.write, "bundle.pem", ENOSPC),
        (.createFile, "meta.json", ENOSPC),
        (.fsync, "privkey.pem", EIO),
        (.mkdir, ".tmp-", EROFS),
        (.fsyncDirectory, ".tmp-", EIO),
        (.rename, "/v000002-", EIO),
        (.symlink, "/live/.web.tmp-", ENOSPC),
        (.rename, "/live/web", EIO),
    ])
    func injectedFailureLeavesLiveUntouched(operation: FileSystem.FileOperation, pathPart: String, code: Int32) throws {
        let armed = Flag()
        let fixture = try StoreFixture(faults: { op, path in
            armed.value.load(ordering: .relaxed) && op == operation && path.contains(pathPart) ? code : nil
        })
        defer { fixture.remove() }
        let (store, root) = (fixture.store, fixture.root)
        let first = try TestChain().verified()
        _ = try store.install(first, name: "web", issuedBy: "n", now: testNow)
        let before = LiveSnapshot(root: root, name: "web")

        armed.value.store(true, ordering: .relaxed)
        let error = try #require(expectInstallFails(store, try TestChain().verified(), now: testNow + 60))
        #expect(error.errno == code)
        #expect(error.path.contains(pathPart))
        #expect(error.description.contains(String(cString: strerror(code))))

        #expect(LiveSnapshot(root: root, name: "web") == before)
        #expect(directoryEntries("\(root)/archive/web") == ["v000001-20260101000000"], "partial version must be removed")
        #expect(directoryEntries("\(root)/live") == ["web"], "temporary symlink must be removed")
        #expect(try store.liveBundle(name: "web") == first.bundle)

        // Once the fault is gone the next install works normally.
        armed.value.store(false, ordering: .relaxed)
        let meta = try store.install(try TestChain().verified(), name: "web", issuedBy: "n", now: testNow + 120)
        #expect(meta.version == 2)
        #expect(try store.liveVersion(name: "web") == 2)
    }

    /// A reader opening `live/web/bundle.pem` over and over while 200 installs alternate between two
    /// certificates must always find a complete file whose key matches its leaf.
    @Test func readersNeverSeeAMismatchedOrMissingBundle() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let (store, root) = (fixture.store, fixture.root)
        let a = try TestChain().verified()
        let b = try TestChain().verified()
        _ = try store.install(a, name: "web", issuedBy: "n", now: testNow)

        let path = "\(root)/live/web/bundle.pem"
        let expected: Set<String> = [a.bundle.bundlePEM, b.bundle.bundlePEM]
        let reader = BundleReader(path: path, expected: expected)
        let thread = Thread { reader.run() }
        thread.start()
        defer { reader.stopAndWait() }

        // Make sure the reader is running before installing.
        while reader.reads.load(ordering: .relaxed) == 0 { usleep(1000) }
        for index in 1...200 {
            _ = try store.install(index % 2 == 0 ? a : b, name: "web", issuedBy: "n", now: testNow + Double(index))
        }
        reader.stopAndWait()

        let problems = reader.problems.withLock { $0 }
        #expect(problems.isEmpty, "reader saw: \(problems.prefix(5))")
        let (reads, changes) = (reader.reads.load(ordering: .relaxed), reader.changes.load(ordering: .relaxed))
        #expect(reads > 50, "reader must overlap the installs (reads: \(reads))")
        #expect(changes > 5, "reader must have seen the certificate change (changes: \(changes))")
        #expect(try store.versions(name: "web") == Array(197...201))
    }
}

/// Reads a bundle file in a loop on its own thread, checking each read: the key must match the leaf.
final class BundleReader: Sendable {
    let path: String
    let expected: Set<String>
    let stop = Atomic<Bool>(false)
    let reads = Atomic<Int>(0)
    let changes = Atomic<Int>(0)
    let problems = Mutex<[String]>([])
    private let finished = DispatchSemaphore(value: 0)
    private let stopped = Atomic<Bool>(false)

    init(path: String, expected: Set<String>) {
        self.path = path
        self.expected = expected
    }

    func run() {
        var last: String?
        while !stop.load(ordering: .relaxed) {
            check(&last)
        }
        finished.signal()
    }

    func stopAndWait() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        stop.store(true, ordering: .relaxed)
        finished.wait()
    }

    private func check(_ last: inout String?) {
        reads.add(1, ordering: .relaxed)
        // One open(2) through the symlink, as HAProxy or nginx would do.
        guard let bytes = try? FileSystem().readFile(path) else {
            problems.withLock { $0.append("missing or unreadable \(path)") }
            return
        }
        let text = String(decoding: bytes, as: UTF8.self)
        if text != last {
            if last != nil { changes.add(1, ordering: .relaxed) }
            last = text
        }
        guard expected.contains(text) else {
            problems.withLock { $0.append("unexpected content (\(bytes.count) bytes)") }
            return
        }
        do {
            let blocks = try PEMBlocks.split(text)
            guard let leafBlock = blocks.first(where: { $0.label == "CERTIFICATE" }),
                let keyBlock = blocks.first(where: { $0.label.hasSuffix("PRIVATE KEY") })
            else {
                problems.withLock { $0.append("bundle lacks a certificate or key") }
                return
            }
            let leaf = try Certificate(pemEncoded: leafBlock.text)
            let key = try Certificate.PrivateKey(pemEncoded: keyBlock.text)
            if key.publicKey != leaf.publicKey {
                problems.withLock { $0.append("key does not match leaf") }
            }
        } catch {
            problems.withLock { $0.append("unparseable bundle: \(error)") }
        }
    }
}

/// A shareable boolean for fault-injection closures.
final class Flag: Sendable {
    let value = Atomic<Bool>(false)
}
