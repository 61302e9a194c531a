import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// Hands out free loopback ports that no other caller in this process has received.
///
/// Ports come from a counter that starts at a random point in 20000–32000, below Linux's ephemeral range
/// (32768+), so outgoing connections made by the tests cannot take them. Each candidate is checked free by binding
/// TCP and UDP on 127.0.0.1 (DNS servers need both). Parallel tests share ``shared``, so two tests in one process
/// never receive the same port; separate processes are separated by the random start and the bind check.
public final class PortAllocator: Sendable {
    /// The allocator every test in this process should use. Its state is behind a lock, so sharing it is safe.
    public static let shared = PortAllocator()

    private static let range = 20000..<32000
    private let next: NIOLockedValueBox<Int>

    /// Creates an allocator starting at a random port in 20000–32000.
    public init() {
        next = NIOLockedValueBox(Int.random(in: Self.range))
    }

    /// Returns a port on 127.0.0.1 that was free for TCP and UDP a moment ago and is never handed out again by
    /// this allocator.
    /// - Throws: ``TestSupportError/noFreePort(attempts:)`` after 500 busy candidates.
    public func allocate() throws -> Int {
        let attempts = 500
        for _ in 0..<attempts {
            let candidate = next.withLockedValue { value -> Int in
                let port = value
                value = value + 1 >= Self.range.upperBound ? Self.range.lowerBound : value + 1
                return port
            }
            if Self.isFree(port: candidate) { return candidate }
        }
        throw TestSupportError.noFreePort(attempts: attempts)
    }

    /// Returns `count` distinct free ports.
    /// - Throws: ``TestSupportError/noFreePort(attempts:)``.
    public func allocate(count: Int) throws -> [Int] {
        try (0..<count).map { _ in try allocate() }
    }

    /// Whether both a TCP and a UDP socket can bind 127.0.0.1:`port` right now.
    public static func isFree(port: Int) -> Bool {
        canBind(port: port, type: Int32(SOCK_STREAM.rawValue)) && canBind(port: port, type: Int32(SOCK_DGRAM.rawValue))
    }

    private static func canBind(port: Int, type: Int32) -> Bool {
        let fd = socket(AF_INET, type, 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return result == 0
    }
}
