import Testing
@testable import SpoolMaster

@Suite struct SocketActivationTests {
    func plan(_ environment: [String: String], pid: Int32 = 42) throws -> [String]? {
        try SocketActivation.plan(pid: pid, environment: environment)?.map { "\($0.fd)=\($0.kind.rawValue)" }
    }

    @Test func nothingHandedOverMeansBind() throws {
        #expect(try plan([:]) == nil)
        // Meant for another process: a parent that did not clear its variables.
        #expect(try plan(["LISTEN_PID": "41", "LISTEN_FDS": "1"]) == nil)
        #expect(try plan(["LISTEN_FDS": "1"]) == nil)
    }

    @Test func namedSocketsGoToTheirDoorsLineFirst() throws {
        #expect(try plan(["LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "http:line"]) == ["4=line", "3=http"])
        #expect(try plan(["LISTEN_PID": "42", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "line"]) == ["3=line"])
    }

    @Test func unnamedSocketsAreTakenInOrder() throws {
        #expect(try plan(["LISTEN_PID": "42", "LISTEN_FDS": "2"]) == ["3=line", "4=http"])
        // systemd names a socket after its unit when FileDescriptorName= is not set.
        #expect(try plan(["LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "spoold.socket:spoold.socket"]) == ["3=line", "4=http"])
        #expect(try plan(["LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "x:line"]) == ["4=line", "3=http"])
        #expect(try plan(["LISTEN_PID": "42", "LISTEN_FDS": "3"]) == ["3=line", "4=http", "5=metrics"])
    }

    @Test func theMetricsListenerIsTakenByName() throws {
        let taken = try plan(["LISTEN_PID": "42", "LISTEN_FDS": "3", "LISTEN_FDNAMES": "metrics:line:http"])
        #expect(taken?.first == "4=line")
        #expect(Set(taken ?? []) == ["3=metrics", "4=line", "5=http"])
    }

    @Test func whatCannotBeServedIsRefusedWithAReason() {
        func refusal(_ environment: [String: String]) -> String? {
            do { _ = try SocketActivation.plan(pid: 42, environment: environment) } catch { return error.description }
            return nil
        }
        #expect(refusal(["LISTEN_PID": "42", "LISTEN_FDS": "4"])?.contains("4 sockets were passed; spoold takes three at most") == true)
        #expect(refusal(["LISTEN_PID": "42", "LISTEN_FDS": "many"])?.contains("LISTEN_FDS=many is not a number") == true)
        #expect(refusal(["LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "line:line"])?.contains("two sockets are named line") == true)
        #expect(refusal(["LISTEN_PID": "42", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "http"])?.contains("no socket for the line protocol") == true)
    }
}
