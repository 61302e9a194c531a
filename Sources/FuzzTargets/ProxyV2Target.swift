import CertProxy
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// The PROXY v2 encoder: endpoints made from the input (first byte: which of source and destination are absent,
/// IPv4 or IPv6; then address bytes and ports), encoded by ``ProxyProtocolV2``, decoded back by
/// ``ProxyV2Decoder``.
///
/// Invariants: the header starts with the signature and version 2; its length field matches the bytes; `LOCAL`
/// with no addresses exactly when an endpoint is missing; TCP over IPv4 with both addresses as given when both
/// are IPv4, otherwise TCP over IPv6 with IPv4 addresses mapped (`::ffff:a.b.c.d`); ports as given; the header
/// made from `SocketAddress`es is the same bytes.
enum ProxyV2Target {
    static func run(_ bytes: UnsafeRawBufferPointer) throws(FuzzViolation) {
        var reader = ByteSource(bytes)
        let shape = reader.next()
        let source = reader.endpoint(kind: shape & 0x03)
        let destination = reader.endpoint(kind: (shape >> 2) & 0x03)

        let header = ProxyProtocolV2.header(source: source, destination: destination)
        guard let decoded = ProxyV2Decoder.decode(header) else {
            throw FuzzViolation("header for \(String(describing: source)) → \(String(describing: destination)) does not decode: \(header)")
        }
        try require(decoded.consumed == header.count, "header of \(header.count) bytes announces \(decoded.consumed)")
        if let source, let destination {
            let bothIPv4 = source.address.count == 4 && destination.address.count == 4
            try require(decoded.command == .proxy, "PROXY expected for two endpoints")
            try require(decoded.family == (bothIPv4 ? 0x11 : 0x21), "family 0x\(String(decoded.family, radix: 16)) for \(source) → \(destination)")
            try require(header.count == (bothIPv4 ? 28 : 52), "\(header.count) bytes for \(source) → \(destination)")
            try require(decoded.source == (bothIPv4 ? source : mapped(source)), "source \(String(describing: decoded.source)) for \(source)")
            try require(decoded.destination == (bothIPv4 ? destination : mapped(destination)), "destination \(String(describing: decoded.destination)) for \(destination)")
        } else {
            try require(decoded.command == .local && decoded.family == 0 && header.count == 16 && decoded.source == nil, "LOCAL expected without both endpoints")
        }
        let fromSockets = ProxyProtocolV2.header(source: source.map(socketAddress), destination: destination.map(socketAddress))
        try require(fromSockets == header, "SocketAddress and Endpoint headers differ for \(String(describing: source)) → \(String(describing: destination))")
    }

    /// The same endpoint as the encoder writes it next to an IPv6 one.
    static func mapped(_ endpoint: ProxyProtocolV2.Endpoint) -> ProxyProtocolV2.Endpoint {
        guard endpoint.address.count == 4 else { return endpoint }
        return ProxyProtocolV2.Endpoint(address: Array(repeating: 0, count: 10) + [0xFF, 0xFF] + endpoint.address, port: endpoint.port)
    }

    /// The socket address a channel would report for `endpoint`.
    static func socketAddress(_ endpoint: ProxyProtocolV2.Endpoint) -> SocketAddress {
        if endpoint.address.count == 4 {
            var raw = sockaddr_in()
            raw.sin_family = sa_family_t(AF_INET)
            raw.sin_port = endpoint.port.bigEndian
            withUnsafeMutableBytes(of: &raw.sin_addr) { $0.copyBytes(from: endpoint.address) }
            return SocketAddress(raw, host: "")
        }
        var raw = sockaddr_in6()
        raw.sin6_family = sa_family_t(AF_INET6)
        raw.sin6_port = endpoint.port.bigEndian
        withUnsafeMutableBytes(of: &raw.sin6_addr) { $0.copyBytes(from: endpoint.address) }
        return SocketAddress(raw, host: "")
    }
}

/// Reads the fuzzer's bytes in order, with zeros once they run out.
struct ByteSource {
    private let bytes: UnsafeRawBufferPointer
    private var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    mutating func next() -> UInt8 {
        defer { offset += 1 }
        return offset < bytes.count ? bytes[offset] : 0
    }

    mutating func next(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in next() }
    }

    /// Kind 0: none; 1: IPv4; 2, 3: IPv6.
    mutating func endpoint(kind: UInt8) -> ProxyProtocolV2.Endpoint? {
        guard kind != 0 else { return nil }
        let address = next(kind == 1 ? 4 : 16)
        let port = UInt16(next()) << 8 | UInt16(next())
        return ProxyProtocolV2.Endpoint(address: address, port: port)
    }
}

/// A small PROXY v2 decoder (haproxy's proxy-protocol.txt, section 2.2) for TCP over IPv4 and IPv6 and `LOCAL`:
/// the other side of the round trip, independent of the encoder.
enum ProxyV2Decoder {
    enum Command: Equatable { case local, proxy }

    struct Header: Equatable {
        var command: Command
        /// Address family and transport byte.
        var family: UInt8
        var source: ProxyProtocolV2.Endpoint?
        var destination: ProxyProtocolV2.Endpoint?
        /// The header's length: 16 plus the length field.
        var consumed: Int
    }

    static func decode(_ bytes: [UInt8]) -> Header? {
        guard bytes.count >= 16, Array(bytes[0..<12]) == ProxyProtocolV2.signature, bytes[12] >> 4 == 2 else { return nil }
        let length = Int(bytes[14]) << 8 | Int(bytes[15])
        guard bytes.count >= 16 + length else { return nil }
        let family = bytes[13]
        switch bytes[12] & 0x0F {
        case 0:
            return Header(command: .local, family: family, source: nil, destination: nil, consumed: 16 + length)
        case 1:
            let size: Int
            switch family {
            case 0x11: size = 4
            case 0x21: size = 16
            default: return nil
            }
            guard length >= 2 * size + 4 else { return nil }
            let body = Array(bytes[16..<(16 + length)])
            func port(_ at: Int) -> UInt16 { UInt16(body[at]) << 8 | UInt16(body[at + 1]) }
            return Header(
                command: .proxy, family: family,
                source: ProxyProtocolV2.Endpoint(address: Array(body[0..<size]), port: port(2 * size)),
                destination: ProxyProtocolV2.Endpoint(address: Array(body[size..<(2 * size)]), port: port(2 * size + 2)),
                consumed: 16 + length)
        default:
            return nil
        }
    }
}
