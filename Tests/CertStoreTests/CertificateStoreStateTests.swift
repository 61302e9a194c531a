import Foundation
import Glibc
import Testing

@testable import CertStore

@Suite("CertificateStore state, accounts, lock")
struct CertificateStoreStateTests {
    struct RenewalState: Codable, Equatable {
        var attempts: Int
        var nextCheck: Date
        var lastError: String?
    }

    @Test func stateRoundTripsAtomicallyWithMode0600() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let (store, root) = (fixture.store, fixture.root)
        #expect(try store.readState(RenewalState.self, key: "web") == nil)

        let first = RenewalState(attempts: 1, nextCheck: testNow + 3600, lastError: nil)
        try store.writeState(first, key: "web")
        #expect(try store.readState(RenewalState.self, key: "web") == first)
        #expect(fileMode("\(root)/state/web.json") == 0o600)
        #expect(readText("\(root)/state/web.json")?.contains("2026-01-01T01:00:00Z") == true)

        let second = RenewalState(attempts: 2, nextCheck: testNow + 7200, lastError: "rateLimited")
        try store.writeState(second, key: "web")
        #expect(try store.readState(RenewalState.self, key: "web") == second)
        #expect(directoryEntries("\(root)/state") == ["web.json"], "no temporary files left")
    }

    @Test("leftover temporaries of killed writers are removed at start and before each write; fresh ones and other files stay")
    func staleTemporariesAreRemoved() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let (store, root) = (fixture.store, fixture.root)
        try store.prepare()
        try FileManager.default.createDirectory(atPath: "\(root)/internal-ca", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "\(root)/accounts/acme.example_directory-0123456789ab", withIntermediateDirectories: true)
        let old = Date().addingTimeInterval(-2 * AtomicFile.staleTemporaryAge)
        func leave(_ relative: String, modified: Date) throws {
            let path = "\(root)/\(relative)"
            #expect(FileManager.default.createFile(atPath: path, contents: Data("partial".utf8)))
            try FileManager.default.setAttributes([.modificationDate: modified], ofItemAtPath: path)
        }
        let stale = [
            "state/.renewal-web.json.tmp-0123456789ab", "internal-ca/.root.key.tmp-a1b2c3d4e5f6",
            "accounts/acme.example_directory-0123456789ab/.key.pem.tmp-ffffffffffff", ".lock.tmp-000000000000",
        ]
        for path in stale { try leave(path, modified: old) }
        // Someone else's write in progress, and files that only look similar: all stay.
        let kept = [
            "state/.renewal-api.json.tmp-abcdefabcdef", "state/notes.tmp-0123456789ab", "state/.renewal-web.json.tmp-XYZ",
            "state/.renewal-web.json.tmp-0123456789abcd", "state/renewal-web.json",
        ]
        try leave(kept[0], modified: Date())
        for path in kept.dropFirst() { try leave(path, modified: old) }
        try leave("live/.web.json.tmp-0123456789ab", modified: old)

        #expect(Set(store.removeStaleTemporaries()) == Set(stale))
        for path in stale { #expect(!FileManager.default.fileExists(atPath: "\(root)/\(path)"), "\(path)") }
        for path in kept { #expect(FileManager.default.fileExists(atPath: "\(root)/\(path)"), "\(path)") }
        #expect(FileManager.default.fileExists(atPath: "\(root)/live/.web.json.tmp-0123456789ab"), "live/ is the install's to clean")

        // Before each write, the written file's own stale temporaries go.
        try leave("state/.web.json.tmp-0123456789ab", modified: old)
        try store.writeState(RenewalState(attempts: 1, nextCheck: testNow, lastError: nil), key: "web")
        #expect(!FileManager.default.fileExists(atPath: "\(root)/state/.web.json.tmp-0123456789ab"))
        #expect(FileManager.default.fileExists(atPath: "\(root)/\(kept[0])"), "a fresh temporary of another file stays")
    }

    @Test func corruptStateIsReportedWithItsPath() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let (store, root) = (fixture.store, fixture.root)
        try store.prepare()
        try AtomicFile.write(Array("{not json".utf8), to: "\(root)/state/web.json", mode: 0o600)
        do {
            _ = try store.readState(RenewalState.self, key: "web")
            Issue.record("corrupt state must throw")
        } catch {
            #expect(error.code == .corrupt)
            #expect(error.path == "\(root)/state/web.json")
            #expect(!error.description.contains("\n"))
        }
    }

    @Test func accountKeyAndRecordAreStoredPerDirectory() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let (store, root) = (fixture.store, fixture.root)
        let letsEncrypt = "https://acme-v02.api.letsencrypt.org/directory"
        let pebble = "https://127.0.0.1:14000/dir"
        #expect(try store.loadAccount(directoryURL: letsEncrypt) == nil)

        let key = TestKey.p256().pem
        try store.saveAccountKey(directoryURL: letsEncrypt, keyPEM: key)
        #expect(try store.loadAccount(directoryURL: letsEncrypt) == StoredAccount(keyPEM: key, record: nil))
        #expect(try store.loadAccount(directoryURL: pebble) == nil)

        let record = AccountRecord(
            directoryURL: letsEncrypt, accountURL: "https://acme-v02.api.letsencrypt.org/acme/acct/123",
            contact: ["mailto:ops@example.com"], createdAt: testNow + 0.5)
        try store.saveAccountRecord(directoryURL: letsEncrypt, record: record)
        let loaded = try #require(try store.loadAccount(directoryURL: letsEncrypt))
        #expect(loaded.keyPEM == key)
        #expect(loaded.record == record)
        #expect(loaded.record?.createdAt == testNow)
        #expect(!"\(loaded)".contains("PRIVATE KEY"))

        let directory = store.accountDirectory(directoryURL: letsEncrypt)
        #expect(directory.hasPrefix("\(root)/accounts/acme-v02.api.letsencrypt.org_directory-"))
        #expect(fileMode("\(directory)/key.pem") == 0o600)
        #expect(fileMode("\(directory)/account.json") == 0o600)
        #expect(fileMode(directory) == 0o700)
        #expect(directoryEntries(directory) == ["account.json", "key.pem"])
    }

    @Test func accountDirectoryNamesAreSafeAndDistinct() {
        let urls = [
            "https://acme-v02.api.letsencrypt.org/directory",
            "https://acme-staging-v02.api.letsencrypt.org/directory",
            "https://127.0.0.1:14000/dir",
            "https://127.0.0.1:14001/dir",
            "https://example.com/acme/../../etc/passwd",
            "https://example.com/acme/..%2F..%2Fetc",
            "not a url at all/..",
            "",
        ]
        let names = urls.map(Store.accountDirectoryName(directoryURL:))
        #expect(Set(names).count == urls.count)
        for name in names {
            #expect(!name.contains("/"))
            #expect(!name.hasPrefix("."))
            #expect(name != "..")
            #expect(name.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "._-".unicodeScalars.contains($0)) })
            #expect(name.count <= 100)
        }
        #expect(names[2].hasPrefix("127.0.0.1_14000_dir-"))
        #expect(Store.accountDirectoryName(directoryURL: urls[0]) == names[0], "stable")
    }

    @Test("another process holding the lock makes acquire time out; a holder in this process is waited for in turn")
    func lockExcludesASecondHolderUntilReleased() async throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let store = fixture.store
        try store.prepare()
        // Another process holds the lock: util-linux flock(1) running cat, until cat's input closes. The line echoed
        // back says it holds it.
        let path = "\(fixture.root)/lock"
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
        holder.arguments = [path, "cat"]
        let input = Pipe(), output = Pipe()
        holder.standardInput = input
        holder.standardOutput = output
        try holder.run()
        defer { if holder.isRunning { holder.terminate() } }
        input.fileHandleForWriting.write(Data("held\n".utf8))
        #expect(String(decoding: output.fileHandleForReading.availableData, as: UTF8.self).hasPrefix("held"))

        let clock = ContinuousClock()
        let start = clock.now
        do {
            _ = try await store.acquireLock(timeout: .milliseconds(200))
            Issue.record("acquire must time out while another process holds the lock")
        } catch {
            #expect(error.code == .lockTimeout)
            #expect(error.path == path)
        }
        #expect(clock.now - start >= .milliseconds(200))
        try input.fileHandleForWriting.close()
        holder.waitUntilExit()

        // In this process: a second holder waits for the first (however long), then gets it.
        let first = try await store.acquireLock(timeout: .milliseconds(200))
        #expect(first.isHeld)
        async let second = store.acquireLock(timeout: .milliseconds(100))
        try await Task.sleep(for: .milliseconds(400))
        first.release()
        #expect(!first.isHeld)
        first.release()  // idempotent
        let next = try await second
        #expect(next.isHeld)
        next.release()
    }

    @Test func waitingForTheLockEndsWhenItIsReleased() async throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let store = fixture.store
        let first = try await store.acquireLock(timeout: .seconds(1))
        async let waiter = store.acquireLock(timeout: .seconds(10))
        try await Task.sleep(for: .milliseconds(150))
        first.release()
        let second = try await waiter
        #expect(second.isHeld)
    }

    @Test func droppingTheLockReleasesIt() async throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let store = fixture.store
        do {
            let held = try await store.acquireLock(timeout: .seconds(1))
            #expect(held.isHeld)
        }
        let again = try await store.acquireLock(timeout: .milliseconds(100))
        #expect(again.isHeld)
    }

    @Test func cancellingAWaiterStopsItPromptly() async throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let store = fixture.store
        let held = try await store.acquireLock(timeout: .seconds(1))
        let waiter = Task { () async throws(StoreError) -> StoreLock in
            try await store.acquireLock(timeout: .seconds(30))
        }
        try await Task.sleep(for: .milliseconds(100))
        let clock = ContinuousClock()
        let start = clock.now
        waiter.cancel()
        let result = await waiter.result
        #expect(clock.now - start < .seconds(20))  // the waiter would otherwise wait 30 s
        switch result {
        case .success: Issue.record("a cancelled waiter must not get the lock")
        case .failure(let error): #expect((error as? StoreError)?.code == .cancelled)
        }
        #expect(held.isHeld)
    }

    @Test func atomicFileReplacesContentAndMode() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = "\(directory.path)/file.txt"
        try AtomicFile.write(Array("one".utf8), to: path, mode: 0o644)
        #expect(readText(path) == "one")
        #expect(fileMode(path) == 0o644)
        try AtomicFile.write(Data("two".utf8), to: path, mode: 0o600)
        #expect(readText(path) == "two")
        #expect(fileMode(path) == 0o600)
        #expect(directoryEntries(directory.path) == ["file.txt"])

        do {
            try AtomicFile.write(Array("x".utf8), to: "\(directory.path)/missing/file.txt", mode: 0o600)
            Issue.record("writing into a missing directory must fail")
        } catch {
            #expect(error.errno == ENOENT)
            #expect(error.description.contains("\(directory.path)/missing"))
        }
    }

    @Test func storeErrorPrintsOneLine() {
        let error = StoreError(code: .io, operation: "write", path: "/var/lib/certkeeper/live/web", errno: ENOSPC, detail: "a\nb")
        #expect(error.description == "write /var/lib/certkeeper/live/web: No space left on device (errno \(ENOSPC)); a b")
    }
}
