import NIOConcurrencyHelpers

/// `stick: mqtt_client_id` for one frontend: a ``StickTable`` from client id to server name behind a lock, shared
/// by the connections of every event loop.
///
/// Servers are remembered by name, so an entry means the same server for as long as the table lives. A
/// reconfiguration builds a new table (HAProxy also starts its tables afresh on a reload unless it has peers).
final class StickyClients: Sendable {
    private let table: NIOLockedValueBox<StickTable<String>>

    /// - Parameter settings: Table size and entry expiry.
    init(settings: MQTTSettings) {
        table = NIOLockedValueBox(StickTable(capacity: settings.stickTableSize, expiry: settings.stickExpiry))
    }

    /// The number of remembered client ids.
    var count: Int { table.withLockedValue { $0.count } }

    /// The server name `clientID` is stuck to, if that server is still up (see ``StickTable/server(for:now:isUp:)``).
    func server(for clientID: String, now: ContinuousClock.Instant, isUp: (String) -> Bool) -> String? {
        table.withLockedValue { $0.server(for: clientID, now: now, isUp: isUp) }
    }

    /// The longest client id remembered, in UTF-8 bytes. A CONNECT may carry an id of up to the packet limit
    /// (64 KiB by default) before any broker has authenticated it; longer ids are balanced without being stuck,
    /// which bounds the table at about `stick_table_size` × 300 bytes (100,000 ids: about 30 MB at worst).
    static let maxClientIDBytes = 256

    /// Sticks `clientID` to the server named `server` (not when the id is longer than ``maxClientIDBytes``).
    func stick(_ clientID: String, to server: String, now: ContinuousClock.Instant) {
        guard clientID.utf8.count <= Self.maxClientIDBytes else { return }
        table.withLockedValue { $0.stick(clientID, to: server, now: now) }
    }
}

extension BackendPool {
    /// Picks a server for a client with an MQTT client id and takes a slot on it: the server the id is stuck to
    /// when that one is up, not full and not yet tried for this client; otherwise the balance algorithm's choice
    /// (``acquire(excluding:)``), which the id is then stuck to.
    /// - Parameters:
    ///   - clientID: The CONNECT's client id (an empty one is never stuck).
    ///   - clients: The frontend's table.
    ///   - excluded: Servers already tried for this client.
    ///   - now: The current time.
    /// - Returns: The server's index and runtime, or `nil` when no server can take the connection.
    func acquire(
        clientID: String, stickingIn clients: StickyClients, excluding excluded: Set<Int>,
        now: ContinuousClock.Instant = .now
    ) -> (index: Int, server: ServerRuntime)? {
        let stuck = clients.server(for: clientID, now: now) { name in
            servers.first { $0.settings.name == name }?.isUp ?? false
        }
        if let stuck, let index = servers.firstIndex(where: { $0.settings.name == stuck }), !excluded.contains(index),
            servers[index].tryAcquire()
        {
            return (index, servers[index])
        }
        guard let chosen = acquire(excluding: excluded) else { return nil }
        clients.stick(clientID, to: chosen.server.settings.name, now: now)
        return chosen
    }
}
