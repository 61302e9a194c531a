import Glibc

/// A started child: its pid (also its process group id) and the non-blocking read end of its output pipe.
struct SpawnedChild: Sendable {
    let pid: pid_t
    let outputFD: Int32
}

/// Why a child could not be started, as one line.
struct SpawnFailure: Error, CustomStringConvertible {
    let reason: String
    var description: String { reason }
}

/// Starts children with `posix_spawn`: own process group, default signal dispositions and an empty signal
/// mask, stdin from /dev/null, stdout and stderr into one pipe, and no other inherited file descriptors
/// (so a hook that restarts a daemon cannot pass our listening sockets on to it).
enum ChildSpawner {
    /// Used to look up a bare executable name when the given environment has no PATH.
    static let defaultSearchPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    static func spawn(
        executable: String,
        arguments: [String],
        environment: [String: String],
        workingDirectory: String?
    ) -> Result<SpawnedChild, SpawnFailure> {
        // Relative paths are resolved here, against the child's working directory, so the checks below and
        // the exec after posix_spawn's chdir see the same file.
        let ourDirectory = currentDirectory()
        let childDirectory = workingDirectory.map { absolute($0, base: ourDirectory) }
        if let childDirectory, let problem = checkDirectory(childDirectory) {
            return .failure(problem)
        }
        let path: String
        switch resolve(executable, searchPath: environment["PATH"], relativeTo: childDirectory ?? ourDirectory) {
        case .success(let resolved): path = resolved
        case .failure(let failure): return .failure(failure)
        }
        if let problem = validate(arguments: arguments, environment: environment) {
            return .failure(problem)
        }

        var fds: [Int32] = [-1, -1]
        guard GlibcExtras.pipeCloseOnExec(&fds) == 0 else {
            return .failure(SpawnFailure(reason: "cannot create output pipe: \(errnoText())"))
        }
        let (readFD, writeFD) = (fds[0], fds[1])

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // dup2 first, then /dev/null on 0: correct even if the pipe landed on fd 0, 1 or 2.
        posix_spawn_file_actions_adddup2(&actions, writeFD, 1)
        posix_spawn_file_actions_adddup2(&actions, writeFD, 2)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        GlibcExtras.addCloseFrom(&actions, 3)
        if let directory = childDirectory {
            guard GlibcExtras.addChdir(&actions, directory) else {
                close(readFD)
                close(writeFD)
                return .failure(SpawnFailure(reason: "cannot set working directory \(directory): this C library has no posix_spawn_file_actions_addchdir_np"))
            }
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setpgroup(&attributes, 0)
        var defaults = sigset_t()
        sigfillset(&defaults)
        sigdelset(&defaults, SIGKILL)
        sigdelset(&defaults, SIGSTOP)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = [executable] + arguments
        let envp = environment.keys.sorted().map { "\($0)=\(environment[$0]!)" }
        var pid: pid_t = 0
        let rc = withCStringArray(argv) { argvPointer in
            withCStringArray(envp) { envPointer in
                posix_spawn(&pid, path, &actions, &attributes, argvPointer, envPointer)
            }
        }
        close(writeFD)
        guard rc == 0 else {
            close(readFD)
            return .failure(spawnFailure(errno: rc, path: path))
        }
        let flags = fcntl(readFD, F_GETFL)
        _ = fcntl(readFD, F_SETFL, flags | O_NONBLOCK)
        return .success(SpawnedChild(pid: pid, outputFD: readFD))
    }

    /// Finds the file to run as an absolute path: a name with a slash is taken relative to `base` (the
    /// child's working directory) unless absolute; a bare name is looked up in `searchPath`.
    static func resolve(_ executable: String, searchPath: String?, relativeTo base: String) -> Result<String, SpawnFailure> {
        guard !executable.isEmpty else { return .failure(SpawnFailure(reason: "empty executable name")) }
        guard !executable.utf8.contains(0) else { return .failure(SpawnFailure(reason: "executable name contains a NUL byte")) }
        if executable.contains("/") {
            if let problem = checkExecutable(absolute(executable, base: base)) { return .failure(problem) }
            return .success(absolute(executable, base: base))
        }
        let directories = (searchPath ?? defaultSearchPath).split(separator: ":", omittingEmptySubsequences: false)
        for directory in directories {
            let candidate = absolute((directory.isEmpty ? "." : String(directory)) + "/" + executable, base: base)
            if checkExecutable(candidate) == nil { return .success(candidate) }
        }
        return .failure(SpawnFailure(reason: "not found in PATH: \(executable)"))
    }

    private static func absolute(_ path: String, base: String) -> String {
        if path.hasPrefix("/") { return path }
        return base.hasSuffix("/") ? base + path : base + "/" + path
    }

    private static func currentDirectory() -> String {
        guard let pointer = getcwd(nil, 0) else { return "." }
        defer { free(pointer) }
        return String(cString: pointer)
    }

    /// `nil` if `path` is a regular file with an execute bit; otherwise why not.
    static func checkExecutable(_ path: String) -> SpawnFailure? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { return SpawnFailure(reason: "no such file: \(path)") }
            return SpawnFailure(reason: "cannot stat \(path): \(errnoText(code))")
        }
        let type = info.st_mode & mode_t(S_IFMT)
        if type == mode_t(S_IFDIR) { return SpawnFailure(reason: "is a directory: \(path)") }
        if type != mode_t(S_IFREG) { return SpawnFailure(reason: "not a regular file: \(path)") }
        // Checked on the mode bits because access(X_OK) is always true for root.
        if info.st_mode & 0o111 == 0 { return SpawnFailure(reason: "not executable: \(path)") }
        return nil
    }

    private static func checkDirectory(_ path: String) -> SpawnFailure? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            return SpawnFailure(reason: "no such working directory: \(path)")
        }
        if info.st_mode & mode_t(S_IFMT) != mode_t(S_IFDIR) {
            return SpawnFailure(reason: "working directory is not a directory: \(path)")
        }
        return nil
    }

    private static func validate(arguments: [String], environment: [String: String]) -> SpawnFailure? {
        if let bad = arguments.firstIndex(where: { $0.utf8.contains(0) }) {
            return SpawnFailure(reason: "argument \(bad + 1) contains a NUL byte")
        }
        for (key, value) in environment {
            if key.isEmpty || key.contains("=") || key.utf8.contains(0) {
                return SpawnFailure(reason: "invalid environment variable name \"\(key)\"")
            }
            if value.utf8.contains(0) {
                return SpawnFailure(reason: "environment variable \(key) contains a NUL byte")
            }
        }
        return nil
    }

    private static func spawnFailure(errno code: Int32, path: String) -> SpawnFailure {
        switch code {
        case ENOENT: return SpawnFailure(reason: "no such file: \(path) (or its #! interpreter)")
        case EACCES: return SpawnFailure(reason: "not executable: \(path) (permission denied)")
        case ENOEXEC: return SpawnFailure(reason: "not an executable format: \(path) (missing #! line?)")
        default: return SpawnFailure(reason: "cannot start \(path): \(errnoText(code))")
        }
    }

    /// Calls `body` with a NULL-terminated `char *[]` copy of `strings`.
    private static func withCStringArray<R>(
        _ strings: [String],
        _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R
    ) -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        pointers.append(nil)
        defer { for pointer in pointers { free(pointer) } }
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

/// The text for an errno value ("No such file or directory").
func errnoText(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
}

/// glibc functions that Swift's Glibc module does not import (they sit behind _GNU_SOURCE), looked up once.
enum GlibcExtras {
    private typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> Int32
    private typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, UnsafePointer<CChar>?) -> Int32
    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32

    private static let pipe2: Pipe2? = dlsym(nil, "pipe2").map { unsafeBitCast($0, to: Pipe2.self) }
    private static let addchdir: AddChdir? = dlsym(nil, "posix_spawn_file_actions_addchdir_np").map { unsafeBitCast($0, to: AddChdir.self) }
    private static let addclosefrom: AddCloseFrom? = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np").map { unsafeBitCast($0, to: AddCloseFrom.self) }

    /// pipe2(O_CLOEXEC), so a child started by another thread at the same moment cannot inherit our pipe;
    /// falls back to pipe + FD_CLOEXEC.
    static func pipeCloseOnExec(_ fds: inout [Int32]) -> Int32 {
        if let pipe2 { return fds.withUnsafeMutableBufferPointer { pipe2($0.baseAddress, O_CLOEXEC) } }
        let rc = pipe(&fds)
        if rc == 0 {
            _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        }
        return rc
    }

    /// Adds a chdir to the spawn actions (glibc ≥ 2.29); `false` if unavailable.
    static func addChdir(_ actions: inout posix_spawn_file_actions_t, _ directory: String) -> Bool {
        guard let addchdir else { return false }
        return addchdir(&actions, directory) == 0
    }

    /// Closes every descriptor from `lowest` up in the child (glibc ≥ 2.34); without it, only close-on-exec
    /// descriptors are closed.
    static func addCloseFrom(_ actions: inout posix_spawn_file_actions_t, _ lowest: Int32) {
        _ = addclosefrom?(&actions, lowest)
    }
}
