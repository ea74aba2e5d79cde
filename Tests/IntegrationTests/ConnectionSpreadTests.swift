import Foundation
import SpoolClient
import Testing

@Suite struct ConnectionSpreadTests {
    /// 200 connections held open at once over 4 workers: none may take more than half.
    @Test func connectionsSpreadAcrossWorkers() throws {
        let server = try Server(workers: 4, arguments: ["--max-client-connections", "1000"])
        var connections: [Connection] = []
        var perWorker: [String: Int] = [:]
        for _ in 0..<200 {
            let connection = try Connection(server: server.address)
            let worker = connection.greeting.fields["worker"] ?? "?"
            perWorker[worker, default: 0] += 1
            connections.append(connection)
        }
        print("connections per worker:", perWorker.values.sorted())
        #expect(perWorker.values.reduce(0, +) == 200)
        #expect(perWorker.count == 4, "\(perWorker)")
        #expect(perWorker.values.allSatisfy { $0 <= 100 }, "\(perWorker)")
        connections.removeAll()
        try server.stop()
    }
}
