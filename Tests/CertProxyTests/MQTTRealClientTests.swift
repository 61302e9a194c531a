import CertProxy
import CertkeeperTestSupport
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

/// A listener that puts an ``MQTTConnectGate`` in front of a minimal broker stand-in: the stand-in records what
/// the gate passes on and answers the CONNECT with a success CONNACK, so the real client finishes normally.
final class GatedMQTTListener: Sendable {
    struct Received: Sendable {
        var accepted: [MQTTConnectAccepted] = []
        /// The first buffer passed on by the gate on each connection (the CONNECT, maybe with more behind it).
        var firstBytes: [[UInt8]] = []
        var closedConnections = 0
    }

    let port: Int
    let received: NIOLockedValueBox<Received>
    let logs: CapturedLogs
    private let channel: any Channel

    private init(port: Int, received: NIOLockedValueBox<Received>, logs: CapturedLogs, channel: any Channel) {
        self.port = port
        self.received = received
        self.logs = logs
        self.channel = channel
    }

    static func start() async throws -> GatedMQTTListener {
        let port = try PortAllocator.shared.allocate()
        let received = NIOLockedValueBox(Received())
        let logs = CapturedLogs()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        MQTTConnectGate(afterTLSHandshake: false, logger: logs.logger),
                        BrokerStandIn(received: received),
                    ])
                }
            }
            .bind(host: "127.0.0.1", port: port)
            .get()
        return GatedMQTTListener(port: port, received: received, logs: logs, channel: channel)
    }

    func stop() async {
        try? await channel.close()
    }

    final class BrokerStandIn: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let received: NIOLockedValueBox<Received>
        var awaitingConnect: MQTTProtocolVersion?

        init(received: NIOLockedValueBox<Received>) { self.received = received }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let accepted = event as? MQTTConnectAccepted {
                awaitingConnect = accepted.version
                received.withLockedValue { $0.accepted.append(accepted) }
            }
            if let event = event as? ChannelEvent, case .inputClosed = event {
                context.close(promise: nil)
            }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard let version = awaitingConnect else { return }
            awaitingConnect = nil
            let buffer = unwrapInboundIn(data)
            received.withLockedValue { $0.firstBytes.append(Array(buffer.readableBytesView)) }
            let connack: [UInt8] = version == .v5 ? [0x20, 0x03, 0x00, 0x00, 0x00] : [0x20, 0x02, 0x00, 0x00]
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: connack)), promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            received.withLockedValue { $0.closedConnections += 1 }
            context.fireChannelInactive()
        }
    }
}

/// The parser and gate against CONNECTs written by a real client (Debian's `mosquitto-clients`).
@Suite("MQTT CONNECT from mosquitto_pub")
struct MQTTRealClientTests {
    static let mosquittoPub = "/usr/bin/mosquitto_pub"

    struct Case: Sendable, CustomTestStringConvertible {
        var version: String
        var expected: MQTTProtocolVersion
        var clientID: String
        var extraArguments: [String]
        var testDescription: String { "\(version) \(extraArguments.isEmpty ? "plain" : "with will, credentials, properties")" }
    }

    static let withWillAndCredentials = [
        "-u", "device", "-P", "s3cret", "--will-topic", "lwt/device", "--will-payload", "gone", "--will-qos", "1",
        "--will-retain",
    ]

    static let cases: [Case] = [
        Case(version: "mqttv31", expected: .v3_1, clientID: "pub-31", extraArguments: []),
        Case(version: "mqttv31", expected: .v3_1, clientID: "pub-31-will", extraArguments: withWillAndCredentials),
        Case(version: "mqttv311", expected: .v3_1_1, clientID: "pub-311", extraArguments: []),
        Case(version: "mqttv311", expected: .v3_1_1, clientID: "pub-311-will", extraArguments: withWillAndCredentials),
        Case(version: "mqttv5", expected: .v5, clientID: "pub-5", extraArguments: []),
        Case(
            version: "mqttv5", expected: .v5, clientID: "pub-5-props",
            extraArguments: withWillAndCredentials + [
                "-D", "connect", "session-expiry-interval", "120", "-D", "connect", "receive-maximum", "10",
                "-D", "connect", "user-property", "site", "lab", "-D", "connect", "user-property", "rack", "7",
                "-D", "will", "content-type", "text/plain", "-D", "will", "message-expiry-interval", "60",
                "-D", "will", "user-property", "k", "v",
            ]),
    ]

    @Test("the gate accepts mosquitto_pub's CONNECT, reports its client id and passes it on unchanged", arguments: cases)
    func realConnect(_ testCase: Case) async throws {
        try #require(
            FileManager.default.isExecutableFile(atPath: Self.mosquittoPub),
            "mosquitto_pub missing: apt-get install mosquitto-clients")
        let listener = try await GatedMQTTListener.start()
        let result: (exitCode: Int32, stdout: String, stderr: String)
        do {
            result = try await OneShotProcess.run(
                executable: Self.mosquittoPub,
                arguments: [
                    "-h", "127.0.0.1", "-p", "\(listener.port)", "-V", testCase.version, "-i", testCase.clientID,
                    "-t", "test/topic", "-m", "hello",
                ] + testCase.extraArguments,
                timeout: 30)
        } catch {
            await listener.stop()
            throw error
        }
        // The stand-in counts the connection once the client has gone.
        _ = await eventually(timeout: .seconds(15)) { listener.received.withLockedValue { $0.closedConnections } >= 1 }
        await listener.stop()

        #expect(result.exitCode == 0, "mosquitto_pub: \(result.stderr)")
        let received = listener.received.withLockedValue { $0 }
        #expect(received.accepted == [MQTTConnectAccepted(clientID: testCase.clientID, version: testCase.expected)])
        #expect(listener.logs.all.isEmpty, "\(listener.logs.all)")
        let first = try #require(received.firstBytes.first)
        guard case .connect(let packet) = MQTTConnectParser().parse(first) else {
            Issue.record("the bytes passed on do not start with the CONNECT")
            return
        }
        #expect(packet.clientID == testCase.clientID)
        #expect(packet.version == testCase.expected)
    }
}
