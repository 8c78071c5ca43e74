import Foundation

/// Where the tests find the built `tape` executable. The test targets do not depend on the
/// executable target (a test bundle cannot link an executable usefully): `swift build
/// --build-tests` builds every product, and `tape` lands in the same products directory as the
/// test bundle.
package enum TapeBinary {
    /// `$TAPE_BINARY` when set (another build, e.g. a release one for measurements), else `tape`
    /// next to the test bundle, else in the directory above (where `xctest` is handed a bundle
    /// path), else `.build/debug/tape` of this checkout.
    package static func url() throws -> URL {
        if let other = ProcessInfo.processInfo.environment["TAPE_BINARY"], !other.isEmpty { return URL(fileURLWithPath: other) }
        let bundleDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let candidates = [
            bundleDirectory.appendingPathComponent("tape"),
            bundleDirectory.deletingLastPathComponent().appendingPathComponent("tape"),
            Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("tape"),
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.build/debug/tape").standardized,
        ]
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw TestSupportError("the tape executable was not found (tried \(candidates.map(\.path))); run `swift build --build-tests` first")
        }
        return found
    }

    /// The path of `url()`; stops the test run when there is no binary (nothing can run without it).
    package static var path: String {
        do {
            return try url().path
        } catch {
            preconditionFailure("\(error)")
        }
    }

    /// The built `tape` under a name of its own (a hard link, else a copy, in the temporary
    /// directory; the name holds no "tape"): on a shared machine, something that stops processes
    /// by name (`pkill tape`) must not take a test's brokers and processors with it. What
    /// `ChildProcess` runs by default. Copies older than an hour go.
    package static let privateCopy: String = {
        let original = URL(fileURLWithPath: path)
        let temporary = FileManager.default.temporaryDirectory
        let prefix = "tt-binary-"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: temporary.path)) ?? [] where name.hasPrefix(prefix) {
            let old = temporary.appendingPathComponent(name)
            if let date = (try? FileManager.default.attributesOfItem(atPath: old.path))?[.modificationDate] as? Date,
                date < Date().addingTimeInterval(-3_600)
            {
                try? FileManager.default.removeItem(at: old)
            }
        }
        let copy = temporary.appendingPathComponent("\(prefix)\(getpid())")
        try? FileManager.default.removeItem(at: copy)
        do {
            do {
                try FileManager.default.linkItem(at: original, to: copy)
            } catch {
                try FileManager.default.copyItem(at: original, to: copy)
            }
            return copy.path
        } catch {
            return original.path
        }
    }()
}

/// Other programs the tests run (kcat, python3, chromium), looked up on `$PATH`.
package enum Executables {
    /// The first executable `name` on `$PATH` (then /usr/bin, /usr/local/bin, /bin), or nil.
    package static func which(_ name: String) -> String? {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        for dir in path + ["/usr/bin", "/usr/local/bin", "/bin"] where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") {
            return "\(dir)/\(name)"
        }
        return nil
    }

    /// Like `which`, but a missing program is an error naming the package to install.
    package static func require(_ name: String) throws -> String {
        guard let found = which(name) else { throw TestSupportError("\(name) is not installed (apt-get install \(name))") }
        return found
    }
}

/// A test setup or harness failure (a child that did not start, a missing binary, a timeout).
package struct TestSupportError: Error, CustomStringConvertible {
    package var description: String
    package init(_ description: String) { self.description = description }
}
