import Foundation
import Yams

/// A key path being built while walking the document: `certificates[2].challenge.hook`.
struct ConfigPath: CustomStringConvertible {
    /// The path as it appears in messages.
    let text: String

    /// The whole document.
    static let root = ConfigPath(text: "")

    /// The path of `name` inside this mapping.
    func key(_ name: String) -> ConfigPath { ConfigPath(text: text.isEmpty ? name : "\(text).\(name)") }

    /// The path of item `index` of this list.
    func index(_ index: Int) -> ConfigPath { ConfigPath(text: "\(text)[\(index)]") }

    var description: String { text }
}

/// A mapping whose keys were checked against a schema, with YAML merge keys (`<<: *anchor`) applied.
struct CheckedMapping {
    /// Where the mapping is.
    let path: ConfigPath
    /// Where the mapping starts in the file, for ordering issues about missing keys.
    let mark: Mark?
    /// Known keys present in the mapping, with their values.
    let entries: [String: Node]

    /// The value under `key`, including an explicit null; `nil` when the key is absent.
    subscript(key: String) -> Node? { entries[key] }

    /// An empty mapping standing for a section that was left out.
    static func empty(at path: ConfigPath, mark: Mark?) -> CheckedMapping {
        CheckedMapping(path: path, mark: mark, entries: [:])
    }
}

/// Walks a Yams node tree, converting values and collecting every problem instead of stopping at the first.
///
/// A reference type only so that section functions can pass converters like `reader.absolutePath` around;
/// one instance lives for a single `parse` call and never leaves it.
final class ConfigReader {
    private struct LocatedIssue {
        let issue: ConfigIssue
        let line: Int?
        let order: Int
    }

    private var located: [LocatedIssue] = []

    /// Every issue so far, in file order (issues without a position last, then in the order found).
    var issues: [ConfigIssue] {
        located.sorted { lhs, rhs in
            let left = lhs.line ?? .max
            let right = rhs.line ?? .max
            return left != right ? left < right : lhs.order < rhs.order
        }.map(\.issue)
    }

    /// Whether any problem was found.
    var hasIssues: Bool { !located.isEmpty }

    /// Records a problem at `path`; `mark` places it in file order.
    func report(_ path: ConfigPath, _ message: String, mark: Mark?) {
        located.append(LocatedIssue(issue: ConfigIssue(keyPath: path.text, message: message),
                                    line: mark?.line, order: located.count))
    }

    /// Records a problem about `node`, found at `path`.
    func report(_ path: ConfigPath, _ message: String, node: Node) {
        report(path, message, mark: node.mark)
    }

    // MARK: Mappings

    /// Checks that `node` is a mapping whose keys are all in `keys`.
    ///
    /// - Parameters:
    ///   - misplaced: keys that are valid elsewhere but not here, with the message to report for them.
    /// - Returns: the checked mapping, or `nil` (after reporting) when `node` is not a mapping.
    func mapping(_ node: Node, at path: ConfigPath, keys: [String], misplaced: [String: String] = [:])
        -> CheckedMapping?
    {
        guard case .mapping(let mapping) = node else {
            report(path, "expected a mapping, got \(Self.describe(node))", node: node)
            return nil
        }
        var entries: [String: Node] = [:]
        for (keyNode, value) in flattened(mapping, at: path) {
            guard case .scalar(let scalar) = keyNode else {
                report(path, "keys must be plain strings, got \(Self.describe(keyNode))", node: keyNode)
                continue
            }
            let key = scalar.string
            let keyPath = path.key(key)
            if keys.contains(key) {
                entries[key] = value
            } else if let message = misplaced[key] {
                report(keyPath, message, node: keyNode)
            } else if let suggestion = Syntax.suggestion(for: key, among: keys) {
                report(keyPath, "unknown key; did you mean '\(suggestion)'?", node: keyNode)
            } else {
                report(keyPath, "unknown key; expected one of: \(keys.joined(separator: ", "))", node: keyNode)
            }
        }
        return CheckedMapping(path: path, mark: mapping.mark, entries: entries)
    }

    /// Like ``mapping(_:at:keys:misplaced:)`` for an optional section: absent or null means an empty mapping.
    func section(_ node: Node?, at path: ConfigPath, keys: [String], parentMark: Mark?) -> CheckedMapping? {
        guard let node, !Self.isNull(node) else { return .empty(at: path, mark: node?.mark ?? parentMark) }
        return mapping(node, at: path, keys: keys)
    }

    /// The mapping's pairs with merge keys resolved: explicit keys win, then earlier merged mappings.
    private func flattened(_ mapping: Node.Mapping, at path: ConfigPath) -> [(key: Node, value: Node)] {
        var explicit: [(key: Node, value: Node)] = []
        var merged: [(key: Node, value: Node)] = []
        for (key, value) in mapping {
            guard key.tagName == .merge else {
                explicit.append((key, value))
                continue
            }
            let sources: [Node]
            if case .sequence(let sequence) = value { sources = Array(sequence) } else { sources = [value] }
            for source in sources {
                guard case .mapping(let inner) = source else {
                    report(path.key("<<"), "a merge key must refer to a mapping, got \(Self.describe(source))",
                           node: source)
                    continue
                }
                merged += flattened(inner, at: path)
            }
        }
        var seen = Set(explicit.compactMap { $0.key.scalar?.string })
        for pair in merged {
            guard let name = pair.key.scalar?.string, !seen.contains(name) else { continue }
            seen.insert(name)
            explicit.append(pair)
        }
        return explicit
    }

    // MARK: Presence

    /// Converts the value under `key` when present and not null.
    func optional<Value>(_ mapping: CheckedMapping, _ key: String, _ convert: (Node, ConfigPath) -> Value?)
        -> Value?
    {
        guard let node = mapping[key], !Self.isNull(node) else { return nil }
        return convert(node, mapping.path.key(key))
    }

    /// Converts the value under `key`, reporting it when it is absent or null.
    func required<Value>(_ mapping: CheckedMapping, _ key: String, _ convert: (Node, ConfigPath) -> Value?)
        -> Value?
    {
        let path = mapping.path.key(key)
        guard let node = mapping[key] else {
            report(path, "required key is missing", mark: mapping.mark)
            return nil
        }
        guard !Self.isNull(node) else {
            report(path, "required value is empty", node: node)
            return nil
        }
        return convert(node, path)
    }

    // MARK: Lists

    /// The items of a list with their paths, or `nil` (after reporting) when `node` is not a list.
    /// - Parameter itemDescription: used in "expected a list of <itemDescription>".
    func list(_ node: Node, at path: ConfigPath, of itemDescription: String) -> [(node: Node, path: ConfigPath)]? {
        guard case .sequence(let sequence) = node else {
            report(path, "expected a list of \(itemDescription), got \(Self.describe(node))", node: node)
            return nil
        }
        return sequence.enumerated().map { ($0.element, path.index($0.offset)) }
    }

    // MARK: Scalars

    /// Any non-null scalar, as written in the file (so `node_name: 007` stays `007`).
    func string(_ node: Node, at path: ConfigPath) -> String? {
        guard case .scalar(let scalar) = node, !Self.isNull(node) else {
            report(path, "expected a string, got \(Self.describe(node))", node: node)
            return nil
        }
        return scalar.string
    }

    /// A string that `problem` accepts; otherwise reports "`'<text>' is not <what>: <problem>`".
    func checkedString(_ node: Node, at path: ConfigPath, isNot what: String, _ problem: (String) -> String?)
        -> String?
    {
        guard let text = string(node, at: path) else { return nil }
        if let reason = problem(text) {
            report(path, "'\(Self.quoted(text))' is not \(what): \(reason)", node: node)
            return nil
        }
        return text
    }

    /// An integer (YAML int: `5`, `0x10`, `1_000`) within `range`.
    func integer(_ node: Node, at path: ConfigPath, in range: ClosedRange<Int>) -> Int? {
        guard case .scalar(let scalar) = node, node.tagName == .int else {
            report(path, "expected an integer, got \(Self.describe(node))", node: node)
            return nil
        }
        guard let value = Self.integerValue(scalar), range.contains(value) else {
            report(path, "must be between \(range.lowerBound) and \(range.upperBound), got \(scalar.string)",
                   node: node)
            return nil
        }
        return value
    }

    /// The value of a YAML int scalar, `nil` when it does not fit an `Int`. YAML 1.1 sexagesimal ints (`1:30` is 90)
    /// are folded here with overflow checks: Yams folds them with trapping arithmetic, so `1:0:0:0:0:0:0:0:0:0:0`
    /// in a configuration would crash `check-config` and a SIGHUP reload.
    static func integerValue(_ scalar: Node.Scalar) -> Int? {
        let text = scalar.string
        guard text.contains(":") else { return Int.construct(from: scalar) }
        var body = Substring(text.replacingOccurrences(of: "_", with: ""))
        let negative = body.first == "-"
        if body.first == "-" || body.first == "+" { body = body.dropFirst() }
        var value = 0
        for part in body.split(separator: ":", omittingEmptySubsequences: false) {
            guard !part.isEmpty, part.utf8.count <= 19, part.utf8.allSatisfy({ (48...57).contains($0) }), let digits = Int(part) else { return nil }
            let (shifted, overflowed) = value.multipliedReportingOverflow(by: 60)
            let (sum, carried) = shifted.addingReportingOverflow(digits)
            guard !overflowed, !carried else { return nil }
            value = sum
        }
        return negative ? -value : value
    }

    /// A duration in seconds: a non-negative number, or a string such as `90s`, `10m`, `2h`, `30d`, `1h30m`.
    ///
    /// - Parameter allowZero: whether 0 is meaningful here (a delay) or not (a timeout).
    func duration(_ node: Node, at path: ConfigPath, allowZero: Bool) -> Double? {
        let expected = "expected a duration (seconds, or a string like 90s, 10m, 2h, 30d, 1h30m)"
        guard case .scalar(let scalar) = node else {
            report(path, "\(expected), got \(Self.describe(node))", node: node)
            return nil
        }
        let seconds: Double
        switch node.tagName {
        case .int:
            guard let value = Self.integerValue(scalar) else {
                report(path, "\(scalar.string) is out of range", node: node)
                return nil
            }
            seconds = Double(value)
        case .float:
            guard let value = Double.construct(from: scalar), value.isFinite else {
                report(path, "must be a finite number of seconds, got \(scalar.string)", node: node)
                return nil
            }
            seconds = value
        case .str:
            guard let value = Syntax.durationSeconds(scalar.string) else {
                report(path, "'\(Self.quoted(scalar.string))' is not a valid duration; use seconds (90) or a number "
                    + "with units from largest to smallest: 90s, 10m, 2h, 30d, 1h30m, 1.5h", node: node)
                return nil
            }
            seconds = value
        default:
            report(path, "\(expected), got \(Self.describe(node))", node: node)
            return nil
        }
        guard seconds >= 0 else {
            report(path, "must not be negative, got \(scalar.string)", node: node)
            return nil
        }
        guard allowZero || seconds > 0 else {
            report(path, "must be greater than 0", node: node)
            return nil
        }
        guard seconds <= Syntax.maximumDuration else {
            report(path, "must be at most 3650d, got \(scalar.string)", node: node)
            return nil
        }
        return seconds
    }

    /// A duration that may be 0 (a delay). Shaped for ``optional(_:_:_:)``.
    func delay(_ node: Node, at path: ConfigPath) -> Double? { duration(node, at: path, allowZero: true) }

    /// A duration that must be greater than 0 (a timeout). Shaped for ``optional(_:_:_:)``.
    func timeout(_ node: Node, at path: ConfigPath) -> Double? { duration(node, at: path, allowZero: false) }

    /// An absolute path without `..` components or NUL characters.
    func absolutePath(_ node: Node, at path: ConfigPath) -> String? {
        checkedString(node, at: path, isNot: "a valid path", Syntax.absolutePathProblem)
    }

    /// A `host:port` listen address.
    func listenAddress(_ node: Node, at path: ConfigPath) -> ListenAddress? {
        guard let text = string(node, at: path) else { return nil }
        do {
            return try ListenAddress(parsing: text)
        } catch {
            report(path, error.description, node: node)
            return nil
        }
    }

    /// A certificate or node name: `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`.
    func name(_ node: Node, at path: ConfigPath) -> String? {
        checkedString(node, at: path, isNot: "a valid name", Syntax.nameProblem)
    }

    /// An ACME profile name: `[a-z0-9_-]+`.
    func profile(_ node: Node, at path: ConfigPath) -> String? {
        checkedString(node, at: path, isNot: "a valid profile name", Syntax.profileProblem)
    }

    /// One of a fixed set of words (`key_type`, `challenge.type`), suggesting the closest on a typo.
    func choice<Choice: RawRepresentable & CaseIterable>(_ node: Node, at path: ConfigPath, of: Choice.Type)
        -> Choice? where Choice.RawValue == String
    {
        guard let text = string(node, at: path) else { return nil }
        if let value = Choice(rawValue: text) { return value }
        let names = Choice.allCases.map(\.rawValue)
        if let suggestion = Syntax.suggestion(for: text, among: names) {
            report(path, "'\(Self.quoted(text))' is not one of \(names.joined(separator: ", ")); did you mean "
                + "'\(suggestion)'?", node: node)
        } else {
            report(path, "'\(Self.quoted(text))' is not one of \(names.joined(separator: ", "))", node: node)
        }
        return nil
    }

    // MARK: Describing nodes

    /// Whether the node is YAML null (`~`, `null`, or nothing after the colon).
    static func isNull(_ node: Node) -> Bool {
        if case .scalar = node { return node.tagName == .null }
        return false
    }

    /// "a mapping", "a list", "a string ('abc')", "an integer (5)", ... for "expected X, got Y" messages.
    static func describe(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let scalar):
            let value = quoted(scalar.string)
            switch node.tagName {
            case .null: return "an empty value"
            case .str: return "a string ('\(value)')"
            case .int: return "an integer (\(value))"
            case .float: return "a number (\(value))"
            case .bool: return "a boolean (\(value))"
            case .timestamp: return "a timestamp (\(value))"
            default: return "a scalar ('\(value)')"
            }
        }
    }

    /// Text shortened and made single-line for quoting in a one-line message.
    static func quoted(_ text: String) -> String {
        let singleLine = text.replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: "\0", with: "\\0")
        return singleLine.count > 80 ? String(singleLine.prefix(77)) + "..." : singleLine
    }
}

extension Node {
    /// The resolved tag (`tag:yaml.org,2002:int`, ...): what YAML says the scalar is.
    var tagName: Tag.Name { Tag.Name(rawValue: tag.rawValue) }
}
