import Glibc

/// Lists a run-parts style hook directory: regular executable files (symlinks to them count) in byte order
/// of their names.
public enum HookDirectory {
    /// One file in the directory that will not be run, and why.
    public struct Skipped: Sendable, Equatable, CustomStringConvertible {
        /// The file's path.
        public var path: String
        /// Why it is skipped ("hidden file", "not executable", ...).
        public var reason: String
        /// "path: reason".
        public var description: String { "\(path): \(reason)" }
    }

    /// Why a directory could not be listed, as one line.
    public struct ListingError: Error, Sendable, Equatable, CustomStringConvertible {
        /// The directory.
        public var directory: String
        /// The system's reason.
        public var reason: String
        /// Whether the directory simply does not exist (a normal state for an optional hook directory).
        public var isMissing: Bool
        /// "cannot list hook directory <dir>: <reason>".
        public var description: String { "cannot list hook directory \(directory): \(reason)" }
    }

    /// The files to run and the ones skipped.
    /// - Parameter directory: the hook directory.
    /// - Throws: ``ListingError`` when the directory cannot be opened.
    public static func list(_ directory: String) throws(ListingError) -> (executables: [String], skipped: [Skipped]) {
        guard let handle = opendir(directory) else {
            let code = errno
            throw ListingError(directory: directory, reason: errnoText(code), isMissing: code == ENOENT)
        }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        names.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }

        let base = directory.hasSuffix("/") ? directory : directory + "/"
        var executables: [String] = []
        var skipped: [Skipped] = []
        for name in names {
            let path = base + name
            if let reason = skipReason(forName: name) ?? skipReason(forFile: path) {
                skipped.append(Skipped(path: path, reason: reason))
            } else {
                executables.append(path)
            }
        }
        return (executables, skipped)
    }

    /// Why a file with this name is never run (editor backups, package manager leftovers), or nil.
    /// - Parameter name: a file name without directory.
    public static func skipReason(forName name: String) -> String? {
        if name.hasPrefix(".") { return "hidden file" }
        if name.hasSuffix("~") { return "backup file" }
        if name.hasSuffix(".swp") { return "editor swap file" }
        if let dot = name.lastIndex(of: ".") {
            let suffix = name[name.index(after: dot)...]
            if suffix.hasPrefix("dpkg-") { return "dpkg leftover" }
            if suffix.hasPrefix("rpm") { return "rpm leftover" }
        }
        return nil
    }

    private static func skipReason(forFile path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return "cannot stat: \(errnoText())" }
        if info.st_mode & mode_t(S_IFMT) != mode_t(S_IFREG) { return "not a regular file" }
        if info.st_mode & 0o111 == 0 { return "not executable" }
        return nil
    }
}
