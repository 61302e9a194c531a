import Glibc
import Synchronization

/// Set by the calling task's cancellation handler, read by the supervising thread.
final class CancellationFlag: Sendable {
    private let state = Atomic<Bool>(false)
    func cancel() { state.store(true, ordering: .releasing) }
    var isCancelled: Bool { state.load(ordering: .acquiring) }
}

/// Watches one spawned child on a dedicated thread (never on the cooperative pool): reads its output,
/// reaps it, and on timeout or cancellation ends its whole process group (SIGTERM, then SIGKILL).
///
/// A child that exits on its own may leave background processes in its group (`nohup daemon &`); they are
/// not killed. Output they still write is read for ``drainAfterExit`` seconds; after that our end of the
/// pipe is closed, so such processes should redirect their output.
struct ChildSupervisor {
    /// How long to keep reading after the child exited while something else still holds the pipe open.
    static let drainAfterExit: Duration = .milliseconds(500)
    /// How long to wait for the child after SIGKILL before giving up on reaping it.
    static let reapAfterKill: Duration = .seconds(5)
    /// Longest sleep between checks; sleeps start at 1 ms and double while nothing happens.
    static let maxWait: Duration = .milliseconds(50)
    /// Most bytes read per loop turn, so a child that floods its output cannot starve the timeout checks.
    static let maxReadPerTurn = 256 * 1024

    let child: SpawnedChild
    let timeout: Double
    let killGrace: Double
    let cancellation: CancellationFlag

    private enum Phase {
        case running
        case draining(until: ContinuousClock.Instant)
        case terminating(killAt: ContinuousClock.Instant)
        case killed(at: ContinuousClock.Instant)
    }

    func run() -> ProcessResult {
        let clock = ContinuousClock()
        let start = clock.now
        let deadline: ContinuousClock.Instant? = timeout.isFinite ? start + .seconds(max(0, timeout)) : nil
        let grace: Duration = killGrace.isFinite ? .seconds(max(0, killGrace)) : .seconds(2)

        var collector = OutputCollector(limit: ProcessResult.outputLimit)
        var pipeFD: Int32? = child.outputFD
        var status: Int32?
        var timedOut = false
        var phase = Phase.running
        var wait: Duration = .milliseconds(1)

        defer { if let fd = pipeFD { close(fd) } }

        loop: while true {
            // 1. Wait for output (or just sleep when the pipe is gone), then read what is there.
            let waitMilliseconds = Int32(clamping: wait.components.seconds * 1000 + wait.components.attoseconds / 1_000_000_000_000_000)
            if let fd = pipeFD {
                var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let ready = poll(&descriptor, 1, max(1, waitMilliseconds))
                if ready > 0 {
                    switch readAvailable(fd, into: &collector) {
                    case .someData: wait = .milliseconds(1)
                    case .endOfFile:
                        close(fd)
                        pipeFD = nil
                    case .nothing: break
                    }
                }
            } else {
                _ = poll(nil, 0, max(1, waitMilliseconds))
            }
            wait = min(wait * 2, Self.maxWait)

            // 2. Reap the child if it has ended.
            if status == nil { status = reap() }

            // 3. Decide what happens next.
            let now = clock.now
            switch phase {
            case .running:
                if status != nil {
                    if pipeFD == nil || cancellation.isCancelled { break loop }
                    phase = .draining(until: now + Self.drainAfterExit)
                } else if cancellation.isCancelled || (deadline.map { now >= $0 } ?? false) {
                    timedOut = !cancellation.isCancelled
                    signalGroup(SIGTERM)
                    phase = .terminating(killAt: now + grace)
                }
            case .draining(let until):
                if pipeFD == nil || now >= until || cancellation.isCancelled { break loop }
            case .terminating(let killAt):
                if status != nil && pipeFD == nil && ProcessGroupProbe.liveMembers(ofGroup: child.pid).isEmpty {
                    break loop
                }
                if now >= killAt {
                    signalGroup(SIGKILL)
                    phase = .killed(at: now)
                }
            case .killed(let at):
                // SIGKILL cannot be ignored; read what is left briefly, but do not wait on stuck (D state) processes.
                if status != nil && (pipeFD == nil || now >= at + Self.drainAfterExit) { break loop }
                if now >= at + Self.reapAfterKill { break loop }
            }

            // Never sleep past the next moment something is due.
            let nextDue: ContinuousClock.Instant? = switch phase {
            case .running: deadline
            case .draining(let until): until
            case .terminating(let killAt): killAt
            case .killed(let at): at + Self.drainAfterExit
            }
            if let nextDue, nextDue - now < wait {
                wait = max(.milliseconds(1), nextDue - now)
            }
        }

        let outcome: ProcessOutcome
        if timedOut {
            outcome = .timedOut(after: timeout)
        } else if let status {
            outcome = Self.decode(status)
        } else {
            // Only after a SIGKILL that did not let us reap the child in time.
            outcome = .signalled(signal: SIGKILL)
        }
        let elapsed = clock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return ProcessResult(
            outcome: outcome,
            output: collector.text(),
            omittedOutputBytes: collector.omittedBytes,
            duration: seconds,
            pid: child.pid
        )
    }

    private enum ReadResult { case someData, endOfFile, nothing }

    private func readAvailable(_ fd: Int32, into collector: inout OutputCollector) -> ReadResult {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        var total = 0
        while total < Self.maxReadPerTurn {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                collector.append(buffer[0..<count])
                total += count
                continue
            }
            if count == 0 { return .endOfFile }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { break }
            return .endOfFile  // EIO or similar: nothing more will come
        }
        return total > 0 ? .someData : .nothing
    }

    /// The raw wait status if the child has ended, else nil.
    private func reap() -> Int32? {
        var status: Int32 = 0
        while true {
            let rc = waitpid(child.pid, &status, WNOHANG)
            if rc == child.pid { return status }
            if rc == 0 { return nil }
            if errno == EINTR { continue }
            // ECHILD: someone else reaped it (SIGCHLD ignored process-wide); its status is unknowable.
            return 0xFF00  // reads as "exited with status 255"
        }
    }

    private func signalGroup(_ signal: Int32) {
        _ = kill(-child.pid, signal)
    }

    /// Decodes a wait status (the WIFEXITED / WTERMSIG macros are not imported into Swift).
    static func decode(_ status: Int32) -> ProcessOutcome {
        let low = status & 0x7f
        if low == 0 { return .exited(code: (status >> 8) & 0xff) }
        return .signalled(signal: low)
    }
}
