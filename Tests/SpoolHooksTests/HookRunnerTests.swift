import SpoolHooks
import SpoolSystem
import Testing

@Suite struct HookRunnerTests {
    func shell(_ line: String, _ hook: HookName = .preCreate) -> HookCommand {
        var config = HookConfiguration()
        config.commands[hook] = line
        return config.command(for: hook)!
    }

    @Test func inputOutputAndExitCode() {
        let result = HookRunner.run(shell("cat; echo \"hook=$SPOOL_HOOK\" >&2; exit 3"), input: Array("hello\n".utf8), timeout: 5)
        #expect(result.ending == .exited(3))
        #expect(result.output == "hello\n")
        #expect(result.errors == "hook=pre-create\n")
        #expect(result.summary == "exit 3: hook=pre-create")
        #expect(!result.succeeded)
    }

    @Test func aHookThatIgnoresItsInputStillSucceeds() {
        // More input than a pipe holds, never read: the runner must not block on it.
        let result = HookRunner.run(shell("exit 0"), input: [UInt8](repeating: 0x61, count: 1 << 20), timeout: 5)
        #expect(result.ending == .exited(0))
        #expect(result.succeeded)
    }

    @Test func aHookOverItsTimeIsKilledWithWhatItStarted() {
        let started = UTCTime.monotonic()
        let result = HookRunner.run(shell("sleep 30 & sleep 30"), input: [], timeout: 0.3)
        #expect(result.ending == .timedOut(0.3))
        #expect(UTCTime.monotonic() - started < 10)
        #expect(result.summary == "timed out after 0.3s")
    }

    @Test func aMissingCommandCannotRun() {
        var config = HookConfiguration()
        config.directory = "/nonexistent"
        #expect(config.command(for: .postFinish) == nil)
        let result = HookRunner.run(HookCommand(arguments: ["/nonexistent/hook"], hook: .postFinish), input: [], timeout: 1)
        guard case .cannotRun(let why) = result.ending else {
            Issue.record("expected cannotRun, got \(result.ending)")
            return
        }
        #expect(why.contains("No such file") == true)
    }

    @Test func aChattyHookIsReadToTheEndAndKeptShort() {
        let result = HookRunner.run(shell("head -c 100000 /dev/zero | tr '\\0' x; echo; echo done >&2"), input: [], timeout: 5)
        #expect(result.ending == .exited(0))
        #expect(result.output.utf8.count == HookRunner.kept)
        #expect(result.errors == "done\n")
    }

    @Test func verdicts() {
        #expect(PreCreateVerdict(HookResult(ending: .exited(0), output: "x", errors: "")) == .admit)
        #expect(PreCreateVerdict(HookResult(ending: .exited(1), output: "\n  no .exe files here\u{7}\nmore", errors: ""))
            == .refuse("no .exe files here"))
        #expect(PreCreateVerdict(HookResult(ending: .exited(2), output: "", errors: "oops"))
            == .refuse("refused by this server's pre-create hook (exit 2)"))
        #expect(PreCreateVerdict(HookResult(ending: .timedOut(5), output: "", errors: ""))
            == .refuse("refused: this server's pre-create hook did not decide within 5s"))
        #expect(PreCreateVerdict(HookResult(ending: .cannotRun("x"), output: "", errors: ""))
            == .refuse("refused: this server's pre-create hook cannot run"))
    }

    @Test func preCreateJSONHasEveryKey() {
        let request = PreCreateRequest(name: "a b.txt", size: nil, sha256: nil, client: "127.0.0.1:5", token: nil, door: "tus")
        #expect(String(decoding: request.json, as: UTF8.self)
            == #"{"client":"127.0.0.1:5","hook":"pre-create","name":"a b.txt","protocol":"tus","sha256":null,"size":null,"token":null}"# + "\n")
    }

    @Test func hookCommandsParse() {
        #expect(HookConfiguration.parseCommand("post-finish=/usr/bin/x --y") ?? (.preCreate, "") == (.postFinish, "/usr/bin/x --y"))
        #expect(HookConfiguration.parseCommand("post-done=x") == nil)
        #expect(HookConfiguration.parseCommand("pre-create=") == nil)
        #expect(HookName(eventKind: "completed") == .postFinish)
        #expect(HookName(eventKind: "created") == nil)
    }
}
