import CertStore
import Foundation
import InternalCA
import PeerSync

/// The JSON a follower decodes from a peer: the same bytes as a ``PeerCatalog``, a ``BundlePayload``, an
/// ``AccountPayload``, an ``InternalCAPayload`` (a standby's) and an error body, with the peer API's own decoder.
///
/// Invariants: whatever decodes encodes (with the server's encoder) to JSON that decodes, stably after that first
/// round trip (dates are read leniently and written canonically); the
/// catalogue's serial order is a total order on its entries; a bundle goes through the checks `SyncInstaller`
/// applies (``CertificateBundle/init(fullchainPEM:privateKeyPEM:)`` and ``BundleVerifier``) with typed errors only;
/// descriptions never show a key.
enum PeerJSONTarget {
    static func run(_ bytes: UnsafeRawBufferPointer) throws(FuzzViolation) {
        let data = Data(bytes)
        if let catalog = try? PeerJSON.decoder.decode(PeerCatalog.self, from: data) {
            try checkCatalog(catalog)
        }
        if let bundle = try? PeerJSON.decoder.decode(BundlePayload.self, from: data) {
            try checkBundle(bundle)
        }
        if let account = try? PeerJSON.decoder.decode(AccountPayload.self, from: data) {
            let again = try roundTrip(account)
            let twice = try roundTrip(again)
            try require(again.keyPEM == account.keyPEM && twice.record == again.record, "AccountPayload is not stable after a round trip")
            try require(!leaks(account.keyPEM, in: account.description, besides: account.record.accountURL), "AccountPayload's description shows the key")
        }
        if let ca = try? PeerJSON.decoder.decode(InternalCAPayload.self, from: data) {
            // What a standby does with the renewer's CA before writing it: only InternalCAError may come out.
            let again = try roundTrip(ca)
            try require(again.rootPEM == ca.rootPEM && again.keyPEM == ca.keyPEM, "InternalCAPayload does not survive a round trip")
            try require(!leaks(ca.keyPEM, in: ca.description, besides: ""), "InternalCAPayload's description shows the key")
            _ = try? InternalCADirectory.parse(rootPEM: ca.rootPEM, keyPEM: ca.keyPEM, source: "peer")
        }
        _ = try? PeerJSON.decoder.decode([String: String].self, from: data)
    }

    private static func checkCatalog(_ catalog: PeerCatalog) throws(FuzzViolation) {
        // Stable after one round trip: the decoder is lenient about dates (a peer's odd timestamp is read as some
        // date), the encoder writes them canonically, and from then on nothing changes.
        let again = try roundTrip(catalog)
        let twice = try roundTrip(again)
        try require(twice == again, "PeerCatalog is not stable after a round trip: \(again) became \(twice)")
        for entry in catalog.certificates.prefix(16) {
            try require(catalog.certificate(named: entry.name) != nil, "certificate(named:) misses \(quoted(entry.name))")
            try require(!entry.isNewer(thanNotBefore: entry.notBefore, serial: entry.serial), "\(quoted(entry.serial)) is newer than itself")
            for other in catalog.certificates.prefix(16) {
                let forward = SerialOrder.compare(entry.serial, other.serial)
                let backward = SerialOrder.compare(other.serial, entry.serial)
                try require(forward.rawValue == -backward.rawValue, "SerialOrder is not antisymmetric on \(quoted(entry.serial)), \(quoted(other.serial))")
                try require(!(entry.isNewer(thanNotBefore: other.notBefore, serial: other.serial) && other.isNewer(thanNotBefore: entry.notBefore, serial: entry.serial)),
                            "\(quoted(entry.serial)) and \(quoted(other.serial)) are each newer than the other")
            }
        }
    }

    private static func checkBundle(_ payload: BundlePayload) throws(FuzzViolation) {
        let again = try roundTrip(payload)
        try require(again.name == payload.name && again.fullchainPEM == payload.fullchainPEM && again.privateKeyPEM == payload.privateKeyPEM
                    && again.issuedBy == payload.issuedBy, "BundlePayload does not survive a round trip")
        try require(!leaks(payload.privateKeyPEM, in: payload.description, besides: payload.name), "BundlePayload's description shows the key")
        // What SyncInstaller does with a pulled bundle; only VerificationError may come out (typed throws).
        do {
            let bundle = try CertificateBundle(fullchainPEM: payload.fullchainPEM, privateKeyPEM: payload.privateKeyPEM)
            _ = try BundleVerifier().verify(bundle, expectedDomains: [payload.name], now: PEMTarget.now)
        } catch {
            try require(!error.description.isEmpty && !error.description.contains("\n"), "VerificationError is not one line: \(quoted(error.description))")
        }
    }

    private static func roundTrip<T: Codable>(_ value: T) throws(FuzzViolation) -> T {
        do {
            return try PeerJSON.decoder.decode(T.self, from: PeerJSON.encoder.encode(value))
        } catch {
            throw FuzzViolation("\(T.self) decoded but does not encode and decode again: \(error)")
        }
    }

    /// Whether a key of some length appears in `description` other than through the field printed on purpose.
    private static func leaks(_ key: String, in description: String, besides shown: String) -> Bool {
        key.count >= 16 && !shown.contains(key) && description.contains(key)
    }
}
