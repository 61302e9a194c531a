import Glibc

/// Looks at a process group through /proc. Zombies count as gone: in containers whose PID 1 does not reap
/// orphans, killed grandchildren stay zombies forever, and `kill(-pgid, 0)` keeps answering "exists".
enum ProcessGroupProbe {
    /// The pids of processes in group `pgid` that are not zombies (empty if none, or /proc is unreadable).
    static func liveMembers(ofGroup pgid: pid_t) -> [pid_t] {
        // Fast path: an empty group (all members reaped) is ESRCH without reading /proc.
        if kill(-pgid, 0) != 0 && errno == ESRCH { return [] }
        guard let directory = opendir("/proc") else { return [] }
        defer { closedir(directory) }
        var members: [pid_t] = []
        while let entry = readdir(directory) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            guard let pid = pid_t(name), let status = status(of: pid) else { continue }
            if status.group == pgid && status.isAlive { members.append(pid) }
        }
        return members
    }

    /// `true` if `pid` exists and is not a zombie.
    static func isAlive(_ pid: pid_t) -> Bool {
        status(of: pid)?.isAlive ?? false
    }

    struct Status {
        var state: Character
        var group: pid_t
        var isAlive: Bool { state != "Z" && state != "X" && state != "x" }
    }

    /// Parses /proc/<pid>/stat: "pid (comm) state ppid pgrp ..."; comm may itself hold spaces and ")".
    static func status(of pid: pid_t) -> Status? {
        guard let text = readSmallFile("/proc/\(pid)/stat"),
              let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 3, let state = fields[0].first, let group = pid_t(fields[2]) else { return nil }
        return Status(state: state, group: group)
    }

    private static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }
}
