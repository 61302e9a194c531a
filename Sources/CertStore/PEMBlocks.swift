/// One `-----BEGIN X-----` … `-----END X-----` block found in a PEM text.
package struct PEMBlock: Sendable, Equatable {
    /// The label between `BEGIN ` and the dashes, e.g. `CERTIFICATE`.
    package var label: String
    /// The block itself, lines joined by `\n`, ending with `\n`.
    package var text: String
}

/// Why a PEM text could not be split into blocks.
package struct PEMSplitError: Error, CustomStringConvertible, Sendable {
    package var description: String
}

/// Splits PEM text into its blocks, keeping each block's text (normalised to `\n` line ends).
///
/// Text outside blocks (OpenSSL's `subject=` or `Bag Attributes` lines) is ignored. A `BEGIN` without its
/// `END` (a truncated file), an `END` without a `BEGIN` and mismatched labels are errors, so a half-written
/// file is never mistaken for a shorter valid one. Package visible for the fuzz targets.
package enum PEMBlocks {
    package static func split(_ text: String) throws(PEMSplitError) -> [PEMBlock] {
        var blocks: [PEMBlock] = []
        var open: (label: String, lines: [Substring], line: Int)?
        var lineNumber = 0
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            lineNumber += 1
            let line = rawLine.trimmingTrailingWhitespace()
            if let label = line.pemLabel(marker: "BEGIN") {
                if let open {
                    throw PEMSplitError(description: "line \(lineNumber): BEGIN \(label) inside BEGIN \(open.label) from line \(open.line) (truncated block?)")
                }
                open = (label, [line], lineNumber)
            } else if let label = line.pemLabel(marker: "END") {
                guard let current = open else {
                    throw PEMSplitError(description: "line \(lineNumber): END \(label) without BEGIN")
                }
                guard current.label == label else {
                    throw PEMSplitError(description: "line \(lineNumber): END \(label) closes BEGIN \(current.label) from line \(current.line)")
                }
                let body = current.lines + [line]
                blocks.append(PEMBlock(label: label, text: body.joined(separator: "\n") + "\n"))
                open = nil
            } else if open != nil {
                if !line.isEmpty { open!.lines.append(line) }
            }
        }
        if let open {
            throw PEMSplitError(description: "BEGIN \(open.label) on line \(open.line) has no END (truncated)")
        }
        return blocks
    }
}

extension Substring {
    fileprivate func trimmingTrailingWhitespace() -> Substring {
        var end = endIndex
        while end > startIndex, let scalar = self[index(before: end)].unicodeScalars.first, scalar == " " || scalar == "\t" {
            end = index(before: end)
        }
        return self[startIndex..<end]
    }

    /// For `-----BEGIN X-----` with `marker` "BEGIN", returns `X`.
    fileprivate func pemLabel(marker: String) -> String? {
        let prefix = "-----\(marker) "
        guard hasPrefix(prefix), hasSuffix("-----"), count >= prefix.count + 5 else { return nil }
        return String(dropFirst(prefix.count).dropLast(5))
    }
}

extension String {
    /// The text with a final `\n` added when missing (empty stays empty).
    var withTrailingNewline: String {
        isEmpty || hasSuffix("\n") ? self : self + "\n"
    }
}
