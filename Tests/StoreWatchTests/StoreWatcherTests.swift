import Foundation
import StoreWatch
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("StoreWatcher on a real directory")
struct StoreWatcherTests {
    @Test("creating, renaming into place and writing a file report its name")
    func createRenameWrite() async throws {
        let dir = try ScratchDirectory("crw")
        defer { dir.remove() }
        try dir.write("old", to: "existing.pem")
        let watcher = StoreWatcher(directories: [dir.path], logger: testLogger)
        let collector = BatchCollector(try watcher.changes())
        defer { collector.cancel() }

        try dir.write("new", to: "created.pem")
        try dir.write("tmp", to: ".renamed.tmp")
        #expect(rename(dir.appending(".renamed.tmp"), dir.appending("renamed.pem")) == 0)
        let fd = open(dir.appending("existing.pem"), O_WRONLY | O_APPEND)
        #expect(fd >= 0)
        _ = write(fd, "more", 4)
        close(fd)

        let seen = await collector.wait { _ in
            collector.names(in: dir.path).isSuperset(of: ["created.pem", "renamed.pem", "existing.pem"])
        }
        #expect(seen, "names seen: \(collector.names(in: dir.path).sorted())")
        #expect(!collector.names(in: dir.path).contains("unrelated"))
    }

    @Test("a symlink swapped by rename (the store's live/<name>) reports the link name")
    func symlinkSwap() async throws {
        let dir = try ScratchDirectory("swap")
        defer { dir.remove() }
        try FileManager.default.createDirectory(atPath: dir.appending("v1"), withIntermediateDirectories: false)
        try FileManager.default.createDirectory(atPath: dir.appending("v2"), withIntermediateDirectories: false)
        #expect(symlink("v1", dir.appending("web")) == 0)
        let watcher = StoreWatcher(directories: [dir.path], logger: testLogger)
        let collector = BatchCollector(try watcher.changes())
        defer { collector.cancel() }

        #expect(symlink("v2", dir.appending(".web.tmp")) == 0)
        #expect(rename(dir.appending(".web.tmp"), dir.appending("web")) == 0)

        let seen = await collector.wait { _ in collector.names(in: dir.path).contains("web") }
        #expect(seen, "names seen: \(collector.names(in: dir.path).sorted())")
    }

    @Test("many rapid changes are debounced into few batches")
    func debounce() async throws {
        let dir = try ScratchDirectory("debounce")
        defer { dir.remove() }
        let watcher = StoreWatcher(directories: [dir.path], debounce: .milliseconds(300), logger: testLogger)
        let collector = BatchCollector(try watcher.changes())
        defer { collector.cancel() }

        let names = (0..<200).map { "file-\($0)" }
        for name in names { try dir.write(name, to: name) }

        let all = await collector.wait { _ in collector.names(in: dir.path).isSuperset(of: names) }
        #expect(all)
        // Without debouncing this would be at least 200 batches (one per close-write). How many windows the
        // writes span depends on the machine's load, so only require that events were merged substantially.
        #expect(collector.received.count <= 20, "batches: \(collector.received.count)")
    }

    @Test("stopping the consumer stops the reader thread and closes its descriptors")
    func terminationStopsThread() async throws {
        let dir = try ScratchDirectory("stop")
        defer { dir.remove() }
        let watcher = StoreWatcher(directories: [dir.path], logger: testLogger)
        let collector = BatchCollector(try watcher.changes())
        #expect(watcher.activeStreams == 1)
        try dir.write("x", to: "one")
        #expect(await collector.wait { !$0.isEmpty })

        collector.cancel()
        #expect(await waitForStop(watcher))
    }

    @Test("a watched directory that is deleted asks for a rescan, and is watched again once recreated")
    func directoryGone() async throws {
        let parent = try ScratchDirectory("gone")
        defer { parent.remove() }
        let watched = parent.appending("live")
        try FileManager.default.createDirectory(atPath: watched, withIntermediateDirectories: false)
        let watcher = StoreWatcher(directories: [watched], logger: testLogger)
        let collector = BatchCollector(try watcher.changes())
        defer { collector.cancel() }

        try FileManager.default.removeItem(atPath: watched)
        let gone = await collector.wait { batches in
            batches.contains(.rescanAll(reason: .directoryGone(watched)))
        }
        #expect(gone, "batches: \(collector.received)")

        try FileManager.default.createDirectory(atPath: watched, withIntermediateDirectories: false)
        let restored = await collector.wait(timeout: .seconds(5)) { batches in
            batches.contains(.rescanAll(reason: .watchRestored(watched)))
        }
        #expect(restored, "batches: \(collector.received)")
        try Data("x".utf8).write(to: URL(fileURLWithPath: watched + "/after"))
        #expect(await collector.wait { _ in collector.names(in: watched).contains("after") })
    }

    @Test("a directory that does not exist is refused with its path")
    func missingDirectory() throws {
        let watcher = StoreWatcher(directories: ["/tmp/certkeeper-tests/does-not-exist-\(UInt64.random(in: 0...UInt64.max))"], logger: testLogger)
        #expect {
            _ = try watcher.changes()
        } throws: { error in
            guard let error = error as? StoreWatchError else { return false }
            return error.operation == "inotify_add_watch" && error.errno == ENOENT
                && error.description.contains("does-not-exist") && error.description.contains("No such file")
        }
        #expect(watcher.activeStreams == 0)
    }
}

@Suite("inotify event parsing and batching")
struct InotifyParsingTests {
    @Test("records with padded names and an overflow record parse, and the overflow asks for a rescan")
    func overflowRecord() {
        let events = [
            InotifyEvent(watchDescriptor: 1, mask: InotifyMask.create, name: "web"),
            InotifyEvent(watchDescriptor: 1, mask: InotifyMask.movedTo, cookie: 7, name: "a-longer-name.pem"),
            InotifyEvent(watchDescriptor: -1, mask: InotifyMask.queueOverflow),
        ]
        let bytes = InotifyEventParser.encode(events)
        // 16-byte headers; "web\0" is 4 bytes, the long name is padded to 20.
        #expect(bytes.count == 16 + 4 + 16 + 20 + 16)
        let parsed = InotifyEventParser.parse(bytes)
        #expect(parsed == events)
        #expect(parsed.map(\.isQueueOverflow) == [false, false, true])

        var builder = ChangeBatchBuilder()
        for event in parsed { builder.add(event, directory: event.watchDescriptor == 1 ? "/live" : nil) }
        #expect(builder.take() == .rescanAll(reason: .queueOverflow))
        #expect(builder.isEmpty)
    }

    @Test("a truncated record is not parsed")
    func truncated() {
        let bytes = InotifyEventParser.encode([
            InotifyEvent(watchDescriptor: 2, mask: InotifyMask.closeWrite, name: "cert.pem"),
            InotifyEvent(watchDescriptor: 2, mask: InotifyMask.delete, name: "other.pem"),
        ])
        let parsed = InotifyEventParser.parse(Array(bytes.dropLast(3)))
        #expect(parsed.map(\.name) == ["cert.pem"])
    }

    @Test("events fold into names per directory; unknown watches and self events are handled")
    func builder() {
        var builder = ChangeBatchBuilder()
        builder.add(InotifyEvent(watchDescriptor: 1, mask: InotifyMask.movedTo, name: "web"), directory: "/a")
        builder.add(InotifyEvent(watchDescriptor: 1, mask: InotifyMask.create, name: "web"), directory: "/a")
        builder.add(InotifyEvent(watchDescriptor: 2, mask: InotifyMask.closeWrite, name: "x.pem"), directory: "/b")
        builder.add(InotifyEvent(watchDescriptor: 9, mask: InotifyMask.create, name: "stale"), directory: nil)
        let batch = builder.take()
        #expect(batch == .changed(["/a": ["web"], "/b": ["x.pem"]]))
        #expect(batch?.mayHaveChanged("web", in: "/a") == true)
        #expect(batch?.mayHaveChanged("web", in: "/b") == false)
        #expect(builder.take() == nil)

        builder.add(InotifyEvent(watchDescriptor: 1, mask: InotifyMask.deleteSelf), directory: "/a")
        builder.add(InotifyEvent(watchDescriptor: 1, mask: InotifyMask.ignored), directory: "/a")
        let gone = builder.take()
        #expect(gone == .rescanAll(reason: .directoryGone("/a")))
        #expect(gone?.mayHaveChanged("anything", in: "/elsewhere") == true)
        #expect(gone?.description == "rescan all: watched directory /a was deleted or moved")
    }
}
