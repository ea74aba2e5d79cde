import ArgumentParser
import SpoolStore
import SpoolSystem

extension Admin {
    struct Token: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Upload tokens: once one exists, clients must authenticate (spool --token, or SPOOL_TOKEN).",
            subcommands: [Create.self, List.self, Revoke.self]
        )

        struct Create: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Create a token and print its secret, once: only a hash of it is kept.")

            @OptionGroup var data: DataDirectoryOptions

            @Option(help: "A name for the token: who or what uses it.")
            var name: String

            @Flag(help: "An admin token sees every upload, not only its own.")
            var admin = false

            @Option(help: ArgumentHelp("Bytes this token may have stored or in flight: 500M, 10G.", valueName: "size"))
            var quotaBytes: SizeValue?

            @Option(help: "Files this token may have stored or in flight.")
            var quotaFiles: Int?

            func validate() throws {
                guard !name.isEmpty, name.count <= 64, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.@".contains($0) }) else {
                    throw ValidationError("--name: 1 to 64 letters, digits, - _ . @")
                }
                if let quotaFiles, quotaFiles < 1 { throw ValidationError("--quota-files must be at least 1") }
            }

            func run() throws {
                try reporting {
                    let store = try openStore(data)
                    if try store.tokens().contains(where: { $0.name == name }) {
                        throw AdminFailure("a token named \(name) exists already (revoked tokens keep their names)")
                    }
                    let quota = TokenQuota(bytes: quotaBytes?.bytes, files: quotaFiles)
                    print(try store.createToken(name: name, admin: admin, quota: quota))
                    printStandardError("token \(name) created; its secret is above and will not be shown again")
                }
            }
        }

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List tokens (never their secrets).")

            @OptionGroup var data: DataDirectoryOptions

            @Flag(help: "Print JSON.")
            var json = false

            func run() throws {
                try reporting {
                    let tokens = try openStore(data).tokens()
                    if json {
                        print(try jsonText(tokens, pretty: true))
                        return
                    }
                    print("NAME                  ADMIN  QUOTA BYTES   QUOTA FILES  CREATED                   REVOKED")
                    for t in tokens {
                        print(t.name.padding(toLength: 22, withPad: " ", startingAt: 0)
                              + (t.admin ? "yes" : "no").padding(toLength: 7, withPad: " ", startingAt: 0)
                              + (t.quotaBytes.map(String.init) ?? "-").padding(toLength: 14, withPad: " ", startingAt: 0)
                              + (t.quotaFiles.map(String.init) ?? "-").padding(toLength: 13, withPad: " ", startingAt: 0)
                              + t.createdAt.padding(toLength: 26, withPad: " ", startingAt: 0) + (t.revokedAt ?? "-"))
                    }
                }
            }
        }

        struct Revoke: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Revoke a token: it stops working at its next AUTH (connections already authenticated finish).")

            @OptionGroup var data: DataDirectoryOptions

            @Argument(help: "The token's name.")
            var name: String

            func run() throws {
                try reporting {
                    guard try openStore(data).revokeToken(name: name) else { throw AdminFailure("no active token named \(name)") }
                    print("revoked \(name)")
                }
            }
        }
    }
}
