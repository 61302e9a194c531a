import Agent
import ACMEProtocol
import ArgumentParser
import CertkeeperConfig
import Durations
import Foundation
import Logging
import Renewal

struct Renew: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Renew the certificates that are due (what cron runs).",
        discussion: """
        A certificate is due when ARI's suggested window has begun, else when less than 1/3 of its lifetime \
        remains (1/2 under 10 days), or earlier if renew_before says so. When something is due and standard input \
        is not a terminal, certkeeper first sleeps a random delay up to renew.random_sleep (default 8 minutes). \
        Certificates with issuer: internal are signed by certkeeper's own CA in the state directory, with no \
        network; the first one creates that CA (certkeeper trust prints its root).

        Examples:
          certkeeper renew
          certkeeper renew web mqtt --no-random-sleep
        """
    )

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Do not sleep a random delay before renewing, even when not on a terminal.")
    var noRandomSleep = false

    @Argument(help: "Certificate names (default: all configured).")
    var names: [String] = []

    func run() async throws {
        let configuration = try global.loadConfiguration()
        let renewer = global.makeRenewer(configuration)
        let specs = try selected(renewer, names)
        let maximum = configuration.renew.randomSleepMax
        let sleepFirst = !noRandomSleep && isatty(STDIN_FILENO) == 0 && maximum > 0
        let logger = global.logger
        let randomDelay: (@Sendable () async -> Void)? = sleepFirst ? RandomSleep(maximum: maximum, logger: logger).run : nil
        let report = try await runRenewal(renewer, specs: specs, force: false, randomDelay: randomDelay)
        throw ExitCode(report.exitCode)
    }
}

struct ForceRenew: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "force-renew",
        abstract: "Renew now, whatever the renewal window or back-off says.",
        discussion: """
        Examples:
          certkeeper force-renew web
          certkeeper force-renew --all
        """
    )

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Renew every configured certificate.")
    var all = false

    @Argument(help: "Certificate names.")
    var names: [String] = []

    func validate() throws {
        if all != names.isEmpty {
            throw ValidationError(all ? "give either --all or certificate names, not both" : "name the certificates to renew, or pass --all")
        }
    }

    func run() async throws {
        let configuration = try global.loadConfiguration()
        let renewer = global.makeRenewer(configuration)
        let report = try await runRenewal(renewer, specs: try selected(renewer, names), force: true, randomDelay: nil)
        throw ExitCode(report.exitCode)
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List certificates: domains, expiry, days left, next renewal, last error.",
        discussion: """
        Reads only the configuration and the store (no network), except with --cluster, which asks every peer \
        (over mutual TLS, at most 5 seconds each) what it holds: reachable or not, its role, and the serial and \
        expiry of each certificate, so you see at a glance whether all nodes agree. With --cluster the exit code \
        is 1 when a peer is unreachable or the nodes hold different certificates.

        Examples:
          certkeeper status
          certkeeper status --json | jq '.[] | select(.days_left < 10)'
          certkeeper status --cluster
        """
    )

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    @Flag(name: .long, help: "Show what every node of the cluster holds (asks the peers).")
    var cluster = false

    @Argument(help: "Certificate names (default: all configured).")
    var names: [String] = []

    func run() async throws {
        let configuration = try global.loadConfiguration()
        if cluster {
            let context = NodeContext(configuration: configuration, logger: global.logger)
            let reports = try await agentCommand { () async throws(AgentError) in try await ClusterStatusReport.gather(context) }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                encoder.dateEncodingStrategy = .iso8601
                print(String(decoding: try encoder.encode(reports), as: UTF8.self))
            } else {
                print(ClusterStatusReport.render(reports, now: Date()))
            }
            throw ExitCode(ClusterStatusReport.allAgree(reports) ? ExitStatus.success : ExitStatus.failure)
        }
        let renewer = global.makeRenewer(configuration)
        let rows = renewer.status(try selected(renewer, names))
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            encoder.dateEncodingStrategy = .iso8601
            print(String(decoding: try encoder.encode(rows), as: UTF8.self))
        } else {
            print(StatusTable.render(rows))
        }
        throw ExitCode(rows.contains(where: { $0.lastError != nil || $0.deployOwed }) ? ExitStatus.failure : ExitStatus.success)
    }
}

struct Revoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Revoke a certificate's live version at the CA; the next renew replaces it.",
        discussion: """
        ACME certificates only: the internal CA (issuer: internal) publishes no revocation, so replace such a \
        certificate with certkeeper force-renew instead.

        Examples:
          certkeeper revoke web
          certkeeper revoke web --reason keyCompromise
        """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "unspecified, keyCompromise, superseded or cessationOfOperation.")
    var reason: String?

    @Argument(help: "Certificate name.")
    var name: String

    func validate() throws {
        if let reason, RevocationReason(name: reason) == nil {
            throw ValidationError("--reason: '\(reason)' is not one of unspecified, keyCompromise, superseded, cessationOfOperation")
        }
    }

    func run() async throws {
        let configuration = try global.loadConfiguration()
        let renewer = global.makeRenewer(configuration)
        guard let spec = try selected(renewer, [name]).first else { return }
        do {
            let serial = try await renewer.revoke(spec, reason: reason.flatMap(RevocationReason.init(name:)))
            print("revoked \(spec.name) serial \(serial)")
        } catch {
            throw CommandFailure.failure(error.description)
        }
    }
}

struct CheckConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate the configuration file and print every problem with its key path.",
        discussion: """
        Examples:
          certkeeper check-config
          certkeeper check-config --config ./certkeeper.yaml
        """
    )

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let configuration = try global.loadConfiguration()
        let problems = ConfigEnvironment.problems(in: configuration)
        guard problems.isEmpty else {
            let path = ConfigLoader.resolvePath(explicit: global.config, environment: ProcessInfo.processInfo.environment)
            throw CommandFailure.usage(problems.map { "\(path): \($0)" })
        }
        print("configuration OK: \(configuration.certificates.count) certificate(s), state in \(configuration.stateDirectory)")
    }
}

/// The configured certificates named on the command line; an unknown name is a usage error.
func selected(_ renewer: Renewer, _ names: [String]) throws -> [CertificateSpec] {
    do {
        return try renewer.select(names)
    } catch {
        throw CommandFailure.usage([error.description])
    }
}

/// Runs renew or force-renew and prints one summary line per certificate on standard output.
func runRenewal(_ renewer: Renewer, specs: [CertificateSpec], force: Bool, randomDelay: (@Sendable () async -> Void)?) async throws -> RunReport {
    let report: RunReport
    do {
        report = try await renewer.run(specs, force: force, randomDelay: randomDelay)
    } catch {
        throw CommandFailure.failure(error.description)
    }
    for (name, outcome) in report.outcomes {
        print(outcome.summary(name: name))
    }
    return report
}

/// cron's jitter: a uniformly random pause so that many hosts do not hit the CA at the same second.
struct RandomSleep: Sendable {
    var maximum: Double
    var logger: Logger

    @Sendable func run() async {
        let seconds = Double.random(in: 0...maximum)
        logger.info("sleeping before renewing to spread load on the CA", metadata: ["renew.sleep_seconds": "\(Int(seconds))"])
        try? await Task.sleep(for: .clampedSeconds(seconds))
    }
}
