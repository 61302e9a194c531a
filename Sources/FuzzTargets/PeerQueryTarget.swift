import CertStore
import Foundation
import PeerSync

/// The peer API's request targets: the whole input is the URI given to ``PeerAPI/respond(method:uri:peer:logger:)``
/// (query parsing, `after=` through ``SyncIndex``, `wait=`, certificate names), answered from the fixture's store.
///
/// Invariants: the answer is 200, 400, 404 or 405 (never 500: the store is healthy); every body is JSON; a 200
/// decodes as the catalogue, bundle or account a follower expects; an error body has an `error` string; a parsed
/// ``SyncIndex`` prints as text that parses back to the same index.
enum PeerQueryTarget {
    static let index = ChangeIndex(initial: SyncIndex(epoch: "00000000000000aa", counter: 7))

    static let api = PeerAPI(
        local: LocalNode(name: "fuzz-node", role: "renewer", store: FuzzFixture.shared.store, acmeDirectoryURL: FuzzFixture.directoryURL),
        index: index, maximumWait: .zero)

    static func run(_ bytes: UnsafeRawBufferPointer) throws(FuzzViolation) {
        let uri = String(decoding: bytes, as: UTF8.self)
        try checkSyncIndex(uri)
        let items = URLComponents(string: uri)?.queryItems ?? []
        for item in items where item.name == "after" {
            try checkSyncIndex(item.value ?? "")
        }
        try check(respond(uri), uri: uri)
    }

    /// Answers `GET uri` synchronously.
    static func respond(_ uri: String, method: String = "GET") -> PeerAPI.Response {
        runBlocking { await api.respond(method: method, uri: uri, peer: "fuzz-peer", logger: FuzzFixture.logger) }
    }

    /// Checks one answer of the peer API to `uri`.
    static func check(_ response: PeerAPI.Response, uri: String) throws(FuzzViolation) {
        try require([200, 400, 404, 405].contains(response.status), "peer API answered \(response.status) to \(quoted(uri)): \(quoted(String(decoding: response.body, as: UTF8.self)))")
        guard response.status == 200 else {
            let error = try? PeerJSON.decoder.decode([String: String].self, from: response.body)
            try require(error?["error"] != nil, "peer API error body for \(quoted(uri)) is not {\"error\": …}")
            return
        }
        if let catalog = try? PeerJSON.decoder.decode(PeerCatalog.self, from: response.body) {
            try require(catalog.node == "fuzz-node" && catalog.index == index.current, "catalogue for \(quoted(uri)) names \(catalog.node) at \(catalog.index)")
            try require(catalog.certificate(named: FuzzFixture.certificateName) != nil, "catalogue for \(quoted(uri)) lacks the installed certificate")
        } else if let bundle = try? PeerJSON.decoder.decode(BundlePayload.self, from: response.body) {
            try require(bundle.name == FuzzFixture.certificateName, "bundle for \(quoted(uri)) is named \(quoted(bundle.name))")
        } else {
            try require((try? PeerJSON.decoder.decode(AccountPayload.self, from: response.body)) != nil, "200 for \(quoted(uri)) is neither catalogue, bundle nor account")
        }
    }

    private static func checkSyncIndex(_ text: String) throws(FuzzViolation) {
        guard let index = SyncIndex(text) else { return }
        try require((1...32).contains(index.epoch.count) && index.epoch.allSatisfy(\.isHexDigit), "SyncIndex(\(quoted(text))) has epoch \(quoted(index.epoch))")
        try require(SyncIndex(index.description) == index, "SyncIndex(\(quoted(text))) prints as \(quoted(index.description)), which does not parse back")
    }
}
