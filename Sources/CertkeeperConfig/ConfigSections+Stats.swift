import Yams

// The `stats:` section (issue #5, item 7). Same rules as ConfigSections.swift: report every problem, return
// placeholders, the caller throws when anything was reported.

extension ConfigSchema {
    /// The keys of `stats:`.
    static let stats = ["listen", "allow_public", "path_prefix"]
}

extension ConfigReader {
    /// The `stats:` section; `nil` when absent (no stats listener).
    /// - Parameter taken: Addresses other listeners bind, with their key paths, to refuse the same one here.
    func statsSettings(_ node: Node?, at path: ConfigPath, taken: [(address: ListenAddress, path: String)]) -> StatsSettings? {
        guard let node, !Self.isNull(node) else { return nil }
        guard let map = mapping(node, at: path, keys: ConfigSchema.stats) else { return nil }
        let listen = required(map, "listen", listenAddress)
        let allowPublic = optional(map, "allow_public") { node, path -> Bool? in
            if case .scalar(let scalar) = node, node.tagName == .bool, let value = Bool.construct(from: scalar) { return value }
            report(path, "expected true or false, got \(Self.describe(node))", node: node)
            return nil
        } ?? false
        let pathPrefix = optional(map, "path_prefix", statsPathPrefix) ?? ""
        guard let listen else { return nil }
        if let listenNode = map["listen"], !allowPublic {
            switch StatsSettings.exposure(of: listen.host) {
            case .loopback, .privateNetwork:
                break
            case .everyInterface:
                report(path.key("listen"), "\(listen) listens on every interface, public ones included; bind a loopback or private address, or set allow_public: true", node: listenNode)
            case .publicNetwork:
                report(path.key("listen"), "\(listen.host) is a public address; bind a loopback or private address, or set allow_public: true", node: listenNode)
            }
        }
        if let listenNode = map["listen"], let other = taken.first(where: { Self.sameSocket($0.address, listen) }) {
            report(path.key("listen"), "\(listen) is already used by \(other.path)", node: listenNode)
        }
        return StatsSettings(listen: listen, allowPublic: allowPublic, pathPrefix: pathPrefix)
    }

    /// `path_prefix`: `""`, `/`, or `/segment[/segment…]` of URL-safe characters; a trailing `/` is dropped.
    func statsPathPrefix(_ node: Node, at path: ConfigPath) -> String? {
        guard var text = string(node, at: path) else { return nil }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/")
        guard text.isEmpty || (text.hasPrefix("/") && text.allSatisfy(allowed.contains) && !text.contains("//")) else {
            report(path, "'\(Self.quoted(text))' is not a path prefix: write it like /stats (letters, digits, - . _ ~ and /)", node: node)
            return nil
        }
        while text.hasSuffix("/") { text.removeLast() }
        return text
    }

    /// Whether two listeners would bind the same port on an overlapping address.
    static func sameSocket(_ lhs: ListenAddress, _ rhs: ListenAddress) -> Bool {
        guard lhs.port == rhs.port else { return false }
        let wildcard: Set<String> = ["0.0.0.0", "::"]
        return lhs.host == rhs.host || wildcard.contains(lhs.host) || wildcard.contains(rhs.host)
    }
}
