import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Keeps certkeeper's descriptors from leaking into programs it (or the Swift runtime) starts.
///
/// SwiftNIO creates and accepts sockets without `SOCK_CLOEXEC` and has no option for it, so a child started
/// while they are open inherits them: a crashing daemon's backtrace helper once kept the proxy's ports bound for
/// 27 minutes after the daemon was gone. Deploy and DNS hooks are spawned with every inherited descriptor closed
/// already; this covers everything else. Every listener calls ``markAllCloseOnExec()`` once its socket exists and
/// again for each connection it accepts or opens, so every descriptor of the process carries `FD_CLOEXEC` from the
/// moment it is in use.
public enum DescriptorHygiene {
    /// `CLOSE_RANGE_CLOEXEC` from `<linux/close_range.h>` (Linux 5.11).
    private static let closeRangeCloseOnExec: UInt32 = 1 << 2

    private typealias CloseRange = @convention(c) (UInt32, UInt32, Int32) -> Int32
    /// glibc 2.34's wrapper, looked up at run time (not every Glibc module map exposes it).
    private static let closeRange: CloseRange? = dlsym(nil, "close_range").map { unsafeBitCast($0, to: CloseRange.self) }

    /// Whether `close_range` answered; after its first refusal (a kernel before 5.11, a seccomp filter) it is not
    /// asked again.
    private static let closeRangeWorks = Atomic<Bool>(true)
    /// When the `/proc` fallback last ran (`CLOCK_MONOTONIC` nanoseconds): at most every 100 ms, since it costs one
    /// `fcntl` per open descriptor and would run for every connection.
    private static let lastScan = Atomic<Int64>(0)

    /// Sets `FD_CLOEXEC` on every descriptor above standard error: one `close_range(2)` call (a bitmap update in
    /// the kernel, cheap enough for every connection); on kernels without `CLOSE_RANGE_CLOEXEC`, one `fcntl` per
    /// descriptor listed in `/proc/self/fd`, at most every 100 ms.
    public static func markAllCloseOnExec() {
        if closeRangeWorks.load(ordering: .relaxed) {
            if let closeRange, closeRange(3, UInt32.max, Int32(bitPattern: closeRangeCloseOnExec)) == 0 { return }
            closeRangeWorks.store(false, ordering: .relaxed)
        }
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let nanoseconds = Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
        let last = lastScan.load(ordering: .relaxed)
        guard nanoseconds - last >= 100_000_000,
              lastScan.compareExchange(expected: last, desired: nanoseconds, ordering: .relaxed).exchanged else { return }
        guard let directory = opendir("/proc/self/fd") else { return }
        defer { closedir(directory) }
        let own = dirfd(directory)
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            guard let fd = Int32(name), fd > 2, fd != own else { continue }
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0, flags & FD_CLOEXEC == 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
    }
}
