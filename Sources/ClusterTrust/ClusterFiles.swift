import CertStore
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The small set of file operations the cluster trust layer needs, with errors naming the path.
enum ClusterFiles {
    /// The file's text, or `nil` when it does not exist (an identity or CA file is a few KiB: over 1 MiB is refused).
    static func read(_ path: String) throws(ClusterTrustError) -> String? {
        do {
            return try AtomicFile.readText(path)
        } catch {
            throw ClusterTrustError(code: error.code == .corrupt ? .malformed : .io, subject: path, detail: "cannot \(error.operation): \(error.reason)")
        }
    }

    /// The permission bits of `path`, or `nil` when it does not exist.
    static func mode(_ path: String) throws(ClusterTrustError) -> mode_t? {
        var info = stat()
        if stat(path, &info) != 0 {
            if errno == ENOENT { return nil }
            throw ioError(path, "cannot stat")
        }
        return info.st_mode & 0o7777
    }

    static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    /// The directory part of `path`: `.` for a bare file name, `/` for a file in the root.
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// Creates `path` and missing parents with `mode`; an existing directory is fine.
    static func makeDirectory(_ path: String, mode: mode_t) throws(ClusterTrustError) {
        if path == "." || path == "/" { return }
        var partial = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            partial += "/" + component
            if mkdir(partial, mode) != 0 && errno != EEXIST {
                throw ioError(partial, "cannot create directory")
            }
        }
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw ClusterTrustError(code: .io, subject: path, detail: "exists but is not a directory")
        }
    }

    /// Writes a new file that must not exist yet: temporary file, fsync, `link(2)` into place (which fails
    /// instead of replacing), directory fsync. A concurrent writer loses with ``ClusterTrustError/Code/caExists``
    /// or the given `existsCode`.
    static func createNew(_ path: String, contents: String, mode: mode_t, existsCode: ClusterTrustError.Code) throws(ClusterTrustError) {
        let directory = directory(of: path)
        let temporary = "\(directory)/.\((path as NSString).lastPathComponent).tmp-\(UInt64.random(in: 0...UInt64.max))"
        try writeSynced(temporary, bytes: Array(contents.utf8), mode: mode)
        defer { unlink(temporary) }
        if link(temporary, path) != 0 {
            if errno == EEXIST {
                throw ClusterTrustError(code: existsCode, subject: path, detail: "already exists; refusing to overwrite it")
            }
            throw ioError(path, "cannot link into place")
        }
        try syncDirectory(directory)
    }

    /// Replaces `path` atomically (temporary file, fsync, rename, directory fsync) with exactly `mode`.
    static func replace(_ path: String, contents: String, mode: mode_t) throws(ClusterTrustError) {
        do {
            try AtomicFile.write(Array(contents.utf8), to: path, mode: mode)
        } catch {
            throw ClusterTrustError(code: .io, subject: path, detail: "cannot write: \(error)")
        }
    }

    private static func writeSynced(_ path: String, bytes: [UInt8], mode: mode_t) throws(ClusterTrustError) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard descriptor >= 0 else { throw ioError(path, "cannot create") }
        var failure: ClusterTrustError?
        if fchmod(descriptor, mode) != 0 { failure = ioError(path, "cannot chmod") }
        var offset = 0
        while failure == nil, offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                failure = ioError(path, "cannot write")
            } else {
                offset += written
            }
        }
        if failure == nil, fsync(descriptor) != 0 { failure = ioError(path, "cannot fsync") }
        close(descriptor)
        if let failure {
            unlink(path)
            throw failure
        }
    }

    private static func syncDirectory(_ path: String) throws(ClusterTrustError) {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw ioError(path, "cannot open directory") }
        defer { close(descriptor) }
        if fsync(descriptor) != 0 { throw ioError(path, "cannot fsync directory") }
    }

    static func ioError(_ path: String, _ what: String) -> ClusterTrustError {
        let code = errno
        return ClusterTrustError(code: .io, subject: path, detail: "\(what): \(String(cString: strerror(code))) (errno \(code))")
    }
}

/// PEM blocks of a file, with the text between them ignored (so files may carry explanatory comments).
enum PEMFile {
    struct Block {
        var label: String
        var der: [UInt8]
    }

    static func blocks(_ text: String, source: String) throws(ClusterTrustError) -> [Block] {
        var blocks: [Block] = []
        var open: (label: String, base64: String)?
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("-----BEGIN "), line.hasSuffix("-----") {
                if let open { throw malformed(source, "BEGIN inside an unterminated \(open.label) block") }
                open = (String(line.dropFirst(11).dropLast(5)), "")
            } else if line.hasPrefix("-----END "), line.hasSuffix("-----") {
                let label = String(line.dropFirst(9).dropLast(5))
                guard let current = open, current.label == label else { throw malformed(source, "END \(label) without its BEGIN") }
                guard let der = Data(base64Encoded: current.base64), !der.isEmpty else {
                    throw malformed(source, "\(label) block is not valid base64")
                }
                blocks.append(Block(label: label, der: Array(der)))
                open = nil
            } else if open != nil {
                open!.base64 += line
            }
        }
        if let open { throw malformed(source, "\(open.label) block has no END (truncated file?)") }
        return blocks
    }

    static func encode(_ der: [UInt8], label: String) -> String {
        let base64 = Data(der).base64EncodedString()
        var lines: [Substring] = []
        var rest = base64[...]
        while !rest.isEmpty {
            lines.append(rest.prefix(64))
            rest = rest.dropFirst(64)
        }
        return "-----BEGIN \(label)-----\n" + lines.joined(separator: "\n") + "\n-----END \(label)-----\n"
    }

    private static func malformed(_ source: String, _ detail: String) -> ClusterTrustError {
        ClusterTrustError(code: .malformed, subject: source, detail: detail)
    }
}
