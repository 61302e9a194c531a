import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Plain blocking TCP connects to 127.0.0.1 from the test process, for tests that hold raw connections open or open
/// thousands of short ones (no TLS, no NIO).
public enum BlockingTCPClient {
    /// A socket connected to 127.0.0.1:`port` (close-on-exec), or `nil` when the connection failed. The caller closes it.
    /// - Parameter timeout: Seconds the connect may take (a full backlog drops SYNs, which would otherwise block for
    ///   about two minutes of retransmissions).
    public static func connect(port: Int, timeout: Int = 5) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        var limit = timeval(tv_sec: timeout, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
        return fd
    }
}
