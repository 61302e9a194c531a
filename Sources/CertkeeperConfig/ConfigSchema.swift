/// The keys each mapping of the file may contain. Adding a top-level section (`cluster:`, `proxy:`) means adding
/// its name to ``topLevel``, a key list here, a field on ``CertkeeperConfiguration`` and one section function in
/// `ConfigSections.swift` called from ``ConfigReader/configuration(from:)``.
enum ConfigSchema {
    static let topLevel = ["state_dir", "node_name", "keep_versions", "acme", "internal_ca", "renew", "certificates", "hooks", "cluster", "proxy", "stats"]
    static let acme = ["directory", "email", "ca_bundle", "eab", "profile", "request_timeout", "order_timeout"]
    static let externalAccountBinding = ["kid", "hmac_key"]
    static let internalCA = ["name", "leaf_lifetime", "root_lifetime"]
    static let renew = ["random_sleep", "concurrency", "lock_timeout", "http01_listen"]
    static let certificate = ["name", "domains", "issuer", "key_type", "challenge", "renew_before", "profile", "hooks"]
    static let http01Challenge = ["type", "webroot", "listen", "stateless"]
    static let dns01Challenge = ["type", "hook", "propagation_delay", "timeout"]
    static let anyChallenge = http01Challenge + dns01Challenge.filter { !http01Challenge.contains($0) }
    static let hooks = ["deploy", "directory", "timeout"]
    static let hookCommand = ["command", "timeout"]
    static let cluster = ["role", "listen", "peers", "identity", "long_poll", "anti_entropy", "takeover_after", "takeover_margin"]
    static let clusterPeer = ["name", "address", "role"]
    static let proxy = ["threads", "grace", "default_certificate", "frontends"]
    static let frontend = [
        "name", "listen", "mode", "alpn", "min_tls", "backends", "balance", "prefer_local", "proxy_protocol", "on_marked_down",
        "maxconn", "check", "handshake_timeout", "connect_timeout", "idle_timeout", "https_port",
        "require_mqtt_connect", "mqtt_connect_timeout", "mqtt_max_connect_size", "stick", "stick_expire", "stick_table_size",
    ]
    static let backendServer = ["address", "name", "weight", "backup", "local", "maxconn", "proxy_protocol", "check"]
    static let healthCheck = ["type", "port", "method", "path", "expect_status", "interval", "timeout", "fall", "rise"]

    /// Every key path the file can contain, with `[]` for list items; the documentation tests check against it.
    static let allKeyPaths: [String] = {
        var paths: [String] = []
        func add(_ prefix: String, _ keys: [String]) { paths += keys.map { prefix.isEmpty ? $0 : "\(prefix).\($0)" } }
        add("", topLevel)
        add("acme", acme)
        add("acme.eab", externalAccountBinding)
        add("internal_ca", internalCA)
        add("renew", renew)
        add("certificates[]", certificate)
        add("certificates[].challenge", anyChallenge)
        add("certificates[].hooks[]", hookCommand)
        add("hooks", hooks)
        add("hooks.deploy[]", hookCommand)
        add("cluster", cluster)
        add("cluster.peers[]", clusterPeer)
        add("proxy", proxy)
        add("proxy.frontends[]", frontend)
        add("proxy.frontends[].check", healthCheck)
        add("proxy.frontends[].backends[]", backendServer)
        add("proxy.frontends[].backends[].check", healthCheck)
        add("stats", stats)
        return paths
    }()
}

/// The `challenge.type` values.
enum ChallengeType: String, CaseIterable {
    case http01 = "http-01"
    case dns01 = "dns-01"

    /// The keys a challenge mapping of this type may contain.
    var keys: [String] {
        switch self {
        case .http01: ConfigSchema.http01Challenge
        case .dns01: ConfigSchema.dns01Challenge
        }
    }
}
