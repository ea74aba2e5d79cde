import Foundation
import SpoolClient
import SpoolProtocol
import SpoolStore

/// An upload left hanging part-way, to see what stops and crashes do to it.
final class PartialUpload {
    let connection: Connection
    let bytes: [UInt8]
    let id: String
    let worker: Int32
    private(set) var sent = 0

    init(server: Server, size: Int, name: String = "partial.bin", seed: UInt64 = 42) throws {
        bytes = pseudoRandomBytes(count: size, seed: seed)
        connection = try Connection(server: server.address)
        worker = Int32(connection.greeting.fields["worker"] ?? "") ?? 0
        try connection.send(line: UploadRequest(name: name, size: Int64(size), sha256: sha256Hex(bytes)).line)
        let ready = try connection.readReply()
        guard ready.code == .sendBody, let id = ready.fields["id"] else { throw HarnessError("no 150: \(ready)") }
        self.id = id
    }

    /// Sends the next `count` bytes and waits until the worker has written them to its temporary file.
    func send(_ count: Int, directory: DataDirectory) throws {
        try connection.send(bytes: bytes[sent..<(sent + count)])
        sent += count
        let target = sent
        guard eventually(timeout: 10, { directory.tempBytes(id: id) == target }) else {
            throw HarnessError("the server did not write \(target) bytes of \(id)")
        }
    }

    func sendRest() throws {
        try connection.send(bytes: bytes[sent...])
        sent = bytes.count
    }
}

extension DataDirectory {
    /// Bytes in an upload's temporary file so far (0 when it has none).
    func tempBytes(id: String) -> Int {
        (try? FileManager.default.attributesOfItem(atPath: tempFile(id: id))[.size] as? Int) ?? 0
    }
}

extension Server {
    /// The newest upload, once its temporary file holds more than `bytes`.
    func newestUpload(pastBytes bytes: Int) throws -> UploadRecord? {
        guard let row = try uploads().first, directory.tempBytes(id: row.id) > bytes else { return nil }
        return row
    }

    func upload(id: String) throws -> UploadRecord? {
        try uploads().first { $0.id == id }
    }

    /// Waits for the master to exit by itself; returns its status.
    func waitForExit(timeout: TimeInterval) throws -> Int32 {
        guard eventually(timeout: timeout, { !process.isRunning }) else {
            throw HarnessError("spoold still running after \(Int(timeout)) s:\n\(log())")
        }
        return process.terminationStatus
    }
}
