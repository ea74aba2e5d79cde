#if canImport(Glibc)
import Glibc
#endif

/// Which commands run for which hook, and how long each may take.
public struct HookConfiguration: Sendable, Equatable {
    /// Executables named after the hooks (`pre-create`, `post-finish`, …), as tusd's file hooks.
    public var directory: String?
    /// `--hook NAME=COMMAND`: a shell command line for one hook; wins over the directory.
    public var commands: [HookName: String] = [:]
    /// A pre-create hook that has not answered by then refuses the upload.
    public var preCreateTimeout: Double = 5
    /// A notification hook that has not finished by then is killed and counts as failed.
    public var timeout: Double = 600
    /// The wait before the first retry of a failed notification; it doubles up to `maxBackoff`.
    public var backoff: Double = 1
    public static let maxBackoff: Double = 300
    /// Pre-create hooks running at once in one worker; more wait their turn.
    public var concurrency = 4

    public init() {}

    /// The command for `hook`, looked up when it is needed: a file added to the
    /// directory counts from then on.
    public func command(for hook: HookName) -> HookCommand? {
        if let line = commands[hook] { return HookCommand(arguments: ["/bin/sh", "-c", line], hook: hook) }
        guard let directory else { return nil }
        let path = directory + "/" + hook.rawValue
        guard access(path, X_OK) == 0 else { return nil }
        return HookCommand(arguments: [path], hook: hook)
    }

    /// Whether a dispatcher is needed: some notification hook may be configured.
    public var hasNotifications: Bool {
        directory != nil || HookName.notifications.contains { commands[$0] != nil }
    }

    /// Whether uploads are to be checked by a pre-create hook.
    public var hasPreCreate: Bool { directory != nil || commands[.preCreate] != nil }

    /// `NAME=COMMAND` as `--hook` takes it.
    public static func parseCommand(_ text: String) -> (HookName, String)? {
        guard let equals = text.firstIndex(of: "="), let name = HookName(rawValue: String(text[..<equals])) else { return nil }
        let command = String(text[text.index(after: equals)...])
        return command.isEmpty ? nil : (name, command)
    }
}

/// One command to run for a hook.
public struct HookCommand: Sendable, Equatable {
    public var arguments: [String]
    public var hook: HookName

    public init(arguments: [String], hook: HookName) {
        (self.arguments, self.hook) = (arguments, hook)
    }
}
