import CertkeeperTestSupport
import CertProxy
import NIOCore
import NIOEmbedded
import NIOTLS
import Testing

/// Records what passes the gate, in order.
final class GateOutputRecorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    enum Item: Equatable {
        case accepted(MQTTConnectAccepted)
        case bytes([UInt8])
        case event(String)
    }

    var items: [Item] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        items.append(.bytes(buffer.readBytes(length: buffer.readableBytes) ?? []))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let accepted = event as? MQTTConnectAccepted {
            items.append(.accepted(accepted))
        } else {
            items.append(.event("\(event)"))
        }
    }
}

/// Stands in for the proxy's connection handler while it connects: swallows read requests.
final class ReadHolder: ChannelOutboundHandler {
    typealias OutboundIn = NIOAny
    func read(context: ChannelHandlerContext) {}
}

/// Counts the read requests that reach the channel.
final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = NIOAny
    var reads = 0
    func read(context: ChannelHandlerContext) {
        reads += 1
        context.read()
    }
}

/// One EmbeddedChannel with `ReadCounter → gate → ReadHolder → recorder`.
struct GateHarness {
    let channel = EmbeddedChannel()
    let counter = ReadCounter()
    let recorder = GateOutputRecorder()
    let logs = CapturedLogs()
    let gate: MQTTConnectGate

    init(afterTLSHandshake: Bool = false, deadline: TimeAmount = .seconds(5), maxPacketSize: Int = 65_536) throws {
        gate = MQTTConnectGate(
            deadline: deadline, maxPacketSize: maxPacketSize, afterTLSHandshake: afterTLSHandshake, logger: logs.logger)
        try channel.pipeline.syncOperations.addHandlers([counter, gate, ReadHolder(), recorder])
        try channel.connect(to: SocketAddress(ipAddress: "192.0.2.7", port: 40_000)).wait()
    }

    func send(_ bytes: [UInt8]) throws {
        try channel.writeInbound(channel.allocator.buffer(bytes: bytes))
    }

    var gateInPipeline: Bool {
        (try? channel.pipeline.syncOperations.context(handlerType: MQTTConnectGate.self)) != nil
    }

    func advance(_ amount: TimeAmount) {
        channel.embeddedEventLoop.advanceTime(by: amount)
    }
}

@Suite("MQTT CONNECT gate")
struct MQTTConnectGateTests {
    static let publish: [UInt8] = [0x30, 0x07, 0x00, 0x01, 0x74, 0x68, 0x65, 0x6C, 0x6F]

    @Test("a CONNECT sent in pieces, with a PUBLISH behind it, passes unchanged after the accepted event")
    func validPassesThrough() throws {
        let harness = try GateHarness()
        let packet = MQTTConnectParserTests.fullV5().bytes + Self.publish
        try harness.send(Array(packet[..<1]))
        try harness.send(Array(packet[1..<20]))
        #expect(harness.recorder.items.isEmpty)
        #expect(harness.counter.reads >= 2, "the gate asks for reads although a handler behind it holds them")
        try harness.send(Array(packet[20...]))
        #expect(
            harness.recorder.items == [
                .accepted(MQTTConnectAccepted(clientID: "gateway-ü-7", version: .v5)), .bytes(packet),
            ])
        #expect(!harness.gateInPipeline)
        #expect(harness.channel.isActive)
        // Later bytes flow straight through.
        try harness.send([0xC0, 0x00])
        #expect(harness.recorder.items.last == .bytes([0xC0, 0x00]))
        // No deadline left behind.
        harness.advance(.seconds(60))
        #expect(harness.channel.isActive)
        #expect(harness.logs.all.isEmpty)
        _ = try harness.channel.finish()
    }

    @Test("an HTTP request closes the connection with one log line and passes nothing on")
    func garbageCloses() throws {
        let harness = try GateHarness()
        try harness.send(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        #expect(!harness.channel.isActive)
        #expect(harness.recorder.items.allSatisfy { if case .event = $0 { true } else { false } })
        let lines = harness.logs.all
        #expect(lines.count == 1)
        #expect(lines.first?.contains("mqtt.reject=not a CONNECT packet (first byte 0x47)") == true)
        #expect(lines.first?.contains("client=[IPv4]192.0.2.7:40000") == true, "\(lines)")
        #expect(lines.first?.contains("Host") == false)
    }

    @Test("a CONNECT announcing more than the limit closes the connection on its header")
    func oversizeCloses() throws {
        let harness = try GateHarness(maxPacketSize: 1024)
        try harness.send([0x10, 0x81, 0x08])
        #expect(!harness.channel.isActive)
        #expect(harness.logs.all.first?.contains("exceeds the 1024-byte limit") == true)
    }

    @Test("no complete CONNECT by the deadline closes the connection")
    func deadlineCloses() throws {
        let harness = try GateHarness(deadline: .seconds(5))
        let packet = ConnectPacketBuilder.v311().bytes
        try harness.send(Array(packet[..<6]))
        harness.advance(.milliseconds(4_999))
        #expect(harness.channel.isActive)
        harness.advance(.milliseconds(1))
        #expect(!harness.channel.isActive)
        #expect(harness.recorder.items.isEmpty)
        let lines = harness.logs.all
        #expect(lines.count == 1)
        #expect(lines.first?.contains("no complete CONNECT within") == true)
        #expect(lines.first?.contains("mqtt.bytes_received=6") == true)
    }

    @Test("behind TLS the deadline starts at the handshake, whose event passes through")
    func deadlineAfterHandshake() throws {
        let harness = try GateHarness(afterTLSHandshake: true, deadline: .seconds(5))
        harness.advance(.seconds(30))
        #expect(harness.channel.isActive)
        harness.channel.pipeline.fireUserInboundEventTriggered(TLSUserEvent.handshakeCompleted(negotiatedProtocol: nil))
        #expect(harness.recorder.items.count == 1)
        harness.advance(.seconds(4))
        #expect(harness.channel.isActive)
        harness.advance(.seconds(1))
        #expect(!harness.channel.isActive)
    }

    @Test("the client closing its side mid-CONNECT closes the connection")
    func endOfInputCloses() throws {
        let harness = try GateHarness()
        try harness.send(Array(ConnectPacketBuilder.v31().bytes[..<10]))
        harness.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(!harness.channel.isActive)
        #expect(harness.logs.all.first?.contains("client closed before a complete CONNECT") == true)
    }

    @Test("an invalid CONNECT (wrong protocol level) closes the connection")
    func invalidConnectCloses() throws {
        let harness = try GateHarness()
        var builder = ConnectPacketBuilder.v311()
        builder.level = 7
        try harness.send(builder.bytes)
        #expect(!harness.channel.isActive)
        #expect(harness.logs.all.first?.contains("unsupported protocol MQTT level 7") == true)
    }

    @Test("a handler behind that closes on the accepted event (no server left) leaves a clean pipeline")
    func closedOnAccept() throws {
        final class CloseOnAccept: ChannelInboundHandler {
            typealias InboundIn = ByteBuffer
            func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
                if event is MQTTConnectAccepted { context.close(promise: nil) }
            }
        }
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([
            MQTTConnectGate(afterTLSHandshake: false, logger: CapturedLogs().logger), CloseOnAccept(),
        ])
        try channel.connect(to: SocketAddress(ipAddress: "192.0.2.7", port: 40_000)).wait()
        try channel.writeInbound(channel.allocator.buffer(bytes: ConnectPacketBuilder.v311().bytes))
        #expect(!channel.isActive)
        channel.embeddedEventLoop.run()
        #expect((try? channel.pipeline.syncOperations.context(handlerType: MQTTConnectGate.self)) == nil)
    }
}
