import Agent
import ArgumentParser
import CertStore
import CertkeeperConfig
import ClusterTrust
import Foundation
import Logging
import PeerSync
import Renewal

/// Exit codes shared by every command (documented in the README).
enum ExitStatus {
    /// Everything renewed or not due.
    static let success: Int32 = 0
    /// At least one certificate failed, is backing off, or a hook failed.
    static let failure: Int32 = 1
    /// Usage or configuration error; nothing was touched.
    static let usage: Int32 = 2
}

@main
struct Certkeeper: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certkeeper",
        abstract: "Renew TLS certificates over ACME, sync them between nodes over mutual TLS, and serve them through a TLS proxy.",
        discussion: """
        Exit codes: 0 all good or nothing due; 1 a certificate failed (or is backing off, or a hook failed); \
        2 usage or configuration error.
        """,
        version: "0.1.0",
        subcommands: [Renew.self, ForceRenew.self, Status.self, Revoke.self, CheckConfig.self, Proxy.self, Cluster.self, Daemon.self, Import.self, Trust.self]
    )

    /// Parses, runs, and maps every error to the documented exit codes (ArgumentParser alone uses 64 for usage).
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let exit as ExitCode {
            Foundation.exit(exit.rawValue)
        } catch let error as CommandFailure {
            for line in error.lines { FileHandle.standardError.write(Data("certkeeper: \(line)\n".utf8)) }
            Foundation.exit(error.code)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Foundation.exit(ExitStatus.success)
            }
            FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
            Foundation.exit(code == .failure ? ExitStatus.failure : ExitStatus.usage)
        }
    }
}

/// An error that ends a command with the given lines on standard error and exit code.
struct CommandFailure: Error {
    var lines: [String]
    var code: Int32

    static func usage(_ lines: [String]) -> CommandFailure { CommandFailure(lines: lines, code: ExitStatus.usage) }
    static func failure(_ line: String) -> CommandFailure { CommandFailure(lines: [line], code: ExitStatus.failure) }
}

/// Options every command shares.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Configuration file (default: $CERTKEEPER_CONFIG, else \(ConfigLoader.defaultPath)).", valueName: "path"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", valueName: "level"))
    var logLevel: String = "info"

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level: '\(logLevel)' is not one of trace, debug, info, notice, warning, error, critical")
        }
    }

    var logger: Logger {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        return Logger(label: "certkeeper") { label in LineLogHandler(label: label, level: level) }
    }

    /// Loads and validates the configuration, or fails with one line per problem and exit code 2.
    func loadConfiguration() throws -> CertkeeperConfiguration {
        let path = ConfigLoader.resolvePath(explicit: config, environment: ProcessInfo.processInfo.environment)
        do {
            return try ConfigLoader.load(path: path)
        } catch {
            throw CommandFailure.usage(String(describing: error).split(separator: "\n").map(String.init))
        }
    }

    /// A renewer for `configuration` (through the agent's ``NodeContext``).
    func makeRenewer(_ configuration: CertkeeperConfiguration) -> Renewer {
        NodeContext(configuration: configuration, logger: logger).makeRenewer()
    }
}

/// Runs agent work, mapping its errors to the documented exit codes.
func agentCommand<T>(_ body: () async throws(AgentError) -> T) async throws(CommandFailure) -> T {
    do {
        return try await body()
    } catch {
        switch error.kind {
        case .configuration: throw CommandFailure.usage(error.lines)
        case .failure: throw CommandFailure(lines: error.lines, code: ExitStatus.failure)
        }
    }
}
