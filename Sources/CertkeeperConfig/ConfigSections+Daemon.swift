import Yams

// The sections `certkeeper daemon` reads: `cluster:` (peer sync) and `proxy:` (the built-in proxy). Same rules as
// ConfigSections.swift: report every problem, return placeholders, the caller throws when anything was reported.

extension ConfigReader {
    // MARK: cluster

    /// The `cluster:` section; `nil` when absent (a single node).
    func clusterSettings(_ node: Node?, at path: ConfigPath, nodeName: String?) -> ClusterSettings? {
        guard let node, !Self.isNull(node) else { return nil }
        guard let map = mapping(node, at: path, keys: ConfigSchema.cluster) else { return nil }
        let role = required(map, "role") { node, path in
            enumeration(node, at: path, ClusterSettings.Role.self)
        }
        let listen = required(map, "listen", listenAddress)
        var peers: [ClusterSettings.Peer] = []
        if let peersNode = map["peers"], !Self.isNull(peersNode), let items = list(peersNode, at: path.key("peers"), of: "peers") {
            var seen: [String: ConfigPath] = [:]
            for item in items {
                guard let peer = clusterPeer(item.node, at: item.path) else { continue }
                if let earlier = seen[peer.name.lowercased()] {
                    report(item.path.key("name"), "duplicate peer name '\(peer.name)' (also used by \(earlier))", node: item.node)
                } else if let nodeName, peer.name.lowercased() == nodeName.lowercased() {
                    report(item.path.key("name"), "'\(peer.name)' is this node's own node_name", node: item.node)
                } else {
                    seen[peer.name.lowercased()] = item.path
                    peers.append(peer)
                }
            }
        }
        let settings = ClusterSettings(
            role: role ?? .follower,
            listen: listen ?? ListenAddress(host: "127.0.0.1", port: 1),
            peers: peers,
            identityPath: optional(map, "identity", absolutePath),
            longPollTimeout: optional(map, "long_poll", timeout) ?? ClusterSettings.defaultLongPollTimeout,
            antiEntropyInterval: optional(map, "anti_entropy", timeout) ?? ClusterSettings.defaultAntiEntropyInterval,
            takeoverAfter: optional(map, "takeover_after", timeout) ?? ClusterSettings.defaultTakeoverAfter,
            takeoverMargin: optional(map, "takeover_margin", delay) ?? ClusterSettings.defaultTakeoverMargin
        )
        if settings.longPollTimeout > 600, let longPoll = map["long_poll"] {
            report(path.key("long_poll"), "must be at most 10m", node: longPoll)
        }
        return settings
    }

    /// One `cluster.peers[]` entry: `{name, address}`.
    func clusterPeer(_ node: Node, at path: ConfigPath) -> ClusterSettings.Peer? {
        guard let map = mapping(node, at: path, keys: ConfigSchema.clusterPeer) else { return nil }
        let name = required(map, "name", name)
        let address = required(map, "address", listenAddress)
        guard let name, let address else { return nil }
        return ClusterSettings.Peer(name: name, address: address)
    }

    // MARK: proxy

    /// The `proxy:` section; `nil` when absent (no proxy).
    func proxySettings(_ node: Node?, at path: ConfigPath) -> ProxySettings? {
        guard let node, !Self.isNull(node) else { return nil }
        guard let map = mapping(node, at: path, keys: ConfigSchema.proxy) else { return nil }
        var frontends: [FrontendSettings] = []
        if let list = map["frontends"], !Self.isNull(list), let items = self.list(list, at: path.key("frontends"), of: "frontends") {
            var names: [String: ConfigPath] = [:]
            var addresses: [ListenAddress: ConfigPath] = [:]
            for item in items {
                guard let frontend = frontendSettings(item.node, at: item.path) else { continue }
                if let earlier = names[frontend.name] {
                    report(item.path.key("name"), "duplicate frontend name '\(frontend.name)' (also used by \(earlier))", node: item.node)
                } else if let earlier = addresses[frontend.listen] {
                    report(item.path.key("listen"), "\(frontend.listen) is already used by \(earlier)", node: item.node)
                } else {
                    names[frontend.name] = item.path
                    addresses[frontend.listen] = item.path
                    frontends.append(frontend)
                }
            }
        }
        return ProxySettings(
            threads: optional(map, "threads") { integer($0, at: $1, in: ProxySettings.threadsRange) },
            grace: optional(map, "grace", delay) ?? ProxySettings.defaultGrace,
            defaultCertificate: optional(map, "default_certificate", name),
            frontends: frontends
        )
    }

    /// One `proxy.frontends[]` entry.
    func frontendSettings(_ node: Node, at path: ConfigPath) -> FrontendSettings? {
        guard let map = mapping(node, at: path, keys: ConfigSchema.frontend) else { return nil }
        let name = required(map, "name", name)
        let listen = required(map, "listen", listenAddress)
        let mode = optional(map, "mode") { node, path in enumeration(node, at: path, FrontendSettings.Mode.self) } ?? .tls
        let alpn = optional(map, "alpn", alpnList) ?? []
        let minimumTLS = optional(map, "min_tls") { node, path -> Bool? in
            guard let text = string(node, at: path) else { return nil }
            switch text {
            case "1.2": return false
            case "1.3": return true
            default:
                report(path, "'\(Self.quoted(text))' is not a TLS version; use \"1.2\" or \"1.3\"", node: node)
                return nil
            }
        } ?? false
        let backends = required(map, "backends") { node, path -> [ListenAddress]? in
            guard let items = list(node, at: path, of: "backend addresses (host:port)") else { return nil }
            if items.isEmpty {
                report(path, "must list at least one backend", node: node)
                return nil
            }
            let parsed = items.compactMap { listenAddress($0.node, at: $0.path) }
            return parsed.count == items.count ? parsed : nil
        }
        if mode == .tcp {
            for key in ["alpn", "min_tls", "handshake_timeout"] {
                if let keyNode = map[key] { report(path.key(key), "only applies to mode: tls", node: keyNode) }
            }
        }
        guard let name, let listen, let backends else { return nil }
        return FrontendSettings(
            name: name, listen: listen, mode: mode, alpn: alpn, minimumTLS13: minimumTLS, backends: backends,
            handshakeTimeout: optional(map, "handshake_timeout", timeout) ?? FrontendSettings.defaultHandshakeTimeout,
            connectTimeout: optional(map, "connect_timeout", timeout) ?? FrontendSettings.defaultConnectTimeout,
            idleTimeout: optional(map, "idle_timeout", timeout) ?? FrontendSettings.defaultIdleTimeout
        )
    }

    /// ALPN protocol ids: a list of 1–255 byte printable ASCII strings (`h2`, `http/1.1`, `mqtt`).
    func alpnList(_ node: Node, at path: ConfigPath) -> [String]? {
        guard let items = list(node, at: path, of: "ALPN protocol names") else { return nil }
        var protocols: [String] = []
        for item in items {
            guard let text = string(item.node, at: item.path) else { continue }
            let bytes = Array(text.utf8)
            guard (1...255).contains(bytes.count), bytes.allSatisfy({ (0x21...0x7e).contains($0) }) else {
                report(item.path, "'\(Self.quoted(text))' is not an ALPN protocol name (1-255 printable ASCII characters)", node: item.node)
                continue
            }
            protocols.append(text)
        }
        return protocols.count == items.count ? protocols : nil
    }

    /// One of an enumeration's raw values.
    func enumeration<E: RawRepresentable & CaseIterable>(_ node: Node, at path: ConfigPath, _ type: E.Type) -> E?
    where E.RawValue == String {
        guard let text = string(node, at: path) else { return nil }
        guard let value = E(rawValue: text) else {
            report(path, "'\(Self.quoted(text))' is not one of: \(E.allCases.map(\.rawValue).joined(separator: ", "))", node: node)
            return nil
        }
        return value
    }
}
