import Foundation
import PackagePlugin

/// Embeds the web page's files (Sources/SpoolWeb/Resources: HTML, CSS,
/// JavaScript) into the target as Swift source, each with its gzip, rebuilding
/// whenever one of them changes.
@main
struct EmbedWeb: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let directory = context.package.directoryURL.appending(path: "Sources/\(target.name)/Resources")
        let files = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { !$0.lastPathComponent.hasPrefix(".") }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedWeb.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(files.count) web files",
                executable: try context.tool(named: "EmbedTool").url,
                arguments: ["web", output.path] + files.map(\.path),
                inputFiles: files,
                outputFiles: [output]
            )
        ]
    }
}
