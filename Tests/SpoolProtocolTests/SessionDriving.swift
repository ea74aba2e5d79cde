import NIOCore
@testable import SpoolProtocol

/// Feeds `text` to the session and collects every action it has ready.
func run(_ session: inout Session, _ text: String) -> [Session.Action] {
    session.receive(ByteBuffer(string: text))
    var actions: [Session.Action] = []
    while let action = session.next() { actions.append(action) }
    return actions
}

/// The reply codes among `actions`, in order.
func codes(_ actions: [Session.Action]) -> [Int] {
    actions.compactMap { if case .reply(let r) = $0 { r.code.rawValue } else { nil } }
}
