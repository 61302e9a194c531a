#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What `check-config` checks beyond the file itself: that the programs the configuration names are there and
/// executable, so a typo in a dns-01 hook is exit 2 at `check-config`, not a failed renewal at 3 a.m.
///
/// Reads the filesystem; ``ConfigLoader/parse(yaml:source:)`` stays pure.
public enum ConfigEnvironment {
    /// One line per problem, each starting with the key path (`certificates[2].challenge.hook: …`).
    /// - Parameter configuration: A parsed configuration.
    public static func problems(in configuration: CertkeeperConfiguration) -> [String] {
        var problems: [String] = []
        for (index, spec) in configuration.certificates.enumerated() {
            guard case .dns01(let settings) = spec.challenge else { continue }
            if let problem = executableProblem(settings.hook) {
                problems.append("certificates[\(index)].challenge.hook: \(settings.hook) \(problem)")
            }
        }
        return problems
    }

    /// Why `path` cannot be run as a program, or `nil` when it can.
    static func executableProblem(_ path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return "does not exist" }
        guard info.st_mode & S_IFMT == S_IFREG else { return "is not a regular file" }
        guard access(path, X_OK) == 0 else { return "is not executable (chmod +x)" }
        return nil
    }
}
