import Foundation
import FuzzTargets

#if FUZZING
/// The target libFuzzer drives, chosen once from `CERTKEEPER_FUZZ_TARGET`.
private let selectedTarget: FuzzTarget = {
    let name = getenv("CERTKEEPER_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let target = FuzzTarget.named(name) else {
        let names = FuzzTarget.all.map(\.name).joined(separator: ", ")
        printError("certkeeper-fuzz: set CERTKEEPER_FUZZ_TARGET to one of: \(names)\n")
        exit(2)
    }
    return target
}()

/// libFuzzer's entry point: one input to the selected target. A broken invariant is a crash, so libFuzzer keeps
/// the input as a reproducer.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    do {
        try selectedTarget.run(UnsafeRawBufferPointer(start: data, count: size))
    } catch {
        printError("certkeeper-fuzz \(selectedTarget.name): invariant broken: \(error)\n")
        abort()
    }
    return 0
}
#else
/// Without `-DFUZZING`: replays files through a target, the regression runner for reproducers.
///
/// `certkeeper-fuzz <target> <file or directory>...` runs every file given (directories: every file in them) and
/// exits 1 if an invariant breaks; a parser trap crashes it, as it crashed the fuzzer.
@main
enum ReplayCommand {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard let name = arguments.first, let target = FuzzTarget.named(name), arguments.count > 1 else {
            let names = FuzzTarget.all.map(\.name).joined(separator: ", ")
            printError("usage: certkeeper-fuzz <target> <file or directory>...\ntargets: \(names)\n")
            exit(2)
        }
        var failures = 0
        var count = 0
        for file in FuzzInputs.files(in: Array(arguments.dropFirst())) {
            count += 1
            guard let bytes = FuzzInputs.read(file) else {
                printError("\(file): cannot read\n")
                failures += 1
                continue
            }
            do {
                try target.run(bytes)
            } catch {
                printError("\(file): \(error)\n")
                failures += 1
            }
        }
        print("\(target.name): \(count) inputs, \(failures) failed")
        exit(failures == 0 ? 0 : 1)
    }
}
#endif

/// Writes `text` to standard error.
private func printError(_ text: String) {
    FileHandle.standardError.write(Data(text.utf8))
}
