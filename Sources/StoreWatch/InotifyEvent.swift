#if canImport(Glibc)
import Glibc
#endif

/// One `struct inotify_event` record as read from an inotify file descriptor.
public struct InotifyEvent: Sendable, Equatable, CustomStringConvertible {
    /// The watch descriptor the event belongs to; `-1` for a queue overflow.
    public var watchDescriptor: Int32
    /// The `IN_*` bits of the event.
    public var mask: UInt32
    /// Links the two halves of a rename (`IN_MOVED_FROM` / `IN_MOVED_TO`).
    public var cookie: UInt32
    /// The entry name inside the watched directory; empty for events about the directory itself.
    public var name: String

    /// Creates an event record.
    /// - Parameters:
    ///   - watchDescriptor: The watch descriptor (`-1` for an overflow).
    ///   - mask: The `IN_*` bits.
    ///   - cookie: The rename cookie (0 when unused).
    ///   - name: The entry name (empty when none).
    public init(watchDescriptor: Int32, mask: UInt32, cookie: UInt32 = 0, name: String = "") {
        self.watchDescriptor = watchDescriptor
        self.mask = mask
        self.cookie = cookie
        self.name = name
    }

    /// Events were lost (`IN_Q_OVERFLOW`, always with watch descriptor -1): everything must be rescanned.
    public var isQueueOverflow: Bool {
        mask & InotifyMask.queueOverflow != 0 || watchDescriptor == -1
    }

    /// The watched directory itself went away or was moved (`IN_DELETE_SELF`, `IN_MOVE_SELF`, `IN_IGNORED`,
    /// `IN_UNMOUNT`): its watch is gone and its contents must be rescanned.
    public var watchedDirectoryGone: Bool {
        mask & (InotifyMask.deleteSelf | InotifyMask.moveSelf | InotifyMask.ignored | InotifyMask.unmount) != 0
    }

    /// `wd=3 mask=0x80 name=web`.
    public var description: String {
        "wd=\(watchDescriptor) mask=0x\(String(mask, radix: 16))" + (name.isEmpty ? "" : " name=\(name)")
    }
}

/// The `IN_*` bits used by the watcher, as `UInt32` (Glibc imports them as `Int32`).
public enum InotifyMask {
    /// A file opened for writing was closed.
    public static let closeWrite = UInt32(IN_CLOSE_WRITE)
    /// An entry was renamed out of the directory.
    public static let movedFrom = UInt32(IN_MOVED_FROM)
    /// An entry was renamed into the directory (also a symlink swapped by `rename(2)`).
    public static let movedTo = UInt32(IN_MOVED_TO)
    /// An entry was created.
    public static let create = UInt32(IN_CREATE)
    /// An entry was deleted.
    public static let delete = UInt32(IN_DELETE)
    /// The watched directory was deleted.
    public static let deleteSelf = UInt32(IN_DELETE_SELF)
    /// The watched directory was moved.
    public static let moveSelf = UInt32(IN_MOVE_SELF)
    /// The watch was removed (explicitly, or because the directory was deleted or unmounted).
    public static let ignored = UInt32(IN_IGNORED)
    /// The filesystem holding the directory was unmounted.
    public static let unmount = UInt32(IN_UNMOUNT)
    /// The kernel's event queue overflowed: events were lost.
    public static let queueOverflow = UInt32(IN_Q_OVERFLOW)
    /// Only watch the path if it is a directory.
    public static let onlyDirectory = UInt32(IN_ONLYDIR)

    /// What a directory watch asks for: entry changes plus the directory's own removal or move.
    public static let directoryWatch: UInt32 =
        closeWrite | movedFrom | movedTo | create | delete | deleteSelf | moveSelf | onlyDirectory
}

/// Splits the bytes returned by `read(2)` on an inotify descriptor into ``InotifyEvent`` records.
///
/// Each record is a 16-byte header (`wd`, `mask`, `cookie`, `len`, host byte order) followed by `len` bytes of
/// NUL-padded name. A record cut short (which the kernel never produces) ends the parse.
public enum InotifyEventParser {
    /// The size of `struct inotify_event` without its name.
    public static let headerSize = 16

    /// Parses every complete record in `bytes`.
    /// - Parameter bytes: What one or more `read(2)` calls returned, concatenated.
    /// - Returns: The records, in order.
    public static func parse(_ bytes: UnsafeRawBufferPointer) -> [InotifyEvent] {
        var events: [InotifyEvent] = []
        var offset = 0
        while bytes.count - offset >= headerSize {
            let wd = bytes.loadUnaligned(fromByteOffset: offset, as: Int32.self)
            let mask = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
            let cookie = bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self)
            let length = Int(bytes.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
            let nameStart = offset + headerSize
            guard length <= bytes.count - nameStart else { break }
            let nameBytes = bytes[nameStart..<(nameStart + length)].prefix(while: { $0 != 0 })
            events.append(
                InotifyEvent(
                    watchDescriptor: wd, mask: mask, cookie: cookie, name: String(decoding: nameBytes, as: UTF8.self)))
            offset = nameStart + length
        }
        return events
    }

    /// Parses every complete record in `bytes`.
    /// - Parameter bytes: What one or more `read(2)` calls returned, concatenated.
    /// - Returns: The records, in order.
    public static func parse(_ bytes: [UInt8]) -> [InotifyEvent] {
        bytes.withUnsafeBytes { parse($0) }
    }

    /// Encodes events in the kernel's record format (names NUL-padded to a multiple of 4 bytes): the inverse of
    /// ``parse(_:)-([UInt8])``, for tests and tools.
    /// - Parameter events: The records to encode.
    /// - Returns: The bytes `read(2)` would have returned.
    public static func encode(_ events: [InotifyEvent]) -> [UInt8] {
        var out: [UInt8] = []
        for event in events {
            var name = Array(event.name.utf8)
            if !name.isEmpty {
                name.append(0)
                while name.count % 4 != 0 { name.append(0) }
            }
            withUnsafeBytes(of: event.watchDescriptor) { out.append(contentsOf: $0) }
            withUnsafeBytes(of: event.mask) { out.append(contentsOf: $0) }
            withUnsafeBytes(of: event.cookie) { out.append(contentsOf: $0) }
            withUnsafeBytes(of: UInt32(name.count)) { out.append(contentsOf: $0) }
            out.append(contentsOf: name)
        }
        return out
    }
}
