import CertProxy
import NIOCore

/// MQTT CONNECT packets: the input is the start of a client's byte stream, parsed by ``MQTTConnectParser`` as the
/// MQTT frontend's gate does.
///
/// Invariants: a CONNECT occupies at most the bytes given and parses the same from exactly those bytes and with
/// more bytes after it; "need more data" holds for every shorter prefix; a rejection stays a rejection whatever
/// follows; the client id is valid UTF-8 without U+0000 and fits in the packet; the `ByteBuffer` entry agrees
/// with the bytes entry; a smaller size limit never accepts what the default refuses.
enum MQTTConnectTarget {
    static let parser = MQTTConnectParser()
    static let small = MQTTConnectParser(maxPacketSize: 64)

    static func run(_ bytes: UnsafeRawBufferPointer) throws(FuzzViolation) {
        let input = Array(bytes)
        let result = parser.parse(bytes)
        try require(parser.parse(ByteBuffer(bytes: input)) == result, "ByteBuffer and byte array entries disagree")
        switch result {
        case .connect(let packet):
            try require(packet.bytesConsumed >= 2 && packet.bytesConsumed <= input.count, "CONNECT of \(packet.bytesConsumed) bytes from \(input.count)")
            try require(parser.parse(Array(input[..<packet.bytesConsumed])) == result, "CONNECT changes when cut to its own length")
            try require(parser.parse(input + [0xFF, 0x00]) == result, "CONNECT changes when more bytes follow")
            try require(!packet.clientID.unicodeScalars.contains("\0") && packet.clientID.utf8.count < packet.bytesConsumed, "client id \(quoted(packet.clientID))")
        case .needMoreData:
            for length in [input.count / 2, max(0, input.count - 1)] {
                try require(parser.parse(Array(input[..<length])) == .needMoreData, "a prefix of \(length) bytes of a valid prefix is not one")
            }
        case .invalid(let rejection):
            for extra: [UInt8] in [[0x00], [0xFF, 0xFF, 0xFF, 0xFF], Array(repeating: 0x41, count: 64)] {
                try require(parser.parse(input + extra) == result, "rejection \(rejection) changes when \(extra.count) bytes follow")
            }
            try require(!rejection.description.isEmpty && !rejection.description.contains("\n"), "rejection text \(quoted(rejection.description))")
        }
        if case .connect(let packet) = small.parse(bytes) {
            try require(result == .connect(packet), "the 64-byte parser accepts what the default one does not")
        }
    }
}
