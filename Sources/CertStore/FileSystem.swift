import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Thin, typed-throwing wrappers over the POSIX calls the store needs.
///
/// Every failure becomes a ``StoreError`` naming the operation and path. `faults` lets tests make a chosen
/// operation fail with a chosen `errno` (ENOSPC, EIO…) without a full or broken filesystem.
struct FileSystem: Sendable {
    /// Returns an errno to fail `operation` on `path` with, or `nil` to let it run.
    typealias FaultInjector = @Sendable (_ operation: FileOperation, _ path: String) -> Int32?

    /// Operations that can be made to fail in tests.
    enum FileOperation: String, Sendable {
        case createFile, write, fsync, rename, mkdir, symlink, fsyncDirectory
    }

    var faults: FaultInjector?

    init(faults: FaultInjector? = nil) {
        self.faults = faults
    }

    private func injected(_ operation: FileOperation, _ path: String, _ description: String) throws(StoreError) {
        if let code = faults?(operation, path) {
            throw StoreError.io(description, path, errno: code, detail: "injected fault")
        }
    }

    enum Kind: Sendable, Equatable { case file, directory, symlink, other }

    /// The kind of what is at `path` without following a final symlink; `nil` when nothing is there.
    func kind(_ path: String) throws(StoreError) -> Kind? {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if errno == ENOENT { return nil }
            throw .io("lstat", path)
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return .file
        case S_IFDIR: return .directory
        case S_IFLNK: return .symlink
        default: return .other
        }
    }

    /// Permission bits of what `path` points to.
    func mode(_ path: String) throws(StoreError) -> mode_t {
        var info = stat()
        guard stat(path, &info) == 0 else { throw .io("stat", path) }
        return info.st_mode & 0o7777
    }

    /// Creates directory `path` with exactly `mode` (and fsyncs its parent) unless a directory is already there.
    /// - Throws: when something else is at `path` (ENOTDIR) or mkdir fails.
    func makeDirectory(_ path: String, mode: mode_t) throws(StoreError) {
        switch try kind(path) {
        case .directory:
            return
        case .some(let other):
            throw .io("create directory", path, errno: ENOTDIR, detail: "a \(other) is in the way")
        case nil:
            try injected(.mkdir, path, "create directory")
            guard mkdir(path, mode) == 0 else {
                if errno == EEXIST, try kind(path) == .directory { return }
                throw .io("create directory", path)
            }
            // mkdir honours the umask; the store wants the exact mode.
            guard chmod(path, mode) == 0 else { throw .io("chmod", path) }
            // Make the new entry durable, so a symlink later made durable never points into a lost directory.
            try syncDirectory(Self.directory(of: path))
        }
    }

    /// Creates a new file (failing if one exists), writes `bytes`, sets `mode`, fsyncs and closes it.
    func writeNewFile(_ path: String, bytes: [UInt8], mode: mode_t) throws(StoreError) {
        try injected(.createFile, path, "create file")
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .io("create file", path) }
        var closed = false
        defer { if !closed { _ = close(fd) } }
        guard fchmod(fd, mode) == 0 else { throw .io("chmod", path) }
        try injected(.write, path, "write")
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                throw .io("write", path)
            }
            offset += written
        }
        try injected(.fsync, path, "fsync")
        guard fsync(fd) == 0 else { throw .io("fsync", path) }
        closed = true
        guard close(fd) == 0 else { throw .io("close", path) }
    }

    /// Flushes a directory's entries (a rename or create in it) to disk.
    func syncDirectory(_ path: String) throws(StoreError) {
        try injected(.fsyncDirectory, path, "fsync directory")
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .io("open directory", path) }
        defer { _ = close(fd) }
        guard fsync(fd) == 0 else { throw .io("fsync directory", path) }
    }

    /// rename(2): atomically replaces `destination` (a file or symlink) with `source`.
    func rename(_ source: String, to destination: String) throws(StoreError) {
        try injected(.rename, destination, "rename")
        guard Glibc.rename(source, destination) == 0 else {
            throw .io("rename", destination, detail: "from \(source)")
        }
    }

    /// Creates a symlink at `path` whose content is `target`.
    func makeSymlink(_ path: String, target: String) throws(StoreError) {
        try injected(.symlink, path, "create symlink")
        guard symlink(target, path) == 0 else { throw .io("create symlink", path, detail: "to \(target)") }
    }

    /// The content of symlink `path`; `nil` when nothing is there.
    func readSymlink(_ path: String) throws(StoreError) -> String? {
        var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = buffer.withUnsafeMutableBufferPointer { raw in
            raw.baseAddress!.withMemoryRebound(to: CChar.self, capacity: raw.count) { readlink(path, $0, raw.count - 1) }
        }
        guard count >= 0 else {
            if errno == ENOENT { return nil }
            throw .io("readlink", path)
        }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }

    /// The whole file; `nil` when it does not exist.
    ///
    /// Only regular files are read, and only up to `limit` bytes: a larger file is refused from its `fstat` size
    /// before anything is read (and, should it grow while being read, as soon as the limit is passed), so a huge
    /// file renamed over a watched one costs no memory. A FIFO or device is refused without blocking.
    /// - Parameter limit: The largest size accepted (``SmallFile/maximumSize`` by default).
    /// - Throws: ``StoreError``: `io` when it cannot be opened or read, `corrupt` when it is too large or not a
    ///   regular file.
    func readFile(_ path: String, limit: Int = SmallFile.maximumSize) throws(StoreError) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw .io("open", path)
        }
        defer { _ = close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .io("fstat", path) }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw StoreError(code: .corrupt, operation: "read", path: path, detail: "not a regular file")
        }
        guard info.st_size <= limit else {
            throw StoreError(code: .corrupt, operation: "read", path: path, detail: "\(info.st_size) bytes, larger than the \(limit) bytes allowed")
        }
        var result: [UInt8] = []
        result.reserveCapacity(Int(info.st_size))
        var chunk = [UInt8](repeating: 0, count: min(64 * 1024, limit + 1))
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .io("read", path)
            }
            if count == 0 { return result }
            result.append(contentsOf: chunk[0..<count])
            if result.count > limit {
                throw StoreError(code: .corrupt, operation: "read", path: path, detail: "larger than the \(limit) bytes allowed")
            }
        }
    }

    /// Entry names in a directory (without `.` and `..`); `nil` when the directory does not exist.
    func list(_ path: String) throws(StoreError) -> [String]? {
        guard let dir = opendir(path) else {
            if errno == ENOENT { return nil }
            throw .io("open directory", path)
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Removes `path` and, for a directory, everything below it; never follows symlinks. Missing is fine.
    func removeTree(_ path: String) throws(StoreError) {
        guard let kind = try kind(path) else { return }
        if kind == .directory {
            for entry in try list(path) ?? [] {
                try removeTree(path + "/" + entry)
            }
            guard rmdir(path) == 0 || errno == ENOENT else { throw .io("remove directory", path) }
        } else {
            guard unlink(path) == 0 || errno == ENOENT else { throw .io("remove", path) }
        }
    }

    /// Whether the current user may write in directory `path` (catches read-only filesystems, even for root).
    func checkWritable(_ path: String) throws(StoreError) {
        guard access(path, W_OK) == 0 else { throw .io("check writable", path) }
    }

    /// The length of ``randomSuffix()``: 12 lowercase hex digits.
    static let randomSuffixLength = 12

    /// A short random suffix for temporary names.
    static func randomSuffix() -> String {
        var generator = SystemRandomNumberGenerator()
        return Hex.encode((0..<randomSuffixLength / 2).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    /// The directory part of `path` (`.` when there is none).
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// The last component of `path`.
    static func lastComponent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }
}

/// Reading the small files certkeeper keeps or watches (bundles, keys, CA and CRL files, state, identities),
/// never more than a bounded size.
public enum SmallFile {
    /// The largest file read: 1 MiB, the peer API's body limit. A certificate bundle is a few KiB.
    public static let maximumSize = 1 << 20

    /// The bytes of a regular file of at most `limit` bytes, or `nil` when it does not exist. A larger file is
    /// refused from its size, before it is read.
    /// - Throws: ``StoreError``: `io` when it cannot be opened or read, `corrupt` when it is larger than `limit` or
    ///   not a regular file (the error names the path).
    public static func read(_ path: String, limit: Int = maximumSize) throws(StoreError) -> [UInt8]? {
        try FileSystem().readFile(path, limit: limit)
    }
}

/// Atomic whole-file replacement: readers see the old file or the new one, never a mix or a gap.
public enum AtomicFile {
    /// The text of a small file (a key, a certificate, an identity), or `nil` when it does not exist.
    /// - Parameters:
    ///   - path: The file.
    ///   - limit: The largest size accepted, in bytes (1 MiB by default): a larger file is not one of ours.
    /// - Throws: ``StoreError``: `io` when the file cannot be opened or read, `corrupt` when it exceeds `limit`.
    public static func readText(_ path: String, limit: Int = SmallFile.maximumSize) throws(StoreError) -> String? {
        try SmallFile.read(path, limit: limit).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Writes `data` to `path` atomically: a temporary file in the same directory is written, fsynced and
    /// renamed over `path`, then the directory is fsynced. On failure the temporary file is removed and
    /// `path` is unchanged.
    /// - Parameters:
    ///   - data: The new content.
    ///   - path: The file to replace or create; its directory must exist.
    ///   - mode: Permission bits of the new file (exact, not filtered by the umask), e.g. `0o600` for keys.
    /// - Throws: ``StoreError`` naming the failed step and path.
    public static func write(_ data: [UInt8], to path: String, mode: mode_t) throws(StoreError) {
        try write(data, to: path, mode: mode, fileSystem: FileSystem())
    }

    /// Writes `data` to `path` atomically, exactly as the `[UInt8]` overload does.
    public static func write(_ data: Data, to path: String, mode: mode_t) throws(StoreError) {
        try write(Array(data), to: path, mode: mode)
    }

    static func write(_ data: [UInt8], to path: String, mode: mode_t, fileSystem fs: FileSystem) throws(StoreError) {
        let directory = FileSystem.directory(of: path)
        let file = FileSystem.lastComponent(of: path)
        removeStaleTemporaries(in: directory, of: file)
        let temporary = directory + "/" + temporaryPrefix(of: file) + FileSystem.randomSuffix()
        do {
            try fs.writeNewFile(temporary, bytes: data, mode: mode)
            try fs.rename(temporary, to: path)
        } catch {
            _ = unlink(temporary)
            throw error
        }
        try fs.syncDirectory(directory)
    }

    // MARK: Leftovers of a writer that died

    /// How old a temporary must be before it counts as a dead writer's leftover: a live write takes milliseconds,
    /// and another process may be writing the same file right now.
    public static let staleTemporaryAge: TimeInterval = 600

    /// `.<file>.tmp-`: what the temporary names of ``write(_:to:mode:)`` for `file` start with.
    static func temporaryPrefix(of file: String) -> String { "." + file + ".tmp-" }

    /// Whether `entry` is a temporary name this writer makes (`.<file>.tmp-<12 hex digits>`), for `file` when given.
    static func isTemporaryName(_ entry: String, of file: String?) -> Bool {
        guard entry.hasPrefix("."), let range = entry.range(of: ".tmp-", options: .backwards) else { return false }
        let suffix = entry[range.upperBound...]
        guard suffix.count == FileSystem.randomSuffixLength, suffix.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
            return false
        }
        let target = entry[entry.index(after: entry.startIndex)..<range.lowerBound]
        return !target.isEmpty && (file == nil || target == file![...])
    }

    /// Removes this writer's temporaries in `directory` (only `.<file>.tmp-<hex>` names, regular files, older than
    /// ``staleTemporaryAge``): what a process killed between writing and renaming leaves behind. Runs before every
    /// write of a file (for that file's temporaries) and at start-up (for all of them). Never fails: what cannot be
    /// listed or removed stays.
    /// - Parameters:
    ///   - directory: The directory to clean.
    ///   - file: Only temporaries of this file name; all of this writer's when `nil`.
    ///   - now: The time ages are measured against.
    /// - Returns: The names removed.
    @discardableResult
    public static func removeStaleTemporaries(in directory: String, of file: String? = nil, now: Date = Date()) -> [String] {
        let fs = FileSystem()
        guard let entries = try? fs.list(directory) else { return [] }
        var removed: [String] = []
        for entry in entries where isTemporaryName(entry, of: file) {
            let path = directory + "/" + entry
            var info = stat()
            guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { continue }
            let modified = Date(timeIntervalSince1970: TimeInterval(info.st_mtim.tv_sec) + TimeInterval(info.st_mtim.tv_nsec) / 1e9)
            guard now.timeIntervalSince(modified) > staleTemporaryAge, unlink(path) == 0 else { continue }
            removed.append(entry)
        }
        return removed
    }
}

