import Foundation

/// A mosquitto broker on a free loopback port, logging client connections to its log file.
public struct MosquittoBroker: Sendable {
    /// Debian's broker.
    public static let executable = "/usr/sbin/mosquitto"

    /// The loopback port it listens on.
    public let port: Int
    let process: ManagedProcess

    /// - Parameter reusedPort: Restart on this port (same name: same configuration and log file).
    public static func start(_ name: String, in directory: TemporaryDirectory, port reusedPort: Int? = nil) async throws -> MosquittoBroker {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw TestSupportError.launchFailed(executable: executable, reason: "mosquitto missing: apt-get install mosquitto")
        }
        let port = try reusedPort ?? PortAllocator.shared.allocate()
        // mosquitto started as root drops to its own user before opening the log (stdout to a file is buffered).
        let logDirectory = directory.appending("\(name)-log")
        try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o777], ofItemAtPath: logDirectory)
        let config = try directory.write(
            """
            listener \(port) 127.0.0.1
            allow_anonymous true
            persistence false
            log_dest file \(logDirectory)/mosquitto.log
            log_timestamp false

            """, to: "\(name).conf")
        let process = try ManagedProcess.start(
            name: name, executable: executable, arguments: ["-c", config], logDirectory: directory.path)
        do {
            try await process.waitForTCPPort(port: port, timeout: 30)
        } catch {
            await process.stop()
            throw error
        }
        return MosquittoBroker(port: port, process: process, logPath: "\(logDirectory)/mosquitto.log")
    }

    let logPath: String

    /// The broker's log so far.
    public var log: String {
        String(decoding: FileManager.default.contents(atPath: logPath) ?? Data(), as: UTF8.self)
    }

    /// How many times a client with `clientID` connected ("New client connected from … as <id> (…").
    public func connections(of clientID: String) -> Int {
        log.components(separatedBy: " as \(clientID) (").count - 1
    }

    /// Stops the broker.
    public func stop() async { await process.stop() }
}

/// Runs Debian's MQTT clients against the proxy.
public enum MQTTClients {
    /// `mosquitto_pub`.
    public static let publisher = "/usr/bin/mosquitto_pub"
    /// `mosquitto_sub`.
    public static let subscriber = "/usr/bin/mosquitto_sub"

    /// TLS to `localhost:port`, verified against `caFile`.
    public static func tlsArguments(port: Int, caFile: String) -> [String] {
        ["-h", "localhost", "-p", "\(port)", "--cafile", caFile]
    }

    /// Publishes one message over TLS to `localhost:port` as `clientID`.
    public static func publish(
        port: Int, caFile: String, version: String = "mqttv311", clientID: String, message: String = "hello"
    ) async throws -> (exitCode: Int32, stdout: String, stderr: String) {
        guard FileManager.default.isExecutableFile(atPath: publisher) else {
            throw TestSupportError.launchFailed(executable: publisher, reason: "mosquitto_pub missing: apt-get install mosquitto-clients")
        }
        return try await OneShotProcess.run(
            executable: publisher,
            arguments: tlsArguments(port: port, caFile: caFile) + ["-V", version, "-i", clientID, "-t", "test/topic", "-m", message],
            timeout: 30)
    }
}

