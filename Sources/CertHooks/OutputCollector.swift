/// Collects a child's output up to a byte limit, keeping the beginning (what it set out to do) and the end
/// (why it failed) and counting what was dropped from the middle.
struct OutputCollector {
    /// Room kept for the omission marker so the result stays within the limit.
    private static let markerReserve = 64

    let headLimit: Int
    let tailLimit: Int
    private var head: [UInt8] = []
    /// The most recent bytes after the head; compacted lazily so appends stay amortised O(1).
    private var tail: [UInt8] = []
    private var tailStart = 0
    private(set) var omittedBytes = 0

    /// - Parameter limit: the most bytes the finished output may have, marker included.
    init(limit: Int) {
        let usable = max(0, limit - Self.markerReserve)
        headLimit = usable / 2
        tailLimit = usable - usable / 2
    }

    mutating func append<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        var rest = bytes[...]
        if head.count < headLimit {
            let taken = rest.prefix(headLimit - head.count)
            head.append(contentsOf: taken)
            rest = rest.dropFirst(taken.count)
        }
        guard !rest.isEmpty else { return }
        tail.append(contentsOf: rest)
        let kept = tail.count - tailStart
        if kept > tailLimit {
            let excess = kept - tailLimit
            tailStart += excess
            omittedBytes += excess
        }
        if tailStart > tailLimit {
            tail.removeFirst(tailStart)
            tailStart = 0
        }
    }

    /// The collected output as text, with a marker line where bytes were dropped.
    func text() -> String {
        let kept = tail[tailStart...]
        if omittedBytes == 0 {
            return String(decoding: head + kept, as: UTF8.self)
        }
        var headText = String(decoding: head, as: UTF8.self)
        if !headText.hasSuffix("\n") { headText += "\n" }
        return headText + "[certkeeper: \(omittedBytes) bytes of output omitted]\n" + String(decoding: kept, as: UTF8.self)
    }
}
