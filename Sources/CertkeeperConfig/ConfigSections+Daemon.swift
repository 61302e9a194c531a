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
        let role = optional(map, "role") { node, path in enumeration(node, at: path, ClusterSettings.Role.self) }
        guard let name, let address else { return nil }
        return ClusterSettings.Peer(name: name, address: address, role: role)
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
        let servers: [BackendServerSettings]? = mode == .http ? [] : required(map, "backends") { node, path -> [BackendServerSettings]? in
            guard let items = list(node, at: path, of: "backends (host:port, or a mapping with an address)") else { return nil }
            if items.isEmpty {
                report(path, "must list at least one backend", node: node)
                return nil
            }
            let parsed = items.compactMap { backendServer($0.node, at: $0.path) }
            guard parsed.count == items.count else { return nil }
            var names: [String: ConfigPath] = [:]
            for (server, item) in zip(parsed, items) {
                let name = server.name ?? server.address.description
                if let earlier = names[name] {
                    report(item.path, "duplicate backend '\(name)' (also \(earlier)); give one a different name", node: item.node)
                    return nil
                }
                names[name] = item.path
            }
            return parsed
        }
        let check = optional(map, "check") { node, path -> HealthCheckSettings?? in
            if let enabled = boolean(node, at: path, quiet: true) { return enabled ? .some(HealthCheckSettings()) : .some(nil) }
            return healthCheck(node, at: path).map { .some($0) }
        } ?? nil
        if mode == .tcp {
            for key in ["alpn", "min_tls", "handshake_timeout"] {
                if let keyNode = map[key] { report(path.key(key), "only applies to mode: tls", node: keyNode) }
            }
        }
        if mode == .http {
            // An HTTP frontend answers ACME challenges and redirects; it relays nothing and terminates no TLS.
            let unused = ["alpn", "min_tls", "handshake_timeout", "backends", "balance", "prefer_local", "proxy_protocol", "on_marked_down", "check", "connect_timeout"]
                + Self.mqttKeys
            for key in unused {
                if let keyNode = map[key] { report(path.key(key), "does not apply to mode: http", node: keyNode) }
            }
        } else if let keyNode = map["https_port"] {
            report(path.key("https_port"), "only applies to mode: http", node: keyNode)
        }
        let httpsPort = optional(map, "https_port") { integer($0, at: $1, in: 1...65535) }
        guard let name, let listen, let servers else { return nil }
        var frontend = FrontendSettings(
            name: name, listen: listen, mode: mode, alpn: alpn, minimumTLS13: minimumTLS, servers: servers,
            balance: optional(map, "balance") { node, path in enumeration(node, at: path, FrontendSettings.Balance.self) } ?? .roundrobin,
            preferLocal: optional(map, "prefer_local") { boolean($0, at: $1) } ?? false,
            proxyProtocol: optional(map, "proxy_protocol", proxyProtocol) ?? false,
            onMarkedDown: optional(map, "on_marked_down") { node, path in
                enumeration(node, at: path, FrontendSettings.MarkedDownAction.self)
            } ?? .keepSessions,
            maxConnections: optional(map, "maxconn") { integer($0, at: $1, in: BackendServerSettings.maxConnectionsRange) },
            check: check,
            handshakeTimeout: optional(map, "handshake_timeout", timeout) ?? FrontendSettings.defaultHandshakeTimeout,
            connectTimeout: optional(map, "connect_timeout", timeout) ?? FrontendSettings.defaultConnectTimeout,
            idleTimeout: optional(map, "idle_timeout", timeout) ?? FrontendSettings.defaultIdleTimeout
        )
        if mode == .http {
            frontend.httpsPort = httpsPort
            if map["idle_timeout"] == nil { frontend.idleTimeout = FrontendSettings.defaultHTTPIdleTimeout }
        } else {
            frontend.mqtt = mqttFrontend(map, at: path)
        }
        return frontend
    }

    /// The frontend keys that configure MQTT handling.
    static let mqttKeys = ["require_mqtt_connect", "mqtt_connect_timeout", "mqtt_max_connect_size", "stick", "stick_expire", "stick_table_size"]

    /// `require_mqtt_connect`, `stick: mqtt_client_id` and their limits.
    func mqttFrontend(_ map: CheckedMapping, at path: ConfigPath) -> MQTTFrontendSettings {
        var mqtt = MQTTFrontendSettings()
        mqtt.requireConnect = optional(map, "require_mqtt_connect") { boolean($0, at: $1) } ?? false
        mqtt.stickByClientID = optional(map, "stick") { node, path -> Bool? in
            guard let text = string(node, at: path) else { return nil }
            guard text == "mqtt_client_id" else {
                report(path, "'\(Self.quoted(text))' is not a stickiness key; the one supported is mqtt_client_id", node: node)
                return nil
            }
            return true
        } ?? false
        mqtt.connectTimeout = optional(map, "mqtt_connect_timeout", timeout) ?? mqtt.connectTimeout
        mqtt.maxConnectSize = optional(map, "mqtt_max_connect_size") { integer($0, at: $1, in: MQTTFrontendSettings.maxConnectSizeRange) } ?? mqtt.maxConnectSize
        mqtt.stickExpire = optional(map, "stick_expire", timeout) ?? mqtt.stickExpire
        mqtt.stickTableSize = optional(map, "stick_table_size") { integer($0, at: $1, in: MQTTFrontendSettings.stickTableSizeRange) } ?? mqtt.stickTableSize
        if !mqtt.requireConnect && !mqtt.stickByClientID {
            for key in ["mqtt_connect_timeout", "mqtt_max_connect_size"] {
                if let keyNode = map[key] { report(path.key(key), "only applies with require_mqtt_connect: true or stick: mqtt_client_id", node: keyNode) }
            }
        }
        if !mqtt.stickByClientID {
            for key in ["stick_expire", "stick_table_size"] {
                if let keyNode = map[key] { report(path.key(key), "only applies with stick: mqtt_client_id", node: keyNode) }
            }
        }
        return mqtt
    }

    /// One `backends[]` entry: `"host:port"`, or a mapping with `address` and the server's options.
    func backendServer(_ node: Node, at path: ConfigPath) -> BackendServerSettings? {
        if case .scalar = node {
            return listenAddress(node, at: path).map { BackendServerSettings(address: $0) }
        }
        guard let map = mapping(node, at: path, keys: ConfigSchema.backendServer) else { return nil }
        let address = required(map, "address", listenAddress)
        let check = optional(map, "check") { node, path -> BackendServerSettings.Check? in
            if let enabled = boolean(node, at: path, quiet: true) { return enabled ? .custom(HealthCheckSettings()) : .disabled }
            return healthCheck(node, at: path).map { .custom($0) }
        } ?? .inherit
        guard let address else { return nil }
        return BackendServerSettings(
            address: address, name: optional(map, "name", name),
            weight: optional(map, "weight") { integer($0, at: $1, in: BackendServerSettings.weightRange) } ?? 1,
            backup: optional(map, "backup") { boolean($0, at: $1) } ?? false,
            local: optional(map, "local") { boolean($0, at: $1) },
            maxConnections: optional(map, "maxconn") { integer($0, at: $1, in: BackendServerSettings.maxConnectionsRange) },
            proxyProtocol: optional(map, "proxy_protocol", proxyProtocol),
            check: check)
    }

    /// A `check:` mapping.
    func healthCheck(_ node: Node, at path: ConfigPath) -> HealthCheckSettings? {
        guard let map = mapping(node, at: path, keys: ConfigSchema.healthCheck) else { return nil }
        let kind = optional(map, "type") { node, path in enumeration(node, at: path, HealthCheckSettings.Kind.self) } ?? .tcp
        if kind != .http {
            for key in ["method", "path", "expect_status"] {
                if let keyNode = map[key] { report(path.key(key), "only applies to type: http", node: keyNode) }
            }
        }
        let method = optional(map, "method") { node, path in
            checkedString(node, at: path, isNot: "an HTTP method") { text in
                !text.isEmpty && text.utf8.allSatisfy({ (0x41...0x5A).contains($0) }) ? nil : "use upper-case letters, like GET or HEAD"
            }
        }
        let requestPath = optional(map, "path") { node, path in
            checkedString(node, at: path, isNot: "an HTTP path") { text in
                text.hasPrefix("/") && !text.contains(where: { $0 == " " || $0.isNewline || $0 == "\0" })
                    ? nil : "it must start with / and contain no spaces or line breaks"
            }
        }
        let interval = optional(map, "interval", timeout) ?? HealthCheckSettings.defaultInterval
        let checkTimeout = optional(map, "timeout", timeout)
        if let checkTimeout, checkTimeout > interval, let timeoutNode = map["timeout"] {
            let shown = interval == interval.rounded() ? "\(Int(interval))s" : "\(interval)s"
            report(path.key("timeout"), "must be at most the interval (\(shown))", node: timeoutNode)
        }
        return HealthCheckSettings(
            kind: kind, port: optional(map, "port") { integer($0, at: $1, in: 1...65535) },
            method: method ?? "GET", path: requestPath ?? "/",
            expectStatus: optional(map, "expect_status") { integer($0, at: $1, in: 100...599) } ?? 200,
            interval: interval, timeout: checkTimeout,
            fall: optional(map, "fall") { integer($0, at: $1, in: HealthCheckSettings.countRange) } ?? HealthCheckSettings.defaultFall,
            rise: optional(map, "rise") { integer($0, at: $1, in: HealthCheckSettings.countRange) } ?? HealthCheckSettings.defaultRise)
    }

    /// `proxy_protocol`: `v2` (send the header) or `none`.
    func proxyProtocol(_ node: Node, at path: ConfigPath) -> Bool? {
        guard let text = string(node, at: path) else { return nil }
        switch text {
        case "v2": return true
        case "none": return false
        default:
            report(path, "'\(Self.quoted(text))' is not a PROXY protocol version; use v2 or none", node: node)
            return nil
        }
    }

    /// A YAML boolean (`true`, `false`).
    /// - Parameter quiet: return `nil` without reporting when the value is not a boolean (the caller tries another form).
    func boolean(_ node: Node, at path: ConfigPath, quiet: Bool = false) -> Bool? {
        if case .scalar(let scalar) = node, node.tagName == .bool, let value = Bool.construct(from: scalar) { return value }
        if !quiet { report(path, "expected true or false, got \(Self.describe(node))", node: node) }
        return nil
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
