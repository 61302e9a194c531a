/// A value in a configobj file (the INI dialect of certbot's `renewal/*.conf`): one string, or a comma-separated
/// list. configobj writes a one-item list with a trailing comma (`webroot_path = /var/www/html,`).
public enum ConfigObjValue: Sendable, Equatable {
    /// `key = text`.
    case string(String)
    /// `key = a, b` or `key = a,`.
    case list([String])

    /// The value as a list: a single string becomes a one-item list (an empty string an empty list).
    public var strings: [String] {
        switch self {
        case .string(let text): text.isEmpty ? [] : [text]
        case .list(let items): items
        }
    }
}

/// One section of a configobj file: its `key = value` lines in file order and its subsections.
///
/// The root section holds the keys before the first `[section]`; `[name]` opens a subsection of the root,
/// `[[name]]` a subsection of the last `[name]`, and so on.
public struct ConfigObjSection: Sendable, Equatable {
    /// One `key = value` line.
    public struct Entry: Sendable, Equatable {
        /// The key, unquoted.
        public var key: String
        /// The value.
        public var value: ConfigObjValue
        /// The 1-based line number it was read from.
        public var line: Int
    }

    /// The section name (empty for the root).
    public var name: String
    /// The section's own values, in file order.
    public var entries: [Entry]
    /// The nested sections, in file order.
    public var sections: [ConfigObjSection]

    /// Creates a section.
    public init(name: String, entries: [Entry] = [], sections: [ConfigObjSection] = []) {
        self.name = name
        self.entries = entries
        self.sections = sections
    }

    /// The value of `key` in this section (not in subsections), `nil` when absent.
    public subscript(key: String) -> ConfigObjValue? {
        entries.first(where: { $0.key == key })?.value
    }

    /// The line `key` was read from.
    public func line(of key: String) -> Int? {
        entries.first(where: { $0.key == key })?.line
    }

    /// The direct subsection called `name`.
    public func section(_ name: String) -> ConfigObjSection? {
        sections.first(where: { $0.name == name })
    }
}

/// A line of a configobj file that does not parse.
public struct ConfigObjSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The 1-based line number.
    public var line: Int
    /// What is wrong with it.
    public var problem: String

    /// `line N: problem`.
    public var description: String { "line \(line): \(problem)" }
}

/// Parses the subset of configobj that certbot writes: `#` comments (whole-line and after a value), `key = value`,
/// single- or double-quoted values, comma lists, and nested `[section]` / `[[subsection]]` headers.
///
/// Multi-line (triple-quoted) values, line continuations and duplicate keys or sections are refused rather than
/// guessed at: certbot never writes them.
public enum ConfigObjParser {
    /// Parses a whole file.
    /// - Parameter text: The file's text.
    /// - Returns: The root section.
    /// - Throws: ``ConfigObjSyntaxError`` for the first line that does not parse.
    public static func parse(_ text: String) throws(ConfigObjSyntaxError) -> ConfigObjSection {
        // stack[0] is the root; stack[d] the open section of depth d.
        var stack = [ConfigObjSection(name: "")]
        var lineNumber = 0
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            lineNumber += 1
            let line = rawLine.trimmingSpaces()
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("[") {
                let (depth, name) = try header(line, lineNumber: lineNumber)
                guard depth <= stack.count else {
                    throw ConfigObjSyntaxError(line: lineNumber, problem: "section \"\(name)\" is nested \(depth) deep inside a section of depth \(stack.count - 1)")
                }
                while stack.count > depth { close(&stack) }
                if stack[depth - 1].sections.contains(where: { $0.name == name }) {
                    throw ConfigObjSyntaxError(line: lineNumber, problem: "section \"\(name)\" appears twice")
                }
                stack.append(ConfigObjSection(name: name))
                continue
            }
            let entry = try keyValue(line, lineNumber: lineNumber)
            if stack[stack.count - 1][entry.key] != nil {
                throw ConfigObjSyntaxError(line: lineNumber, problem: "key \"\(entry.key)\" appears twice in the same section")
            }
            stack[stack.count - 1].entries.append(entry)
        }
        while stack.count > 1 { close(&stack) }
        return stack[0]
    }

    private static func close(_ stack: inout [ConfigObjSection]) {
        let finished = stack.removeLast()
        stack[stack.count - 1].sections.append(finished)
    }

    /// `[name]`, `[[name]]`, … with an optional comment after it.
    private static func header(_ line: Substring, lineNumber: Int) throws(ConfigObjSyntaxError) -> (depth: Int, name: String) {
        let depth = line.prefix(while: { $0 == "[" }).count
        var rest = line.dropFirst(depth)
        guard let close = rest.firstIndex(of: "]") else {
            throw ConfigObjSyntaxError(line: lineNumber, problem: "section header \"\(line)\" has no closing bracket")
        }
        let name = unquote(rest[..<close].trimmingSpaces())
        rest = rest[close...]
        let closing = rest.prefix(while: { $0 == "]" }).count
        let after = rest.dropFirst(closing).trimmingSpaces()
        guard closing == depth, after.isEmpty || after.hasPrefix("#") else {
            throw ConfigObjSyntaxError(line: lineNumber, problem: "section header \"\(line)\" has unbalanced brackets")
        }
        guard !name.isEmpty else {
            throw ConfigObjSyntaxError(line: lineNumber, problem: "section header \"\(line)\" has no name")
        }
        return (depth, name)
    }

    private static func keyValue(_ line: Substring, lineNumber: Int) throws(ConfigObjSyntaxError) -> ConfigObjSection.Entry {
        var key: String
        var rest: Substring
        if let quote = line.first, quote == "\"" || quote == "'" {
            guard let end = line.dropFirst().firstIndex(of: quote) else {
                throw ConfigObjSyntaxError(line: lineNumber, problem: "key has no closing \(quote)")
            }
            key = String(line[line.index(after: line.startIndex)..<end])
            rest = line[line.index(after: end)...].trimmingSpaces()
            guard rest.hasPrefix("=") else {
                throw ConfigObjSyntaxError(line: lineNumber, problem: "expected \"=\" after the key \"\(key)\"")
            }
            rest = rest.dropFirst()
        } else {
            guard let equals = line.firstIndex(of: "=") else {
                throw ConfigObjSyntaxError(line: lineNumber, problem: "expected \"key = value\", found \"\(line.prefix(60))\"")
            }
            key = String(line[..<equals].trimmingSpaces())
            rest = line[line.index(after: equals)...]
        }
        guard !key.isEmpty else {
            throw ConfigObjSyntaxError(line: lineNumber, problem: "a value has no key")
        }
        let value = try Self.value(rest.trimmingSpaces(), key: key, lineNumber: lineNumber)
        return ConfigObjSection.Entry(key: key, value: value, line: lineNumber)
    }

    /// The text after `=`: a single (possibly quoted) item, or items separated by commas, then an optional comment.
    private static func value(_ text: Substring, key: String, lineNumber: Int) throws(ConfigObjSyntaxError) -> ConfigObjValue {
        if text.hasPrefix("'''") || text.hasPrefix("\"\"\"") {
            throw ConfigObjSyntaxError(line: lineNumber, problem: "\(key): multi-line (triple-quoted) values are not supported")
        }
        var items: [String] = []
        var sawComma = false
        var rest = text
        while true {
            rest = rest.trimmingLeadingSpaces()
            if rest.isEmpty || rest.hasPrefix("#") { break }
            if rest.hasPrefix(",") {
                // `key = ,` is configobj's empty list; `a,,b` has an empty item.
                guard items.isEmpty, !sawComma else {
                    throw ConfigObjSyntaxError(line: lineNumber, problem: "\(key): empty item in a comma-separated list")
                }
                sawComma = true
                rest = rest.dropFirst()
                continue
            }
            if let quote = rest.first, quote == "\"" || quote == "'" {
                guard let end = rest.dropFirst().firstIndex(of: quote) else {
                    throw ConfigObjSyntaxError(line: lineNumber, problem: "\(key): value has no closing \(quote)")
                }
                items.append(String(rest[rest.index(after: rest.startIndex)..<end]))
                rest = rest[rest.index(after: end)...]
            } else {
                let end = rest.firstIndex(where: { $0 == "," || $0 == "#" }) ?? rest.endIndex
                items.append(String(rest[..<end].trimmingSpaces()))
                rest = rest[end...]
            }
            rest = rest.trimmingLeadingSpaces()
            if rest.isEmpty || rest.hasPrefix("#") { break }
            guard rest.hasPrefix(",") else {
                throw ConfigObjSyntaxError(line: lineNumber, problem: "\(key): unexpected text \"\(rest.prefix(40))\" after a quoted value")
            }
            sawComma = true
            rest = rest.dropFirst()
            let next = rest.trimmingLeadingSpaces()
            if next.hasPrefix(",") {
                throw ConfigObjSyntaxError(line: lineNumber, problem: "\(key): empty item in a comma-separated list")
            }
        }
        if sawComma { return .list(items) }
        return .string(items.first ?? "")
    }

    private static func unquote(_ text: Substring) -> String {
        if text.count >= 2, let first = text.first, first == "\"" || first == "'", text.last == first {
            return String(text.dropFirst().dropLast())
        }
        return String(text)
    }
}

extension Substring {
    fileprivate func trimmingLeadingSpaces() -> Substring {
        drop(while: { $0 == " " || $0 == "\t" })
    }

    fileprivate func trimmingSpaces() -> Substring {
        var trimmed = trimmingLeadingSpaces()
        while let last = trimmed.last, last == " " || last == "\t" || last == "\r" { trimmed = trimmed.dropLast() }
        return trimmed
    }
}
