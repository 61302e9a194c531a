import CertkeeperTestSupport
import Foundation
import Testing
import Glibc
@Test func zzSignalProbe() async throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sleep")
    p.arguments = ["30"]
    try p.run()
    try await Task.sleep(for: .milliseconds(300))
    let start = ContinuousClock.now
    kill(p.processIdentifier, SIGTERM)
    while p.isRunning && ContinuousClock.now - start < .seconds(10) { try await Task.sleep(for: .milliseconds(10)) }
    print("PROBE1", ContinuousClock.now - start, p.terminationReason.rawValue, p.terminationStatus)
    let s2 = ContinuousClock.now
    _ = try await OneShotProcess.run(executable: "/bin/sh", arguments: ["-c", "exit 0"])
    print("PROBE2", ContinuousClock.now - s2)
    let s3 = ContinuousClock.now
    do { _ = try await OneShotProcess.run(executable: "/bin/sleep", arguments: ["30"], timeout: 0.5) } catch { print("PROBE3", error) }
    print("PROBE3", ContinuousClock.now - s3)
}
