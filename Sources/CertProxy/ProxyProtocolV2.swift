import NIOCore

/// The PROXY protocol version 2 header (haproxy's proxy-protocol.txt, section 2.2): the first bytes a backend
/// receives, telling it the client's address and the address the client connected to.
///
/// Binary layout: the 12-byte signature, `0x21` (version 2, command PROXY), the family and transport
/// (`0x11` TCP over IPv4, `0x21` TCP over IPv6), the length of what follows (big endian), then source address,
/// destination address, source port, destination port. When the two addresses are of different families, the
/// IPv4 one is written as an IPv4-mapped IPv6 address. When either is not an IP address (a Unix socket, or
/// unknown), the header is `LOCAL` with no addresses, which a backend treats as "use the connection's own".
public enum ProxyProtocolV2 {
    /// `\r\n\r\n\0\r\nQUIT\n`.
    public static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    /// An IP address and port, as bytes.
    public struct Endpoint: Sendable, Hashable {
        /// 4 bytes (IPv4) or 16 bytes (IPv6), network order.
        public var address: [UInt8]
        /// The port.
        public var port: UInt16

        /// Creates an endpoint; `address` must have 4 or 16 bytes.
        public init(address: [UInt8], port: UInt16) {
            precondition(address.count == 4 || address.count == 16, "an IP address has 4 or 16 bytes")
            self.address = address
            self.port = port
        }

        /// The endpoint of a socket address, or `nil` for a Unix socket.
        public init?(_ socketAddress: SocketAddress) {
            switch socketAddress {
            case .v4(let v4):
                var raw = v4.address.sin_addr
                self.init(address: withUnsafeBytes(of: &raw) { Array($0) }, port: UInt16(socketAddress.port ?? 0))
            case .v6(let v6):
                var raw = v6.address.sin6_addr
                self.init(address: withUnsafeBytes(of: &raw) { Array($0) }, port: UInt16(socketAddress.port ?? 0))
            case .unixDomainSocket:
                return nil
            }
        }

        /// The same endpoint as 16 bytes (`::ffff:a.b.c.d` for IPv4).
        var asIPv6: [UInt8] {
            address.count == 16 ? address : Array(repeating: 0, count: 10) + [0xFF, 0xFF] + address
        }
    }

    /// The header for a connection from `source` to `destination`.
    /// - Parameters:
    ///   - source: The client's address; `nil` when unknown.
    ///   - destination: The address the client connected to (the frontend's); `nil` when unknown.
    /// - Returns: The bytes to write before anything else.
    public static func header(source: Endpoint?, destination: Endpoint?) -> [UInt8] {
        guard let source, let destination else {
            // LOCAL command, AF_UNSPEC, no address block.
            return signature + [0x20, 0x00, 0x00, 0x00]
        }
        var bytes = signature
        bytes.append(0x21)
        let addresses: [UInt8]
        if source.address.count == 4, destination.address.count == 4 {
            bytes.append(0x11)
            addresses = source.address + destination.address
        } else {
            bytes.append(0x21)
            addresses = source.asIPv6 + destination.asIPv6
        }
        let length = addresses.count + 4
        bytes += [UInt8(length >> 8), UInt8(length & 0xFF)]
        bytes += addresses
        bytes += [UInt8(source.port >> 8), UInt8(source.port & 0xFF), UInt8(destination.port >> 8), UInt8(destination.port & 0xFF)]
        return bytes
    }

    /// The header for a client channel: its remote address is the source, its local address the destination.
    public static func header(source: SocketAddress?, destination: SocketAddress?) -> [UInt8] {
        header(source: source.flatMap(Endpoint.init), destination: destination.flatMap(Endpoint.init))
    }
}
