import CertProxy
import Testing

/// Builds CONNECT packets field by field, so each test states only what it changes.
struct ConnectPacketBuilder {
    var protocolName = "MQTT"
    var level: UInt8 = 4
    var cleanSession = true
    var keepAlive: UInt16 = 60
    /// MQTT 5 property bytes (without their length); `nil` writes no property block (3.x).
    var properties: [UInt8]?
    var clientID: [UInt8] = Array("client-1".utf8)
    var will: (properties: [UInt8]?, topic: String, payload: [UInt8], qos: UInt8, retain: Bool)?
    var username: String?
    var password: [UInt8]?
    /// Raw bits OR-ed into the connect flags (to build invalid combinations).
    var extraFlags: UInt8 = 0
    /// The first byte (type and flags).
    var firstByte: UInt8 = 0x10
    /// Bytes appended after the last field, inside the remaining length.
    var padding: [UInt8] = []

    static func v31(_ clientID: String = "client-31") -> ConnectPacketBuilder {
        var builder = ConnectPacketBuilder()
        builder.protocolName = "MQIsdp"
        builder.level = 3
        builder.clientID = Array(clientID.utf8)
        return builder
    }

    static func v311(_ clientID: String = "client-311") -> ConnectPacketBuilder {
        var builder = ConnectPacketBuilder()
        builder.clientID = Array(clientID.utf8)
        return builder
    }

    static func v5(_ clientID: String = "client-5", properties: [UInt8] = []) -> ConnectPacketBuilder {
        var builder = ConnectPacketBuilder()
        builder.level = 5
        builder.clientID = Array(clientID.utf8)
        builder.properties = properties
        return builder
    }

    var bytes: [UInt8] {
        var flags = extraFlags
        if cleanSession { flags |= 0x02 }
        if let will {
            flags |= 0x04 | will.qos << 3 | (will.retain ? 0x20 : 0)
        }
        if username != nil { flags |= 0x80 }
        if password != nil { flags |= 0x40 }
        var body = Self.string(protocolName) + [level, flags, UInt8(keepAlive >> 8), UInt8(keepAlive & 0xFF)]
        if let properties { body += Self.variableInteger(properties.count) + properties }
        body += Self.binary(clientID)
        if let will {
            if let properties = will.properties { body += Self.variableInteger(properties.count) + properties }
            body += Self.string(will.topic) + Self.binary(will.payload)
        }
        if let username { body += Self.string(username) }
        if let password { body += Self.binary(password) }
        body += padding
        return [firstByte] + Self.variableInteger(body.count) + body
    }

    static func string(_ text: String) -> [UInt8] { binary(Array(text.utf8)) }

    static func binary(_ data: [UInt8]) -> [UInt8] {
        [UInt8(data.count >> 8), UInt8(data.count & 0xFF)] + data
    }

    static func variableInteger(_ value: Int) -> [UInt8] {
        var value = value
        var out: [UInt8] = []
        repeat {
            var byte = UInt8(value & 0x7F)
            value >>= 7
            if value > 0 { byte |= 0x80 }
            out.append(byte)
        } while value > 0
        return out
    }
}

/// MQTT 5 property encodings used by the tests.
enum Property {
    static func byte(_ id: UInt8, _ value: UInt8) -> [UInt8] { [id, value] }
    static func twoBytes(_ id: UInt8, _ value: UInt16) -> [UInt8] { [id, UInt8(value >> 8), UInt8(value & 0xFF)] }
    static func fourBytes(_ id: UInt8, _ value: UInt32) -> [UInt8] {
        [id, UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }
    static func string(_ id: UInt8, _ value: String) -> [UInt8] { [id] + ConnectPacketBuilder.string(value) }
    static func binary(_ id: UInt8, _ value: [UInt8]) -> [UInt8] { [id] + ConnectPacketBuilder.binary(value) }
    static func pair(_ name: String, _ value: String) -> [UInt8] {
        [0x26] + ConnectPacketBuilder.string(name) + ConnectPacketBuilder.string(value)
    }

    /// Every property a CONNECT may carry, user properties twice.
    static let allConnect: [UInt8] =
        fourBytes(0x11, 3600) + twoBytes(0x21, 20) + fourBytes(0x27, 1 << 20) + twoBytes(0x22, 10) + byte(0x19, 1)
        + byte(0x17, 0) + pair("site", "lab") + pair("site", "field") + string(0x15, "SCRAM-SHA-1")
        + binary(0x16, [1, 2, 3, 0])
    /// Every property a will may carry.
    static let allWill: [UInt8] =
        fourBytes(0x18, 30) + byte(0x01, 1) + fourBytes(0x02, 600) + string(0x03, "text/plain")
        + string(0x08, "replies/x") + binary(0x09, [0xFF, 0x00]) + pair("k", "v")
}

@Suite("MQTT CONNECT parser")
struct MQTTConnectParserTests {
    let parser = MQTTConnectParser()

    func connect(_ bytes: [UInt8], parser: MQTTConnectParser = MQTTConnectParser()) -> MQTTConnectPacket? {
        if case .connect(let packet) = parser.parse(bytes) { return packet }
        return nil
    }

    func rejection(_ bytes: [UInt8], parser: MQTTConnectParser = MQTTConnectParser()) -> MQTTConnectRejection? {
        if case .invalid(let rejection) = parser.parse(bytes) { return rejection }
        return nil
    }

    static func fullV311() -> ConnectPacketBuilder {
        var builder = ConnectPacketBuilder.v311("sensor/42")
        builder.will = (nil, "status/sensor42", Array("offline".utf8), 1, true)
        builder.username = "device"
        builder.password = [0x00, 0xFF, 0x10]
        return builder
    }

    static func fullV5() -> ConnectPacketBuilder {
        var builder = ConnectPacketBuilder.v5("gateway-ü-7", properties: Property.allConnect)
        builder.will = (Property.allWill, "lwt/gateway", [0, 1, 2], 2, false)
        builder.username = "gw"
        builder.password = Array("secret".utf8)
        return builder
    }

    @Test("3.1, 3.1.1 and 5.0 CONNECTs give their client id, version and size")
    func validPackets() {
        let v31 = ConnectPacketBuilder.v31().bytes
        #expect(connect(v31) == MQTTConnectPacket(clientID: "client-31", version: .v3_1, bytesConsumed: v31.count))
        let v311 = Self.fullV311().bytes
        #expect(connect(v311) == MQTTConnectPacket(clientID: "sensor/42", version: .v3_1_1, bytesConsumed: v311.count))
        let v5 = Self.fullV5().bytes
        #expect(connect(v5) == MQTTConnectPacket(clientID: "gateway-ü-7", version: .v5, bytesConsumed: v5.count))
        let bare5 = ConnectPacketBuilder.v5().bytes
        #expect(connect(bare5)?.clientID == "client-5")
    }

    @Test("every proper prefix needs more data; the whole packet parses; what follows it is left alone")
    func byteByByte() {
        for packet in [ConnectPacketBuilder.v31().bytes, Self.fullV311().bytes, Self.fullV5().bytes] {
            for length in 0..<packet.count {
                #expect(parser.parse(Array(packet[..<length])) == .needMoreData, "prefix of \(length)/\(packet.count)")
            }
            let publish: [UInt8] = [0x30, 0x05, 0x00, 0x01, 0x74, 0x68, 0x69]
            #expect(connect(packet + publish)?.bytesConsumed == packet.count)
        }
    }

    @Test("a remaining length with a multi-byte encoding is decoded")
    func longPacket() {
        var builder = ConnectPacketBuilder.v311()
        builder.username = "u"
        builder.password = Array(repeating: 0x41, count: 20_000)
        let bytes = builder.bytes
        #expect(bytes[1] & 0x80 != 0 && bytes[2] & 0x80 != 0 && bytes[3] & 0x80 == 0)
        #expect(connect(bytes)?.bytesConsumed == bytes.count)
    }

    @Test("a packet over the size limit is rejected as soon as its header is read")
    func oversize() {
        let header: [UInt8] = [0x10, 0xFF, 0xFF, 0x03]  // 65,535 bytes follow
        #expect(rejection(header) == .packetTooLarge(size: 65_539, limit: 65_536))
        var builder = ConnectPacketBuilder.v311()
        builder.username = "u"
        builder.password = Array(repeating: 0, count: 200)
        let small = MQTTConnectParser(maxPacketSize: 128)
        let bytes = builder.bytes
        #expect(rejection(Array(bytes[..<3]), parser: small) == .packetTooLarge(size: bytes.count, limit: 128))
        #expect(rejection(bytes, parser: small) == .packetTooLarge(size: bytes.count, limit: 128))
        let exact = MQTTConnectParser(maxPacketSize: bytes.count)
        #expect(connect(bytes, parser: exact) != nil)
    }

    @Test("remaining length longer than 4 bytes, or not minimal, is rejected")
    func remainingLengthEncoding() {
        #expect(rejection([0x10, 0x80, 0x80, 0x80, 0x80, 0x01]) == .remainingLengthTooLong)
        #expect(rejection([0x10, 0x80, 0x80, 0x80]) == nil)  // still a valid prefix (rejected by size later)
        #expect(rejection([0x10, 0x8C, 0x00]) == .remainingLengthNotMinimal)
        #expect(rejection([0x10, 0x00]) == .malformed(.protocolName))
    }

    @Test("wrong protocol names and name/level pairs are rejected on their own bytes")
    func protocolNames() {
        var builder = ConnectPacketBuilder.v311()
        builder.protocolName = "MQTX"
        let mqtx = builder.bytes
        #expect(rejection(Array(mqtx[..<8])) == .unsupportedProtocol(name: "'MQTX'", level: nil))
        builder.protocolName = "MQIsdp"
        builder.level = 4
        #expect(rejection(builder.bytes) == .unsupportedProtocol(name: "MQIsdp", level: 4))
        builder.protocolName = "MQTT"
        builder.level = 3
        #expect(rejection(builder.bytes) == .unsupportedProtocol(name: "MQTT", level: 3))
        builder.level = 6
        #expect(rejection(builder.bytes) == .unsupportedProtocol(name: "MQTT", level: 6))
        builder.protocolName = "MQTTv5"
        builder.level = 5
        #expect(rejection(builder.bytes) == .unsupportedProtocol(name: "'MQTTv5'", level: nil))
        builder.protocolName = "MQ"
        #expect(rejection(Array(builder.bytes[..<4])) == .unsupportedProtocol(name: "name of 2 bytes", level: nil))
        builder.protocolName = "MQ\u{1}\u{7F}"
        #expect(rejection(builder.bytes)?.description == "unsupported protocol (4 non-printable bytes)")
    }

    @Test("bad fixed-header and connect flags are rejected")
    func badFlags() {
        var builder = ConnectPacketBuilder.v311()
        builder.firstByte = 0x12
        #expect(rejection(Array(builder.bytes[..<1])) == .notConnect(firstByte: 0x12))
        builder.firstByte = 0x20
        #expect(rejection(builder.bytes) == .notConnect(firstByte: 0x20))

        builder = .v311()
        builder.extraFlags = 0x01
        #expect(rejection(builder.bytes) == .reservedConnectFlag)
        builder.extraFlags = 0x18  // will QoS 3
        builder.will = (nil, "t", [], 0, false)
        #expect(rejection(builder.bytes) == .invalidWillQoS)
        builder.will = nil
        builder.extraFlags = 0x08  // will QoS 1 without the will flag
        #expect(rejection(builder.bytes) == .willOptionsWithoutWill)
        builder.extraFlags = 0x20  // will retain without the will flag
        #expect(rejection(builder.bytes) == .willOptionsWithoutWill)
    }

    @Test("a password without a username is rejected in 3.1 and 3.1.1, allowed in 5.0")
    func passwordWithoutUsername() {
        for var builder in [ConnectPacketBuilder.v31(), .v311()] {
            builder.password = [1]
            #expect(rejection(builder.bytes) == .passwordWithoutUsername)
        }
        var v5 = ConnectPacketBuilder.v5()
        v5.password = [1]
        #expect(connect(v5.bytes) != nil)
    }

    @Test("client id rules per version")
    func clientIDRules() {
        #expect(rejection(ConnectPacketBuilder.v31("").bytes) == .clientIDLength(0))
        #expect(rejection(ConnectPacketBuilder.v31(String(repeating: "x", count: 24)).bytes) == .clientIDLength(24))
        #expect(connect(ConnectPacketBuilder.v31(String(repeating: "x", count: 23)).bytes) != nil)

        var v311 = ConnectPacketBuilder.v311("")
        #expect(connect(v311.bytes)?.clientID == "")
        v311.cleanSession = false
        #expect(rejection(v311.bytes) == .emptyClientIDWithoutCleanSession)

        var v5 = ConnectPacketBuilder.v5("")
        v5.cleanSession = false
        #expect(connect(v5.bytes)?.clientID == "")

        var badUTF8 = ConnectPacketBuilder.v311()
        badUTF8.clientID = [0x61, 0xC3, 0x28]
        #expect(rejection(badUTF8.bytes) == .invalidUTF8(.clientID))
        badUTF8.clientID = [0x61, 0x00, 0x62]
        #expect(rejection(badUTF8.bytes) == .invalidUTF8(.clientID))
        badUTF8.clientID = [0xED, 0xA0, 0x80]  // an encoded surrogate
        #expect(rejection(badUTF8.bytes) == .invalidUTF8(.clientID))
    }

    @Test("MQTT 5 property blocks are checked and skipped")
    func properties() {
        #expect(rejection(ConnectPacketBuilder.v5(properties: [0x7F, 0]).bytes) == .unknownProperty(.properties, identifier: 0x7F))
        #expect(
            rejection(ConnectPacketBuilder.v5(properties: Property.fourBytes(0x18, 1)).bytes)
                == .propertyNotAllowed(.properties, identifier: 0x18))
        let twice = Property.fourBytes(0x11, 1) + Property.fourBytes(0x11, 2)
        #expect(rejection(ConnectPacketBuilder.v5(properties: twice).bytes) == .duplicateProperty(.properties, identifier: 0x11))
        // A value that runs past its block: the string claims 10 bytes, the block holds 3.
        #expect(rejection(ConnectPacketBuilder.v5(properties: [0x15, 0x00, 0x0A]).bytes) == .malformed(.properties))

        var will = ConnectPacketBuilder.v5()
        will.will = (Property.fourBytes(0x11, 1), "t", [], 0, false)
        #expect(rejection(will.bytes) == .propertyNotAllowed(.willProperties, identifier: 0x11))
        will.will = (Property.string(0x03, "a") + Property.string(0x03, "b"), "t", [], 0, false)
        #expect(rejection(will.bytes) == .duplicateProperty(.willProperties, identifier: 0x03))
        will.will = (Property.string(0x08, "\u{0}"), "t", [], 0, false)
        #expect(rejection(will.bytes) == .invalidUTF8(.willProperties))

        // A property length beyond the packet.
        var bytes = ConnectPacketBuilder.v5().bytes
        bytes[12] = 0x7F
        #expect(rejection(bytes) == .malformed(.properties))
    }

    @Test("fields must fill the remaining length exactly")
    func lengthConsistency() {
        var padded = ConnectPacketBuilder.v311()
        padded.padding = [0, 0, 0]
        #expect(rejection(padded.bytes) == .trailingBytes(3))
        // The remaining length ends inside the client id.
        var short = ConnectPacketBuilder.v311("abcdef").bytes
        short[1] -= 2
        #expect(rejection(short) == .malformed(.clientID))
    }

    @Test("HTTP, TLS, PROXY protocol and SSH bytes are rejected on their first byte")
    func otherProtocols() {
        let http = Array("GET / HTTP/1.1\r\nHost: broker\r\n\r\n".utf8)
        #expect(rejection(http) == .notConnect(firstByte: 0x47))
        #expect(rejection(Array(http[..<1])) == .notConnect(firstByte: 0x47))
        // The start of a TLS 1.2/1.3 ClientHello record.
        let clientHello: [UInt8] = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03]
        #expect(rejection(clientHello) == .notConnect(firstByte: 0x16))
        #expect(rejection(Array("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n".utf8)) == .notConnect(firstByte: 0x50))
        #expect(rejection(Array("SSH-2.0-OpenSSH_9.2\r\n".utf8)) == .notConnect(firstByte: 0x53))
        #expect(rejection([0x10, 0x10, 0x00, 0x04, 0x48, 0x54, 0x54, 0x50]) == .unsupportedProtocol(name: "'HTTP'", level: nil))
        #expect(parser.parse([]) == .needMoreData)
    }

    @Test("rejection descriptions are one line")
    func descriptions() {
        let rejections: [MQTTConnectRejection] = [
            .notConnect(firstByte: 0x0A), .packetTooLarge(size: 70_000, limit: 65_536),
            .unsupportedProtocol(name: "MQTT", level: 9), .malformed(.willPayload),
            .unknownProperty(.properties, identifier: 0x7F), .trailingBytes(2),
        ]
        for rejection in rejections {
            #expect(!rejection.description.contains("\n"))
        }
        #expect(MQTTConnectRejection.notConnect(firstByte: 0x0A).description == "not a CONNECT packet (first byte 0x0a)")
    }
}
