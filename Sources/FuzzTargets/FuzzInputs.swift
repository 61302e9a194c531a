import Foundation

/// Finding and reading corpus files, for the regression runner and the replay test.
public enum FuzzInputs {
    /// The regular files among `paths`, with each directory replaced by the regular files directly in it, sorted;
    /// hidden files (`.gitkeep`) are left out.
    public static func files(in paths: [String]) -> [String] {
        var files: [String] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
            if !isDirectory.boolValue {
                files.append(path)
                continue
            }
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            for name in names.sorted() where !name.hasPrefix(".") {
                var nested: ObjCBool = false
                let file = path + "/" + name
                if FileManager.default.fileExists(atPath: file, isDirectory: &nested), !nested.boolValue {
                    files.append(file)
                }
            }
        }
        return files
    }

    /// The bytes of `file`, or `nil` when it cannot be read.
    public static func read(_ file: String) -> [UInt8]? {
        FileManager.default.contents(atPath: file).map { Array($0) }
    }
}
