#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Durations
import Foundation
import Yams

/// Finds, reads, parses and validates the configuration file.
public enum ConfigLoader {
    /// Where the configuration lives when neither `--config` nor `CERTKEEPER_CONFIG` says otherwise.
    public static let defaultPath = "/etc/certkeeper/certkeeper.yaml"

    /// The environment variable naming the configuration file.
    public static let environmentVariable = "CERTKEEPER_CONFIG"

    /// The longest duration any key accepts, in seconds (10 years): keeps every later conversion of a configured
    /// duration to integer milliseconds or nanoseconds far from overflow. Durations read from elsewhere (certbot's
    /// renewal files) are held to it too.
    public static let longestDuration = Double(Duration.longestConverted.components.seconds)

    /// Largest file accepted; a configuration is a few kilobytes, anything this big is a mistake.
    public static let maximumFileSize = 4 << 20

    /// Chooses the configuration file: `explicit` (from `--config`) wins, then `CERTKEEPER_CONFIG`, then
    /// ``defaultPath``. Empty strings count as not given.
    ///
    /// - Parameters:
    ///   - explicit: the `--config` option, if given.
    ///   - environment: the process environment (injected so tests need not modify the real one).
    public static func resolvePath(explicit: String?, environment: [String: String]) -> String {
        if let explicit, !explicit.isEmpty { return explicit }
        if let fromEnvironment = environment[environmentVariable], !fromEnvironment.isEmpty { return fromEnvironment }
        return defaultPath
    }

    /// Reads and validates the file at `path`.
    ///
    /// - Parameter path: the configuration file, usually from ``resolvePath(explicit:environment:)``.
    /// - Returns: the validated configuration.
    /// - Throws: ``ConfigError`` naming `path`: unreadable file, malformed YAML, or every schema issue found.
    public static func load(path: String) throws(ConfigError) -> CertkeeperConfiguration {
        let text: String
        switch readFile(atPath: path) {
        case .success(let contents): text = contents
        case .failure(let reason): throw ConfigError(source: path, kind: .unreadable(reason: reason.text))
        }
        return try parse(yaml: text, source: path)
    }

    /// Validates configuration text.
    ///
    /// - Parameters:
    ///   - yaml: the file's contents.
    ///   - source: the name to put in front of every message, normally the file path.
    /// - Returns: the validated configuration.
    /// - Throws: ``ConfigError`` with ``ConfigError/Kind/invalidYAML(problem:line:column:)`` for malformed YAML,
    ///   or ``ConfigError/Kind/invalidConfiguration`` listing every schema issue, in file order.
    public static func parse(yaml: String, source: String) throws(ConfigError) -> CertkeeperConfiguration {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw ConfigError(source: source, kind: describe(error, in: yaml))
        } catch {
            throw ConfigError(source: source, kind: .invalidYAML(problem: "\(error)", line: nil, column: nil))
        }
        let reader = ConfigReader()
        guard let configuration = reader.configuration(from: root) else {
            throw ConfigError(source: source, issues: reader.issues)
        }
        return configuration
    }

    // MARK: Reading

    /// The file's text, or why it cannot be had. POSIX calls give the plain `strerror` reason
    /// ("No such file or directory") rather than Foundation's longer sentences.
    static func readFile(atPath path: String) -> Result<String, Syntax.Reason> {
        guard !path.isEmpty else { return .failure(Syntax.Reason("the path is empty")) }
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return .failure(Syntax.Reason(errnoDescription())) }
        defer { close(descriptor) }

        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return .failure(Syntax.Reason(errnoDescription())) }
        guard (status.st_mode & S_IFMT) != S_IFDIR else { return .failure(Syntax.Reason("it is a directory")) }
        // Refused from its size before reading; the loop below still stops at the limit for a pipe or a growing file.
        guard status.st_size <= maximumFileSize else { return .failure(Syntax.Reason("it is larger than \(maximumFileSize >> 20) MiB")) }

        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return .failure(Syntax.Reason(errnoDescription()))
            }
            if count == 0 { break }
            bytes += chunk[0..<count]
            if bytes.count > maximumFileSize {
                return .failure(Syntax.Reason("it is larger than \(maximumFileSize >> 20) MiB"))
            }
        }
        guard let text = String(bytes: bytes, encoding: .utf8) else {
            return .failure(Syntax.Reason("it is not valid UTF-8 text"))
        }
        return .success(text)
    }

    private static func errnoDescription() -> String {
        String(cString: strerror(errno))
    }

    // MARK: YAML errors

    /// Turns a Yams error into a one-line problem with its position.
    static func describe(_ error: YamlError, in yaml: String) -> ConfigError.Kind {
        switch error {
        case .scanner(let context, let problem, let mark, _),
            .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            var text = problem
            if let context {
                text += " (\(context.text) at line \(context.mark.line), column \(context.mark.column))"
            }
            return .invalidYAML(problem: text, line: mark.line, column: mark.column)
        case .duplicatedKeysInMapping(let duplicates, let context):
            let keys = duplicates.map { "'\($0)'" }.joined(separator: ", ")
            let line = context.mark.line > 0 ? context.mark.line : nil
            let column = context.mark.column > 0 ? context.mark.column : nil
            return .invalidYAML(problem: "the same mapping has key \(keys) more than once",
                                line: line, column: column)
        case .reader(let problem, let offset, _, _):
            guard let offset, offset <= yaml.count else {
                return .invalidYAML(problem: problem, line: nil, column: nil)
            }
            let lines = yaml.prefix(offset).split(separator: "\n", omittingEmptySubsequences: false)
            return .invalidYAML(problem: problem, line: lines.count, column: (lines.last?.count ?? 0) + 1)
        default:
            return .invalidYAML(problem: "\(error)", line: nil, column: nil)
        }
    }
}
