import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What is stored about an ACME account besides its key.
public struct AccountRecord: Codable, Sendable, Equatable {
    /// The ACME directory URL the account belongs to.
    public var directoryURL: String
    /// The account URL (the `kid` in JWS headers).
    public var accountURL: String
    /// Contact URIs, e.g. `mailto:ops@example.com`.
    public var contact: [String]
    /// When the account was created (whole seconds, as stored).
    public var createdAt: Date

    /// Creates an account record.
    /// - Parameters:
    ///   - directoryURL: The ACME directory URL.
    ///   - accountURL: The account URL.
    ///   - contact: Contact URIs.
    ///   - createdAt: Creation time; truncated to whole seconds so a saved record loads back equal.
    public init(directoryURL: String, accountURL: String, contact: [String], createdAt: Date) {
        self.directoryURL = directoryURL
        self.accountURL = accountURL
        self.contact = contact
        self.createdAt = Date(timeIntervalSince1970: createdAt.timeIntervalSince1970.rounded(.down))
    }
}

/// An ACME account as stored: its key and, once registered, its record.
public struct StoredAccount: Sendable, Equatable, CustomStringConvertible {
    /// The account private key, PEM.
    public var keyPEM: String
    /// The registration, `nil` when only the key has been saved so far.
    public var record: AccountRecord?

    /// Creates a stored account.
    public init(keyPEM: String, record: AccountRecord?) {
        self.keyPEM = keyPEM
        self.record = record
    }

    /// A summary without the key.
    public var description: String {
        "StoredAccount(key: <redacted>, record: \(record.map { "\($0.accountURL)" } ?? "none"))"
    }
}

extension CertificateStore {
    // MARK: - State files

    /// Reads `root/state/<key>.json`.
    /// - Parameters:
    ///   - type: The type to decode (dates as ISO 8601).
    ///   - key: The state key; same characters as certificate names, up to 128 long.
    /// - Returns: `nil` when the file does not exist.
    /// - Throws: ``StoreError``: `invalidName`, `io`, or `corrupt` when the JSON does not decode.
    public func readState<T: Decodable>(_ type: T.Type, key: String) throws(StoreError) -> T? {
        try StoreName.check(key, kind: "state key", maximumLength: StoreName.maximumStateKeyLength)
        let path = statePath(key: key)
        guard let bytes = try fileSystem.readFile(path) else { return nil }
        do {
            return try Self.jsonDecoder.decode(T.self, from: Data(bytes))
        } catch {
            throw StoreError(code: .corrupt, operation: "decode state", path: path, detail: "\(error)")
        }
    }

    /// Writes `root/state/<key>.json` atomically with mode 0600 (dates as ISO 8601).
    /// - Parameters:
    ///   - value: The value to encode.
    ///   - key: The state key; same characters as certificate names, up to 128 long.
    /// - Throws: ``StoreError``: `invalidName`, `io`, or `corrupt` when the value does not encode.
    public func writeState<T: Encodable>(_ value: T, key: String) throws(StoreError) {
        try StoreName.check(key, kind: "state key", maximumLength: StoreName.maximumStateKeyLength)
        try prepare()
        let path = statePath(key: key)
        let bytes: [UInt8]
        do {
            bytes = Array(try Self.jsonEncoder.encode(value)) + [UInt8(ascii: "\n")]
        } catch {
            throw StoreError(code: .corrupt, operation: "encode state", path: path, detail: "\(error)")
        }
        try AtomicFile.write(bytes, to: path, mode: 0o600, fileSystem: fileSystem)
    }

    /// `root/state/<key>.json`.
    public func statePath(key: String) -> String { "\(stateRoot)/\(key).json" }

    // MARK: - ACME accounts

    /// The directory name under `accounts/` for an ACME directory URL: host, port and path made safe
    /// (`[A-Za-z0-9._-]`), plus 12 hex digits of the URL's SHA-256 so distinct URLs never share a directory.
    ///
    /// `https://acme-v02.api.letsencrypt.org/directory` → `acme-v02.api.letsencrypt.org_directory-<hash>`.
    /// - Parameter directoryURL: The ACME directory URL.
    public static func accountDirectoryName(directoryURL: String) -> String {
        var readable = directoryURL
        if let components = URLComponents(string: directoryURL), let host = components.host, !host.isEmpty {
            readable = host + (components.port.map { "_\($0)" } ?? "") + components.path
        }
        var safe = ""
        for scalar in readable.unicodeScalars {
            let allowed = scalar.isASCII && (CharacterSet.alphanumerics.contains(scalar) || scalar == "." || scalar == "-")
            let next: Character = allowed ? Character(scalar) : "_"
            if next == "_" && safe.hasSuffix("_") { continue }
            safe.append(next)
        }
        while let first = safe.first, first == "." || first == "_" || first == "-" { safe.removeFirst() }
        while let last = safe.last, last == "." || last == "_" || last == "-" { safe.removeLast() }
        let hash = Hex.encode(SHA256.hash(data: Array(directoryURL.utf8)).prefix(6))
        return (safe.isEmpty ? "account" : String(safe.prefix(80))) + "-" + hash
    }

    /// `root/accounts/<accountDirectoryName>`.
    public func accountDirectory(directoryURL: String) -> String {
        "\(accountsRoot)/\(Self.accountDirectoryName(directoryURL: directoryURL))"
    }

    /// `root/accounts/<accountDirectoryName>/key.pem`: the account key of an ACME directory (mode 0600).
    public func accountKeyPath(directoryURL: String) -> String {
        "\(accountDirectory(directoryURL: directoryURL))/\(Self.accountKeyFileName)"
    }

    static let accountKeyFileName = "key.pem"

    /// Loads the account stored for an ACME directory.
    /// - Parameter directoryURL: The ACME directory URL.
    /// - Returns: `nil` when no key has been saved; the record is `nil` when only the key exists.
    /// - Throws: ``StoreError``: `io`, or `corrupt` when account.json does not decode.
    public func loadAccount(directoryURL: String) throws(StoreError) -> StoredAccount? {
        let directory = accountDirectory(directoryURL: directoryURL)
        guard let key = try fileSystem.readFile("\(directory)/\(Self.accountKeyFileName)") else { return nil }
        var record: AccountRecord?
        let recordPath = "\(directory)/account.json"
        if let bytes = try fileSystem.readFile(recordPath) {
            do {
                record = try Self.jsonDecoder.decode(AccountRecord.self, from: Data(bytes))
            } catch {
                throw StoreError(code: .corrupt, operation: "decode account", path: recordPath, detail: "\(error)")
            }
        }
        return StoredAccount(keyPEM: String(decoding: key, as: UTF8.self), record: record)
    }

    /// Saves the account key (mode 0600) for an ACME directory, atomically.
    /// - Parameters:
    ///   - directoryURL: The ACME directory URL.
    ///   - keyPEM: The account private key.
    /// - Throws: ``StoreError`` naming the path.
    public func saveAccountKey(directoryURL: String, keyPEM: String) throws(StoreError) {
        let directory = try makeAccountDirectory(directoryURL: directoryURL)
        try AtomicFile.write(Array(keyPEM.utf8), to: "\(directory)/\(Self.accountKeyFileName)", mode: 0o600, fileSystem: fileSystem)
    }

    /// Saves the account record (mode 0600) for an ACME directory, atomically.
    /// - Parameters:
    ///   - directoryURL: The ACME directory URL.
    ///   - record: The registration.
    /// - Throws: ``StoreError`` naming the path.
    public func saveAccountRecord(directoryURL: String, record: AccountRecord) throws(StoreError) {
        let directory = try makeAccountDirectory(directoryURL: directoryURL)
        let path = "\(directory)/account.json"
        let bytes: [UInt8]
        do {
            bytes = Array(try Self.jsonEncoder.encode(record)) + [UInt8(ascii: "\n")]
        } catch {
            throw StoreError(code: .corrupt, operation: "encode account", path: path, detail: "\(error)")
        }
        try AtomicFile.write(bytes, to: path, mode: 0o600, fileSystem: fileSystem)
    }

    private func makeAccountDirectory(directoryURL: String) throws(StoreError) -> String {
        try prepare()
        let directory = accountDirectory(directoryURL: directoryURL)
        try fileSystem.makeDirectory(directory, mode: 0o700)
        return directory
    }
}
