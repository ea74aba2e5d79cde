/// The hooks a server runs (docs/HOOKS.md): one that may refuse an upload before
/// it is admitted, and four told about what happened after.
public enum HookName: String, CaseIterable, Sendable, Codable {
    case preCreate = "pre-create"
    case postFinish = "post-finish"
    case postFail = "post-fail"
    case postExpire = "post-expire"
    case postDelete = "post-delete"

    /// The notification an event of the log leads to; nil for the events no hook hears
    /// (created, resumed, interrupted, lost, …).
    public init?(eventKind: String) {
        switch eventKind {
        case "completed": self = .postFinish
        case "failed": self = .postFail
        case "expired": self = .postExpire
        case "deleted": self = .postDelete
        default: return nil
        }
    }

    public static let notifications: [HookName] = [.postFinish, .postFail, .postExpire, .postDelete]
}
