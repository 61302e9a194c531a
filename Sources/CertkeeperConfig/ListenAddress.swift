import NameRules
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A socket address to bind, written `host:port` (`0.0.0.0:80`, `localhost:8080`, `[::1]:80`).
///
/// The host is an IPv4 literal, an IPv6 literal (bracketed in the text, stored without brackets) or `localhost`.
public struct ListenAddress: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// Why a text is not a listen address.
    public struct SyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
        /// The text that was rejected.
        public var text: String
        /// What is wrong with it, as a sentence fragment.
        public var reason: String

        /// Creates a syntax error for `text`.
        public init(text: String, reason: String) {
            self.text = text
            self.reason = reason
        }

        /// One line: `'0.0.0.0' is not a valid listen address: it has no port; ...`.
        public var description: String { "'\(text)' is not a valid listen address: \(reason)" }
    }

    /// IPv4 literal, IPv6 literal without brackets, or `localhost`.
    public var host: String
    /// TCP port, 1...65535.
    public var port: Int

    /// Creates an address from parts that are already valid.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port`.
    ///
    /// - Parameter text: for example `0.0.0.0:80`, `localhost:8080` or `[::1]:80`.
    /// - Throws: ``SyntaxError`` saying what is wrong.
    public init(parsing text: String) throws(SyntaxError) {
        func fail(_ reason: String) -> SyntaxError { SyntaxError(text: text, reason: reason) }
        let example = "write host:port, for example 0.0.0.0:80 or [::1]:80"

        let host: String
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw fail("missing ']' after the IPv6 address") }
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw fail("no port after ']'; \(example)") }
            portText = rest.dropFirst()
            guard Self.isIPv6(host) else { throw fail("'\(host)' is not an IPv6 address") }
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw fail("no port; \(example)") }
            host = String(text[..<colon])
            portText = text[text.index(after: colon)...]
            if host.contains(":") {
                throw fail("an IPv6 address must be in brackets, for example [::1]:80")
            }
            guard host == "localhost" || Self.isIPv4(host) else {
                throw fail("host '\(host)' must be an IPv4 address, a bracketed IPv6 address or localhost")
            }
        }
        guard !portText.isEmpty else { throw fail("no port; \(example)") }
        guard portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(portText),
            (1...65535).contains(port)
        else {
            throw fail("port '\(portText)' is not a number from 1 to 65535")
        }
        self.init(host: host, port: port)
    }

    /// `host:port`, with brackets around an IPv6 host.
    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Strict dotted quad: four decimal octets 0...255, no leading zeros (`010` is ambiguous: octal or decimal).
    static func isIPv4(_ text: String) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return false }
        return parts.allSatisfy { part in
            guard (1...3).contains(part.count), part.allSatisfy({ $0.isASCII && $0.isNumber }),
                let value = Int(part), value <= 255
            else { return false }
            return part == "0" || !part.hasPrefix("0")
        }
    }

    /// IPv6 literal as `inet_pton` understands it (no zone index).
    static func isIPv6(_ text: String) -> Bool {
        IPLiteral.isIPv6(text)
    }
}
