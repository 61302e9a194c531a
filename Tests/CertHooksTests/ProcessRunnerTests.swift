import Foundation
import Glibc
import Testing
@testable import CertHooks

@Suite("ProcessRunner")
struct ProcessRunnerTests {
    @Test("exit status 0 succeeds, non-zero does not")
    func exitCodes() async {
        let ok = await ProcessRunner.run(executable: "/bin/true", arguments: [], environment: [:], timeout: 10)
        #expect(ok.outcome == .exited(code: 0))
        #expect(ok.outcome.succeeded)
        #expect(ok.pid != nil)

        let bad = await ProcessRunner.run(executable: "/bin/false", arguments: [], environment: [:], timeout: 10)
        #expect(bad.outcome == .exited(code: 1))
        #expect(!bad.outcome.succeeded)

        let code = await ProcessRunner.run(executable: "/bin/sh", arguments: ["-c", "exit 42"], environment: [:], timeout: 10)
        #expect(code.outcome == .exited(code: 42))
        #expect(code.outcome.description == "exited with status 42")
    }

    @Test("stdout and stderr are captured, merged in order")
    func outputCaptured() async {
        let result = await ProcessRunner.run(
            executable: "/bin/sh", arguments: ["-c", "echo one; echo two >&2; printf 'three'"],
            environment: [:], timeout: 10
        )
        #expect(result.outcome == .exited(code: 0))
        #expect(result.output == "one\ntwo\nthree")
        #expect(!result.outputTruncated)
        #expect(result.lastOutputLines(2) == ["two", "three"])
    }

    @Test("arguments are passed as given, without a shell")
    func argumentsVerbatim() async {
        let result = await ProcessRunner.run(
            executable: "/usr/bin/printf", arguments: ["%s|", "a b", "$HOME", "*", ""],
            environment: [:], timeout: 10
        )
        #expect(result.output == "a b|$HOME|*||")
    }

    @Test("a missing executable is failedToStart, naming the file")
    func missingExecutable() async {
        let result = await ProcessRunner.run(executable: "/nonexistent/hook.sh", arguments: [], environment: [:], timeout: 10)
        #expect(result.outcome == .failedToStart(reason: "no such file: /nonexistent/hook.sh"))
        #expect(result.pid == nil)
        #expect(!result.outcome.succeeded)
        #expect(result.outcome.description == "failed to start: no such file: /nonexistent/hook.sh")
    }

    @Test("a file without execute bits, a directory and a script without #! fail to start")
    func notExecutable() async throws {
        let directory = try TemporaryDirectory()
        let plain = try directory.write("plain.sh", "#!/bin/sh\necho hi\n", mode: 0o644)
        let noShebang = try directory.write("noshebang", "echo hi\n", mode: 0o755)

        let plainResult = await ProcessRunner.run(executable: plain, arguments: [], environment: [:], timeout: 10)
        #expect(plainResult.outcome == .failedToStart(reason: "not executable: \(plain)"))

        let dirResult = await ProcessRunner.run(executable: directory.path, arguments: [], environment: [:], timeout: 10)
        #expect(dirResult.outcome == .failedToStart(reason: "is a directory: \(directory.path)"))

        let noShebangResult = await ProcessRunner.run(executable: noShebang, arguments: [], environment: [:], timeout: 10)
        guard case .failedToStart(let reason) = noShebangResult.outcome else {
            Issue.record("expected failedToStart, got \(noShebangResult.outcome)")
            return
        }
        #expect(reason.contains("not an executable format"))
    }

    @Test("a bare name is looked up in the child's PATH")
    func pathLookup() async throws {
        let found = await ProcessRunner.run(executable: "printf", arguments: ["found"], environment: ["PATH": "/nonexistent:/usr/bin"], timeout: 10)
        #expect(found.outcome == .exited(code: 0))
        #expect(found.output == "found")

        let directory = try TemporaryDirectory()
        let missing = await ProcessRunner.run(executable: "printf", arguments: [], environment: ["PATH": directory.path], timeout: 10)
        #expect(missing.outcome == .failedToStart(reason: "not found in PATH: printf"))
    }

    @Test("invalid environment names are refused before starting")
    func invalidEnvironment() async {
        let result = await ProcessRunner.run(executable: "/bin/true", arguments: [], environment: ["A=B": "x"], timeout: 10)
        #expect(result.outcome == .failedToStart(reason: "invalid environment variable name \"A=B\""))
    }

    @Test("a process killed by a signal is signalled")
    func signalled() async {
        let result = await ProcessRunner.run(executable: "/bin/sh", arguments: ["-c", "echo before; kill -USR1 $$; echo after"], environment: [:], timeout: 10)
        #expect(result.outcome == .signalled(signal: SIGUSR1))
        #expect(result.outcome.description == "killed by signal \(SIGUSR1) (SIGUSR1)")
        #expect(result.output == "before\n")

        let killed = await ProcessRunner.run(executable: "/bin/sh", arguments: ["-c", "kill -9 $$"], environment: [:], timeout: 10)
        #expect(killed.outcome == .signalled(signal: SIGKILL))
    }

    @Test("the environment is exactly the one given")
    func exactEnvironment() async {
        let result = await ProcessRunner.run(
            executable: "/usr/bin/env", arguments: [],
            environment: ["ONLY_THIS": "value with spaces", "EMPTY": ""], timeout: 10
        )
        #expect(result.outcome == .exited(code: 0))
        #expect(result.output == "EMPTY=\nONLY_THIS=value with spaces\n")
    }

    @Test("stdin is /dev/null, so a child reading stdin sees end of file at once")
    func stdinIsDevNull() async {
        let result = await ProcessRunner.run(executable: "/bin/sh", arguments: ["-c", "cat; readlink /proc/self/fd/0; echo end"], environment: shortPath, timeout: 10)
        #expect(result.outcome == .exited(code: 0))
        #expect(result.output == "/dev/null\nend\n")
        #expect(result.duration < 5)
    }

    @Test("the working directory is set when asked, and relative executables are found in it")
    func workingDirectory() async throws {
        let directory = try TemporaryDirectory()
        let result = await ProcessRunner.run(executable: "/bin/pwd", arguments: ["-P"], environment: [:], timeout: 10, workingDirectory: directory.path)
        #expect(result.output == directory.path + "\n")

        try directory.script("local-hook", "echo local")
        let relative = await ProcessRunner.run(executable: "./local-hook", arguments: [], environment: [:], timeout: 10, workingDirectory: directory.path)
        #expect(relative.outcome == .exited(code: 0))
        #expect(relative.output == "local\n")

        let missing = await ProcessRunner.run(executable: "/bin/pwd", arguments: [], environment: [:], timeout: 10, workingDirectory: directory.path + "/nope")
        #expect(missing.outcome == .failedToStart(reason: "no such working directory: \(directory.path)/nope"))
    }

    @Test("the child runs in its own process group")
    func ownProcessGroup() async throws {
        let result = await ProcessRunner.run(executable: "/bin/sh", arguments: ["-c", "echo $$; ps -o pgid= -p $$"], environment: shortPath, timeout: 10)
        let fields = result.output.split(whereSeparator: \.isWhitespace).compactMap { Int32($0) }
        let pid = try #require(result.pid)
        #expect(fields == [pid, pid])
        #expect(pid != getpgrp())
    }

    @Test("no descriptor of ours leaks into the child, and signals start at their defaults")
    func cleanChildState() async throws {
        let directory = try TemporaryDirectory()
        let path = try directory.write("open-me", "x")
        let fd = open(path, O_RDONLY)  // deliberately without O_CLOEXEC
        #expect(fd > 2)
        defer { close(fd) }
        signal(SIGPIPE, SIG_IGN)  // many servers ignore SIGPIPE; the child must not inherit that

        // The fds of the shell itself; the signal state of a process it execs (dash blocks everything while it waits).
        let result = await ProcessRunner.run(
            executable: "/bin/sh", arguments: ["-c", "ls /proc/$$/fd; exec grep -E '^Sig(Ign|Blk)' /proc/self/status"],
            environment: shortPath, timeout: 10
        )
        #expect(result.outcome == .exited(code: 0))
        let lines = result.output.split(separator: "\n").map(String.init)
        let fds = Set(lines.compactMap { Int32($0) })
        #expect(!fds.contains(fd))
        #expect(fds.isSubset(of: [0, 1, 2, 10]))  // dash keeps fd 10 for its own use
        #expect(lines.contains("SigBlk:\t0000000000000000"))
        let ignored = try #require(lines.first { $0.hasPrefix("SigIgn:\t") }.flatMap { UInt64($0.dropFirst(8), radix: 16) })
        // No classic signal (1...31) is ignored; glibc itself leaves its internal 32 and 33 ignored.
        #expect(ignored & 0x7fff_ffff == 0, "ignored signal mask \(String(ignored, radix: 16))")
    }

    @Test("timeout kills the whole process group, background children included")
    func timeoutKillsGroup() async throws {
        let directory = try TemporaryDirectory()
        let pidFile = directory.file("pids")
        let result = await ProcessRunner.run(
            executable: "/bin/sh", arguments: ["-c", "sleep 100 & echo $! > '\(pidFile)'; echo started; sleep 100"],
            environment: shortPath, timeout: 0.5
        )
        #expect(result.outcome == .timedOut(after: 0.5))
        #expect(result.outcome.description == "timed out after 0.5 s")
        #expect(result.output == "started\n")
        #expect(result.duration >= 0.5)
        #expect(result.duration < 3)
        let pid = try #require(result.pid)
        let background = readPids(pidFile)
        #expect(background.count == 1)
        #expect(ProcessGroupProbe.liveMembers(ofGroup: pid).isEmpty)
        for child in background + [pid] {
            #expect(!ProcessGroupProbe.isAlive(child), "pid \(child) survived the timeout")
        }
    }

    @Test("a group that ignores SIGTERM gets SIGKILL after the grace period")
    func killAfterGrace() async throws {
        let directory = try TemporaryDirectory()
        let pidFile = directory.file("pids")
        let result = await ProcessRunner.run(
            executable: "/bin/sh",
            arguments: ["-c", "trap '' TERM; sleep 100 & echo $! > '\(pidFile)'; sleep 100 >/dev/null 2>&1 & echo $! >> '\(pidFile)'; sleep 100"],
            environment: shortPath, timeout: 0.3, killGrace: 0.4
        )
        #expect(result.outcome == .timedOut(after: 0.3))
        #expect(result.duration >= 0.7)
        #expect(result.duration < 60)  // `yes` never ends by itself
        let pid = try #require(result.pid)
        let background = readPids(pidFile)
        #expect(background.count == 2)
        #expect(ProcessGroupProbe.liveMembers(ofGroup: pid).isEmpty)
        for child in background + [pid] {
            #expect(!ProcessGroupProbe.isAlive(child), "pid \(child) survived SIGKILL")
        }
    }

    @Test("a hook that stops promptly on SIGTERM is not held for the whole grace period")
    func promptTermination() async {
        let result = await ProcessRunner.run(
            executable: "/bin/sh", arguments: ["-c", "sleep 100"], environment: shortPath, timeout: 0.2, killGrace: 10
        )
        #expect(result.outcome == .timedOut(after: 0.2))
        #expect(result.duration < 3)
    }

    @Test("cancelling the calling task kills the group")
    func cancellation() async throws {
        let directory = try TemporaryDirectory()
        let pidFile = directory.file("pids")
        let task = Task {
            await ProcessRunner.run(
                executable: "/bin/sh", arguments: ["-c", "sleep 100 & echo $! > '\(pidFile)'; sleep 100"],
                environment: shortPath, timeout: 100
            )
        }
        #expect(await eventually(within: 30) { readPids(pidFile).count == 1 })
        let started = ContinuousClock.now
        task.cancel()
        let result = await task.value
        #expect(ContinuousClock.now - started < .seconds(60))  // the child sleeps 100 s: it was killed
        #expect(result.outcome == .signalled(signal: SIGTERM))
        let pid = try #require(result.pid)
        for child in readPids(pidFile) + [pid] {
            #expect(!ProcessGroupProbe.isAlive(child), "pid \(child) survived cancellation")
        }
    }

    @Test("an already cancelled task starts nothing")
    func cancelledBeforeStart() async throws {
        let directory = try TemporaryDirectory()
        let marker = directory.file("ran")
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await ProcessRunner.run(executable: "/bin/sh", arguments: ["-c", "touch '\(marker)'"], environment: shortPath, timeout: 10)
        }
        let result = await task.value
        #expect(result.outcome == .failedToStart(reason: "cancelled before start"))
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    @Test("background processes left by a finished child are not waited for")
    func leftoverChildren() async throws {
        let result = await ProcessRunner.run(
            executable: "/bin/sh", arguments: ["-c", "sleep 30 & echo $!; echo done"], environment: shortPath, timeout: 60
        )
        defer { cleanUpGroup(result.pid) }
        #expect(result.outcome == .exited(code: 0))
        #expect(result.duration < 5)
        let lines = result.output.split(separator: "\n")
        #expect(lines.last == "done")
        // Documented choice: a normal exit does not kill what the hook started (nohup-style daemons survive).
        let leftover = try #require(lines.first.flatMap { pid_t($0) })
        #expect(ProcessGroupProbe.isAlive(leftover))
    }

    @Test("long output is cut to 64 KiB keeping head and tail")
    func outputTruncated() async {
        let result = await ProcessRunner.run(
            executable: "/bin/sh",
            arguments: ["-c", "echo FIRST; i=0; while [ $i -lt 3000 ]; do echo 'line of filler text that repeats and repeats'; i=$((i+1)); done; echo LAST"],
            environment: shortPath, timeout: 30
        )
        #expect(result.outcome == .exited(code: 0))
        #expect(result.outputTruncated)
        #expect(result.output.utf8.count <= ProcessResult.outputLimit)
        #expect(result.output.hasPrefix("FIRST\n"))
        #expect(result.output.hasSuffix("LAST\n"))
        #expect(result.output.contains("[certkeeper: \(result.omittedOutputBytes) bytes of output omitted]"))
        let total = 6 + 3000 * 45 + 5
        #expect(result.output.utf8.count - result.omittedOutputBytes < total)
        #expect(result.lastOutputLines(1) == ["LAST"])
    }

    @Test("a child flooding its output still times out")
    func floodTimesOut() async {
        let result = await ProcessRunner.run(executable: "/usr/bin/yes", arguments: [], environment: [:], timeout: 0.5)
        #expect(result.outcome == .timedOut(after: 0.5))
        #expect(result.duration < 60)  // `yes` never ends by itself
        #expect(result.outputTruncated)
        #expect(result.output.utf8.count <= ProcessResult.outputLimit)
    }

    @Test("many children run at once without tying up the cooperative pool")
    func concurrentRuns() async throws {
        // A rendezvous instead of a stopwatch: each child leaves a marker and waits (up to 60 s) until all ten
        // markers exist. If a waiting child blocked a thread of the 2-thread cooperative pool, at most two would
        // run at a time, the ten markers would never all exist, and every child would exit 1.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rendezvous-\(UInt64.random(in: 0...UInt64.max))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let script = """
            touch "$1/$2"
            for i in $(seq 600); do
              [ "$(ls "$1" | wc -l)" -ge 10 ] && exit 0
              sleep 0.1
            done
            exit 1
            """
        let outcomes = await withTaskGroup(of: ProcessOutcome.self) { group in
            for index in 0..<10 {
                group.addTask {
                    await ProcessRunner.run(executable: "/bin/sh", arguments: ["-c", script, "sh", directory, "child\(index)"], environment: [:], timeout: 90).outcome
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outcomes == Array(repeating: .exited(code: 0), count: 10), "the children did not all run at once: \(outcomes)")
    }
}

@Suite("Output and status decoding")
struct DecodingTests {
    @Test("wait statuses decode like WIFEXITED/WTERMSIG")
    func waitStatus() {
        #expect(ChildSupervisor.decode(0) == .exited(code: 0))
        #expect(ChildSupervisor.decode(3 << 8) == .exited(code: 3))
        #expect(ChildSupervisor.decode(9) == .signalled(signal: 9))
        #expect(ChildSupervisor.decode(15 | 0x80) == .signalled(signal: 15))  // core dump flag
    }

    @Test("the collector keeps everything below the limit")
    func collectorSmall() {
        var collector = OutputCollector(limit: 1000)
        collector.append(Array("hello ".utf8))
        collector.append(Array("world".utf8))
        #expect(collector.text() == "hello world")
        #expect(collector.omittedBytes == 0)
    }

    @Test("the collector keeps head and tail and counts the rest")
    func collectorLarge() {
        var collector = OutputCollector(limit: 164)  // 100 usable: 50 head, 50 tail
        let bytes = (0..<1000).map { UInt8(ascii: "a") + UInt8($0 % 26) }
        for chunk in stride(from: 0, to: bytes.count, by: 7) {
            collector.append(bytes[chunk..<min(chunk + 7, bytes.count)])
        }
        #expect(collector.omittedBytes == 900)
        let expected = String(decoding: bytes.prefix(50), as: UTF8.self) + "\n[certkeeper: 900 bytes of output omitted]\n"
            + String(decoding: bytes.suffix(50), as: UTF8.self)
        #expect(collector.text() == expected)
        #expect(collector.text().utf8.count <= 164)
    }

    @Test("outcome descriptions are one readable line")
    func descriptions() {
        #expect(ProcessOutcome.timedOut(after: 30).description == "timed out after 30 s")
        #expect(ProcessOutcome.signalled(signal: SIGKILL).description == "killed by signal 9 (SIGKILL)")
        #expect(ProcessOutcome.signalled(signal: 40).description == "killed by signal 40")
        #expect(ProcessOutcome.failedToStart(reason: "no such file: /x").description == "failed to start: no such file: /x")
    }
}
