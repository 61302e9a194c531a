/// What changed in the watched directories during one debounce window.
public enum ChangeBatch: Sendable, Equatable, CustomStringConvertible {
    /// Entries changed: watched directory path (as given to ``StoreWatcher``) → entry names created, written,
    /// renamed in or out, or deleted. Never empty.
    case changed([String: Set<String>])
    /// Events may have been lost or a watched directory was replaced: the consumer must look at everything.
    case rescanAll(reason: RescanReason)

    /// Whether `name` in `directory` may have changed (always true for ``rescanAll(reason:)``).
    /// - Parameters:
    ///   - name: An entry name.
    ///   - directory: A watched directory path, as given to ``StoreWatcher``.
    public func mayHaveChanged(_ name: String, in directory: String) -> Bool {
        switch self {
        case .changed(let names): return names[directory]?.contains(name) ?? false
        case .rescanAll: return true
        }
    }

    /// `changed /a: x, y` or `rescan all: <reason>`.
    public var description: String {
        switch self {
        case .changed(let byDirectory):
            let parts = byDirectory.keys.sorted().map { directory in
                "\(directory): \(byDirectory[directory, default: []].sorted().joined(separator: ", "))"
            }
            return "changed " + parts.joined(separator: "; ")
        case .rescanAll(let reason):
            return "rescan all: \(reason)"
        }
    }
}

/// Why a ``ChangeBatch`` asks for a full rescan.
public enum RescanReason: Sendable, Equatable, CustomStringConvertible {
    /// The kernel's inotify queue overflowed (`IN_Q_OVERFLOW`): events were lost.
    case queueOverflow
    /// The watched directory was deleted, moved or unmounted; the watcher re-adds the watch when the path
    /// exists again.
    case directoryGone(String)
    /// A watch lost earlier was added again: what happened in between is unknown.
    case watchRestored(String)

    /// One line.
    public var description: String {
        switch self {
        case .queueOverflow: return "inotify queue overflow, events were lost"
        case .directoryGone(let path): return "watched directory \(path) was deleted or moved"
        case .watchRestored(let path): return "watch on \(path) restored"
        }
    }
}

/// Folds inotify events into one ``ChangeBatch``: names per directory, or a rescan once anything was lost.
///
/// A value type with no I/O, so the event handling is unit-testable with crafted events.
public struct ChangeBatchBuilder: Sendable {
    private var names: [String: Set<String>] = [:]
    private var rescan: RescanReason?

    /// Creates an empty builder.
    public init() {}

    /// Whether nothing has been added since the last ``take()``.
    public var isEmpty: Bool { names.isEmpty && rescan == nil }

    /// Adds one event.
    /// - Parameters:
    ///   - event: The event.
    ///   - directory: The watched directory its watch descriptor belongs to; `nil` for an unknown descriptor
    ///     (a stale watch, or an overflow record).
    public mutating func add(_ event: InotifyEvent, directory: String?) {
        if event.isQueueOverflow {
            requestRescan(.queueOverflow)
            return
        }
        guard let directory else { return }
        if event.watchedDirectoryGone {
            requestRescan(.directoryGone(directory))
            return
        }
        guard !event.name.isEmpty else { return }
        names[directory, default: []].insert(event.name)
    }

    /// Asks for a full rescan (the first reason is kept).
    /// - Parameter reason: Why.
    public mutating func requestRescan(_ reason: RescanReason) {
        if rescan == nil { rescan = reason }
    }

    /// The batch collected so far (`nil` when empty), and resets the builder.
    public mutating func take() -> ChangeBatch? {
        defer { self = ChangeBatchBuilder() }
        if let rescan { return .rescanAll(reason: rescan) }
        return names.isEmpty ? nil : .changed(names)
    }
}
