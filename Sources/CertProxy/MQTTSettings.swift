import NIOCore

/// A frontend's MQTT options: CONNECT validation (``MQTTConnectGate``) and stickiness by client id
/// (``StickTable``). The default value turns both off.
public struct MQTTSettings: Sendable, Hashable {
    /// 5 s, like a typical `tcp-request inspect-delay` in front of a broker.
    public static let defaultConnectDeadline: TimeAmount = .seconds(5)
    /// 30 min since the last connection with that client id.
    public static let defaultStickExpiry: Duration = .seconds(30 * 60)
    /// 100,000 client ids (ids longer than 256 bytes are not stuck, so at most about 30 MB).
    public static let defaultStickTableSize = 100_000

    /// `require_mqtt_connect`: close any connection whose first packet is not a valid MQTT CONNECT.
    public var requireConnect: Bool
    /// `mqtt_connect_timeout`: how long a client has to send its CONNECT (after the TLS handshake).
    public var connectDeadline: TimeAmount
    /// `mqtt_max_connect_size`: the largest CONNECT accepted, fixed header included.
    public var maxPacketSize: Int
    /// `stick: mqtt_client_id`: send a client id to the server it went to last time, while that server is up.
    /// Requires the CONNECT to be read first, so it implies CONNECT validation.
    public var stickByClientID: Bool
    /// `stick_expire`: how long an entry lives after its last use.
    public var stickExpiry: Duration
    /// `stick_table_size`: the most client ids remembered; the least recently used is dropped beyond it.
    public var stickTableSize: Int

    /// Creates MQTT settings.
    /// - Parameters:
    ///   - requireConnect: Validate the first packet (off by default).
    ///   - connectDeadline: Time allowed for the CONNECT (5 s by default).
    ///   - maxPacketSize: Largest CONNECT (64 KiB by default).
    ///   - stickByClientID: Stick client ids to servers (off by default).
    ///   - stickExpiry: Entry lifetime after last use (30 min by default).
    ///   - stickTableSize: Most entries (100,000 by default).
    public init(
        requireConnect: Bool = false,
        connectDeadline: TimeAmount = MQTTSettings.defaultConnectDeadline,
        maxPacketSize: Int = MQTTConnectParser.defaultMaxPacketSize,
        stickByClientID: Bool = false,
        stickExpiry: Duration = MQTTSettings.defaultStickExpiry,
        stickTableSize: Int = MQTTSettings.defaultStickTableSize
    ) {
        self.requireConnect = requireConnect
        self.connectDeadline = connectDeadline
        self.maxPacketSize = maxPacketSize
        self.stickByClientID = stickByClientID
        self.stickExpiry = stickExpiry
        self.stickTableSize = stickTableSize
    }

    /// Whether connections need an ``MQTTConnectGate`` (validation asked for, or needed to learn the client id).
    public var needsConnectGate: Bool { requireConnect || stickByClientID }
}
