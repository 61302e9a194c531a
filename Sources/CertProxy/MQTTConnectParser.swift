import NIOCore

/// The MQTT protocol versions a CONNECT packet can announce (its protocol level byte).
public enum MQTTProtocolVersion: UInt8, Sendable, Hashable, CustomStringConvertible {
    /// MQTT 3.1, protocol name `MQIsdp`.
    case v3_1 = 3
    /// MQTT 3.1.1, protocol name `MQTT`.
    case v3_1_1 = 4
    /// MQTT 5.0, protocol name `MQTT`.
    case v5 = 5

    /// `3.1`, `3.1.1` or `5.0`.
    public var description: String {
        switch self {
        case .v3_1: "3.1"
        case .v3_1_1: "3.1.1"
        case .v5: "5.0"
        }
    }
}

/// What the proxy needs from a valid CONNECT packet. The password, will message and properties are checked for
/// well-formedness and skipped, never kept.
public struct MQTTConnectPacket: Sendable, Hashable {
    /// The client identifier (may be empty in 3.1.1 with a clean session, and in 5.0: the broker assigns one).
    public var clientID: String
    /// The protocol version the client speaks.
    public var version: MQTTProtocolVersion
    /// The whole packet's size (fixed header included): the bytes the CONNECT occupies at the buffer's start.
    public var bytesConsumed: Int

    /// Creates a parsed CONNECT.
    public init(clientID: String, version: MQTTProtocolVersion, bytesConsumed: Int) {
        self.clientID = clientID
        self.version = version
        self.bytesConsumed = bytesConsumed
    }
}

/// The part of a CONNECT packet a rejection refers to.
public enum MQTTConnectField: String, Sendable, Hashable {
    case protocolName = "protocol name"
    case protocolLevel = "protocol level"
    case connectFlags = "connect flags"
    case keepAlive = "keep alive"
    case properties = "properties"
    case clientID = "client id"
    case willProperties = "will properties"
    case willTopic = "will topic"
    case willPayload = "will payload"
    case username = "username"
    case password = "password"
}

/// Why a byte sequence is not a valid MQTT CONNECT packet. The descriptions are one line and never quote payload
/// bytes beyond a short, printable protocol name.
public enum MQTTConnectRejection: Error, Sendable, Hashable, CustomStringConvertible {
    /// The first byte is not `0x10` (packet type 1 with flags 0).
    case notConnect(firstByte: UInt8)
    /// The remaining length does not end within 4 bytes.
    case remainingLengthTooLong
    /// The remaining length uses more bytes than its value needs (MQTT-1.5.5-1).
    case remainingLengthNotMinimal
    /// The packet announces more bytes than the configured maximum.
    case packetTooLarge(size: Int, limit: Int)
    /// The protocol name and level are not `MQIsdp`/3, `MQTT`/4 or `MQTT`/5.
    case unsupportedProtocol(name: String, level: UInt8?)
    /// Bit 0 of the connect flags is set.
    case reservedConnectFlag
    /// Will QoS 3.
    case invalidWillQoS
    /// Will QoS or will retain set without the will flag.
    case willOptionsWithoutWill
    /// The password flag without the username flag (3.1 and 3.1.1 only; allowed in 5.0).
    case passwordWithoutUsername
    /// A 3.1 client id outside 1–23 bytes.
    case clientIDLength(Int)
    /// A 3.1.1 empty client id without a clean session (MQTT-3.1.3-7).
    case emptyClientIDWithoutCleanSession
    /// A string that is not well-formed UTF-8 or contains U+0000.
    case invalidUTF8(MQTTConnectField)
    /// A field runs past the end of the packet or of its property block, or a variable byte integer is malformed.
    case malformed(MQTTConnectField)
    /// An MQTT 5 property identifier that does not exist.
    case unknownProperty(MQTTConnectField, identifier: Int)
    /// An MQTT 5 property that exists but is not allowed in this block.
    case propertyNotAllowed(MQTTConnectField, identifier: Int)
    /// An MQTT 5 property other than user property that appears twice.
    case duplicateProperty(MQTTConnectField, identifier: Int)
    /// Bytes left inside the packet after the last field.
    case trailingBytes(Int)

    /// One line, suitable for a log message.
    public var description: String {
        switch self {
        case .notConnect(let byte):
            let hex = String(byte, radix: 16)
            return "not a CONNECT packet (first byte 0x\(hex.count == 1 ? "0" + hex : hex))"
        case .remainingLengthTooLong: return "remaining length longer than 4 bytes"
        case .remainingLengthNotMinimal: return "remaining length not minimally encoded"
        case .packetTooLarge(let size, let limit): return "CONNECT of \(size) bytes exceeds the \(limit)-byte limit"
        case .unsupportedProtocol(let name, let level):
            return "unsupported protocol \(name)" + (level.map { " level \($0)" } ?? "")
        case .reservedConnectFlag: return "reserved connect flag set"
        case .invalidWillQoS: return "will QoS 3"
        case .willOptionsWithoutWill: return "will QoS or retain without the will flag"
        case .passwordWithoutUsername: return "password flag without username flag"
        case .clientIDLength(let length): return "MQTT 3.1 client id of \(length) bytes (1-23 allowed)"
        case .emptyClientIDWithoutCleanSession: return "empty client id without clean session"
        case .invalidUTF8(let field): return "\(field.rawValue) is not valid UTF-8"
        case .malformed(let field): return "\(field.rawValue) malformed or past the end of its block"
        case .unknownProperty(let field, let identifier): return "unknown property 0x\(String(identifier, radix: 16)) in \(field.rawValue)"
        case .propertyNotAllowed(let field, let identifier):
            return "property 0x\(String(identifier, radix: 16)) not allowed in \(field.rawValue)"
        case .duplicateProperty(let field, let identifier):
            return "property 0x\(String(identifier, radix: 16)) repeated in \(field.rawValue)"
        case .trailingBytes(let count): return "\(count) bytes after the CONNECT payload"
        }
    }
}

/// The outcome of looking at the start of a byte stream.
public enum MQTTConnectParseResult: Sendable, Hashable {
    /// Everything so far is a valid prefix of a CONNECT; more bytes are needed.
    case needMoreData
    /// The bytes cannot start a valid CONNECT (decided as early as possible, usually on the first bytes).
    case invalid(MQTTConnectRejection)
    /// A complete, valid CONNECT occupies the first ``MQTTConnectPacket/bytesConsumed`` bytes.
    case connect(MQTTConnectPacket)
}

/// Recognises an MQTT 3.1, 3.1.1 or 5.0 CONNECT packet at the start of a byte stream (what HAProxy's
/// `mqtt_is_valid` checks), with no I/O and no state: call it again with the longer buffer when it needs more.
///
/// Checks: type 1 with flags 0; a remaining length of at most 4 minimal bytes and within ``maxPacketSize``; the
/// protocol name and level pair; the reserved connect flag; will QoS and will flag consistency; username and
/// password flags; UTF-8 strings; every MQTT 5 property of the CONNECT and will blocks (known, allowed there, not
/// repeated, not overrunning its block); that the fields fill the remaining length exactly.
public struct MQTTConnectParser: Sendable, Hashable {
    /// 64 KiB: far above real CONNECTs (a few hundred bytes), far below what could tie up memory.
    public static let defaultMaxPacketSize = 65_536

    /// The largest CONNECT accepted, fixed header included.
    public var maxPacketSize: Int

    /// Creates a parser.
    /// - Parameter maxPacketSize: The largest CONNECT accepted, fixed header included (64 KiB by default).
    public init(maxPacketSize: Int = MQTTConnectParser.defaultMaxPacketSize) {
        self.maxPacketSize = maxPacketSize
    }

    /// Parses the readable bytes of `buffer` (without moving its reader index).
    public func parse(_ buffer: ByteBuffer) -> MQTTConnectParseResult {
        buffer.withUnsafeReadableBytes { parse($0) }
    }

    /// Parses `bytes`.
    public func parse(_ bytes: [UInt8]) -> MQTTConnectParseResult {
        bytes.withUnsafeBytes { parse($0) }
    }

    /// Parses the bytes at the start of `bytes`.
    public func parse(_ bytes: UnsafeRawBufferPointer) -> MQTTConnectParseResult {
        do throws(MQTTReader.Stop) {
            return .connect(try parseConnect(bytes))
        } catch {
            switch error {
            case .needMoreData: return .needMoreData
            case .invalid(let rejection): return .invalid(rejection)
            }
        }
    }

    private func parseConnect(_ bytes: UnsafeRawBufferPointer) throws(MQTTReader.Stop) -> MQTTConnectPacket {
        guard let first = bytes.first else { throw .needMoreData }
        guard first == 0x10 else { throw .invalid(.notConnect(firstByte: first)) }
        let (remaining, lengthBytes) = try Self.remainingLength(bytes)
        let total = 1 + lengthBytes + remaining
        guard total <= maxPacketSize else { throw .invalid(.packetTooLarge(size: total, limit: maxPacketSize)) }
        var reader = MQTTReader(bytes: bytes, offset: 1 + lengthBytes, end: total)

        let version = try Self.protocolVersion(&reader)
        let flags = try reader.byte(.connectFlags)
        let usernameFlag = flags & 0x80 != 0
        let passwordFlag = flags & 0x40 != 0
        let willRetain = flags & 0x20 != 0
        let willQoS = (flags >> 3) & 0x03
        let willFlag = flags & 0x04 != 0
        let cleanSession = flags & 0x02 != 0
        guard flags & 0x01 == 0 else { throw .invalid(.reservedConnectFlag) }
        guard willQoS != 3 else { throw .invalid(.invalidWillQoS) }
        guard willFlag || (willQoS == 0 && !willRetain) else { throw .invalid(.willOptionsWithoutWill) }
        guard version == .v5 || usernameFlag || !passwordFlag else { throw .invalid(.passwordWithoutUsername) }
        _ = try reader.uint16(.keepAlive)
        if version == .v5 { try MQTTProperties.skip(&reader, block: .properties) }

        let clientID = try reader.string(.clientID)
        switch version {
        case .v3_1:
            let length = clientID.utf8.count
            guard (1...23).contains(length) else { throw .invalid(.clientIDLength(length)) }
        case .v3_1_1:
            guard !clientID.isEmpty || cleanSession else { throw .invalid(.emptyClientIDWithoutCleanSession) }
        case .v5:
            break
        }
        if willFlag {
            if version == .v5 { try MQTTProperties.skip(&reader, block: .willProperties) }
            try reader.skipString(.willTopic)
            try reader.skipBinary(.willPayload)
        }
        if usernameFlag { try reader.skipString(.username) }
        if passwordFlag { try reader.skipBinary(.password) }
        guard reader.offset == total else { throw .invalid(.trailingBytes(total - reader.offset)) }
        return MQTTConnectPacket(clientID: clientID, version: version, bytesConsumed: total)
    }

    /// Decodes the fixed header's remaining length: its value and how many bytes encode it.
    private static func remainingLength(_ bytes: UnsafeRawBufferPointer) throws(MQTTReader.Stop) -> (Int, Int) {
        var value = 0
        for index in 0..<4 {
            guard 1 + index < bytes.count else { throw .needMoreData }
            let byte = bytes[1 + index]
            value |= Int(byte & 0x7F) << (7 * index)
            if byte & 0x80 == 0 {
                guard byte != 0 || index == 0 else { throw .invalid(.remainingLengthNotMinimal) }
                return (value, index + 1)
            }
        }
        throw .invalid(.remainingLengthTooLong)
    }

    /// Reads the protocol name and level, rejecting a wrong name as soon as its bytes are there.
    private static func protocolVersion(_ reader: inout MQTTReader) throws(MQTTReader.Stop) -> MQTTProtocolVersion {
        let nameLength = Int(try reader.uint16(.protocolName))
        // Only 4 and 6 are valid lengths: decide on the length alone so garbage is rejected at once.
        guard nameLength == 4 || nameLength == 6 else {
            throw .invalid(.unsupportedProtocol(name: "name of \(nameLength) bytes", level: nil))
        }
        let name = try reader.bytes(nameLength, .protocolName)
        let isMQTT = name.elementsEqual("MQTT".utf8)
        let isMQIsdp = name.elementsEqual("MQIsdp".utf8)
        guard isMQTT || isMQIsdp else {
            throw .invalid(.unsupportedProtocol(name: Self.printable(name), level: nil))
        }
        let level = try reader.byte(.protocolLevel)
        switch (isMQIsdp, level) {
        case (true, 3): return .v3_1
        case (false, 4): return .v3_1_1
        case (false, 5): return .v5
        default: throw .invalid(.unsupportedProtocol(name: isMQIsdp ? "MQIsdp" : "MQTT", level: level))
        }
    }

    /// A protocol name for a log line: quoted when it is short printable ASCII, otherwise just its size.
    private static func printable(_ name: UnsafeRawBufferPointer) -> String {
        guard name.allSatisfy({ (0x21...0x7E).contains($0) && $0 != UInt8(ascii: "'") }) else {
            return "(\(name.count) non-printable bytes)"
        }
        return "'" + String(decoding: name, as: UTF8.self) + "'"
    }
}

/// A cursor over the packet bytes received so far. Reading past `end` (the packet's or a property block's end) is
/// malformed; reading past the received bytes only means more are needed.
struct MQTTReader {
    enum Stop: Error {
        case needMoreData
        case invalid(MQTTConnectRejection)
    }

    let bytes: UnsafeRawBufferPointer
    var offset: Int
    var end: Int

    /// Checks that `count` more bytes are inside the current limit and already received.
    private func need(_ count: Int, _ field: MQTTConnectField) throws(Stop) {
        guard offset + count <= end else { throw .invalid(.malformed(field)) }
        guard offset + count <= bytes.count else { throw .needMoreData }
    }

    mutating func byte(_ field: MQTTConnectField) throws(Stop) -> UInt8 {
        try need(1, field)
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func uint16(_ field: MQTTConnectField) throws(Stop) -> UInt16 {
        try need(2, field)
        defer { offset += 2 }
        return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    mutating func skip(_ count: Int, _ field: MQTTConnectField) throws(Stop) {
        try need(count, field)
        offset += count
    }

    mutating func bytes(_ count: Int, _ field: MQTTConnectField) throws(Stop) -> UnsafeRawBufferPointer {
        try need(count, field)
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count])
    }

    /// A variable byte integer (MQTT 5 property lengths and identifiers): at most 4 bytes, minimally encoded.
    mutating func variableInteger(_ field: MQTTConnectField) throws(Stop) -> Int {
        var value = 0
        for index in 0..<4 {
            let byte = try self.byte(field)
            value |= Int(byte & 0x7F) << (7 * index)
            if byte & 0x80 == 0 {
                guard byte != 0 || index == 0 else { throw .invalid(.malformed(field)) }
                return value
            }
        }
        throw .invalid(.malformed(field))
    }

    /// A UTF-8 string with a 2-byte length: well-formed and without U+0000 (MQTT-1.5.3-1, -2).
    mutating func string(_ field: MQTTConnectField) throws(Stop) -> String {
        let length = Int(try uint16(field))
        let raw = try bytes(length, field)
        guard !raw.contains(0), let string = String(validating: raw, as: UTF8.self) else {
            throw .invalid(.invalidUTF8(field))
        }
        return string
    }

    mutating func skipString(_ field: MQTTConnectField) throws(Stop) {
        _ = try string(field)
    }

    /// Binary data with a 2-byte length (will payload, password, correlation data).
    mutating func skipBinary(_ field: MQTTConnectField) throws(Stop) {
        let length = Int(try uint16(field))
        try skip(length, field)
    }
}

/// MQTT 5 properties (section 2.2.2.2): what each identifier carries, and which may appear in a CONNECT's own
/// block and in its will block.
enum MQTTProperties {
    enum Kind {
        case byte, twoBytes, fourBytes, variableInteger, string, binary, stringPair
    }

    static func kind(of identifier: Int) -> Kind? {
        switch identifier {
        case 0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A: .byte
        case 0x13, 0x21, 0x22, 0x23: .twoBytes
        case 0x02, 0x11, 0x18, 0x27: .fourBytes
        case 0x0B: .variableInteger
        case 0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F: .string
        case 0x09, 0x16: .binary
        case 0x26: .stringPair
        default: nil
        }
    }

    /// Session expiry, receive maximum, maximum packet size, topic alias maximum, request response information,
    /// request problem information, user property, authentication method and data.
    static let connect: Set<Int> = [0x11, 0x21, 0x27, 0x22, 0x19, 0x17, 0x26, 0x15, 0x16]
    /// Will delay, payload format, message expiry, content type, response topic, correlation data, user property.
    static let will: Set<Int> = [0x18, 0x01, 0x02, 0x03, 0x08, 0x09, 0x26]
    static let userProperty = 0x26

    /// Skips a property block (its length, then the properties), checking each property.
    static func skip(_ reader: inout MQTTReader, block: MQTTConnectField) throws(MQTTReader.Stop) {
        let length = try reader.variableInteger(block)
        let blockEnd = reader.offset + length
        guard blockEnd <= reader.end else { throw .invalid(.malformed(block)) }
        let packetEnd = reader.end
        reader.end = blockEnd
        defer { reader.end = packetEnd }
        let allowed = block == .willProperties ? will : connect
        var seen: UInt64 = 0
        while reader.offset < blockEnd {
            let identifier = try reader.variableInteger(block)
            guard let kind = kind(of: identifier) else { throw .invalid(.unknownProperty(block, identifier: identifier)) }
            guard allowed.contains(identifier) else { throw .invalid(.propertyNotAllowed(block, identifier: identifier)) }
            if identifier != userProperty {
                let bit: UInt64 = 1 << UInt64(identifier)
                guard seen & bit == 0 else { throw .invalid(.duplicateProperty(block, identifier: identifier)) }
                seen |= bit
            }
            switch kind {
            case .byte: try reader.skip(1, block)
            case .twoBytes: try reader.skip(2, block)
            case .fourBytes: try reader.skip(4, block)
            case .variableInteger: _ = try reader.variableInteger(block)
            case .string: try reader.skipString(block)
            case .binary: try reader.skipBinary(block)
            case .stringPair:
                try reader.skipString(block)
                try reader.skipString(block)
            }
        }
    }
}
