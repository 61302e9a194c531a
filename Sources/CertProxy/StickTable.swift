/// Remembers which server each key (an MQTT client id) went to, so the next connection with that key goes to the
/// same server while it is up (HAProxy's `stick on ... mqtt_field_value(connect,client_identifier)`).
///
/// Entries expire ``expiry`` after their last use and the least recently used one is dropped when the table is
/// full; an entry whose server is down is dropped when it is looked up. Time is a parameter: every call takes
/// `now`, which must not go backwards between calls. All operations are O(1).
///
/// A value type with no lock: share it between event loops in a lock (`NIOLockedValueBox<StickTable<…>>`) and
/// keep the closure passed to ``server(for:now:isUp:)`` cheap, since it runs under that lock.
public struct StickTable<ServerID: Hashable & Sendable>: Sendable {
    private struct Entry: Sendable {
        var key: String
        var server: ServerID
        var lastUsed: ContinuousClock.Instant
        /// Slot of the next more recently used entry, or -1.
        var newer: Int
        /// Slot of the next less recently used entry, or -1.
        var older: Int
    }

    /// The most entries kept.
    public let capacity: Int
    /// How long an entry lives after its last use.
    public let expiry: Duration

    /// Entries, linked from most to least recently used; freed slots are listed in `freeSlots`.
    private var slots: [Entry] = []
    private var freeSlots: [Int] = []
    private var slotByKey: [String: Int] = [:]
    private var newest = -1
    private var oldest = -1

    /// Creates an empty table.
    /// - Parameters:
    ///   - capacity: The most entries kept (at least 1).
    ///   - expiry: How long an entry lives after its last use.
    public init(capacity: Int, expiry: Duration) {
        precondition(capacity > 0, "a stick table needs room for at least one entry")
        self.capacity = capacity
        self.expiry = expiry
    }

    /// The number of entries, expired ones not yet dropped included.
    public var count: Int { slotByKey.count }

    /// The server `key` is stuck to, refreshing the entry's last use; `nil` (and the entry dropped) when there is
    /// none, it expired, or its server is not up.
    /// - Parameters:
    ///   - key: The client id; an empty key is never stuck.
    ///   - now: The current time.
    ///   - isUp: Whether a server may take new connections.
    public mutating func server(
        for key: String, now: ContinuousClock.Instant, isUp: (ServerID) -> Bool
    ) -> ServerID? {
        removeExpired(now: now)
        guard let slot = slotByKey[key] else { return nil }
        let server = slots[slot].server
        guard isUp(server) else {
            remove(slot: slot)
            return nil
        }
        slots[slot].lastUsed = now
        moveToNewest(slot)
        return server
    }

    /// Sticks `key` to `server` from `now` on, replacing what it was stuck to and dropping the least recently
    /// used entry when the table is full. An empty key is ignored.
    public mutating func stick(_ key: String, to server: ServerID, now: ContinuousClock.Instant) {
        guard !key.isEmpty else { return }
        removeExpired(now: now)
        if let slot = slotByKey[key] {
            slots[slot].server = server
            slots[slot].lastUsed = now
            moveToNewest(slot)
            return
        }
        if slotByKey.count >= capacity { remove(slot: oldest) }
        let entry = Entry(key: key, server: server, lastUsed: now, newer: -1, older: -1)
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
            slots[slot] = entry
        } else {
            slot = slots.count
            slots.append(entry)
        }
        slotByKey[key] = slot
        linkAsNewest(slot)
    }

    /// Drops the entries not used for ``expiry``. Called by every other operation; call it from a timer to release
    /// the memory of a table that is no longer consulted.
    public mutating func removeExpired(now: ContinuousClock.Instant) {
        while oldest != -1, slots[oldest].lastUsed + expiry <= now {
            remove(slot: oldest)
        }
    }

    private mutating func remove(slot: Int) {
        unlink(slot)
        slotByKey[slots[slot].key] = nil
        slots[slot].key = ""  // release the string's storage now
        freeSlots.append(slot)
    }

    private mutating func moveToNewest(_ slot: Int) {
        guard slot != newest else { return }
        unlink(slot)
        linkAsNewest(slot)
    }

    private mutating func linkAsNewest(_ slot: Int) {
        slots[slot].newer = -1
        slots[slot].older = newest
        if newest != -1 { slots[newest].newer = slot }
        newest = slot
        if oldest == -1 { oldest = slot }
    }

    private mutating func unlink(_ slot: Int) {
        let newer = slots[slot].newer
        let older = slots[slot].older
        if newer != -1 { slots[newer].older = older } else { newest = older }
        if older != -1 { slots[older].newer = newer } else { oldest = newer }
        slots[slot].newer = -1
        slots[slot].older = -1
    }
}
