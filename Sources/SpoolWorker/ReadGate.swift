import NIOCore

/// Whether a connection reads from its socket (NIO's `autoRead`), switched only
/// when the wanted state changes. The state is kept here rather than asked of
/// the channel each time: NIO's testing channels always answer that `autoRead`
/// is on, and the back-pressure tests (ConnectionHandlerTests) read it here.
struct ReadGate {
    private(set) var reading = true

    /// Returns true when reading was just turned back on.
    @discardableResult
    mutating func set(_ wanted: Bool, _ context: ChannelHandlerContext) -> Bool {
        guard wanted != reading, let options = context.channel.syncOptions else { return false }
        reading = wanted
        try? options.setOption(ChannelOptions.autoRead, value: wanted)
        return wanted
    }
}
