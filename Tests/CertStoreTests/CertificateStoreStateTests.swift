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

    @Test func lockExcludesASecondHolderUntilReleased() async throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let store = fixture.store
        let first = try await store.acquireLock(timeout: .seconds(1))
        #expect(first.isHeld)

        let clock = ContinuousClock()
        let start = clock.now
        do {
            _ = try await store.acquireLock(timeout: .milliseconds(200))
            Issue.record("second acquire must time out while the first is held")
        } catch {
            #expect(error.code == .lockTimeout)
            #expect(error.path == "\(fixture.root)/lock")
        }
        #expect(clock.now - start >= .milliseconds(200))

        first.release()
        #expect(!first.isHeld)
        first.release()  // idempotent
        let second = try await store.acquireLock(timeout: .milliseconds(200))
        #expect(second.isHeld)
        second.release()
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
