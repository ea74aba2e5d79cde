/// A catalog's rows in a neutral form, to copy them into another catalog
/// (`spoold admin copy-to`): uploads in a final state, the whole event log with
/// its numbers, the tokens, the hook cursor. The running totals follow from the
/// copied rows (the target's triggers); failed hook deliveries are not copied.
public struct CatalogRows: Sendable {
    public struct Table: Sendable {
        public let name: String
        public let columns: [String]
        public var rows: [[SQLValue]]
    }

    public var tables: [Table]
    /// Uploads still on their way (`receiving`, `interrupted`): not copied, since
    /// their staging stays where it is.
    public var skippedInProgress: Int

    public func count(_ table: String) -> Int { tables.first { $0.name == table }?.rows.count ?? 0 }
}

extension SQLCatalog {
    /// What is copied: each table, its columns (true: an integer), which rows, in what order.
    static var copied: [(table: String, columns: [(name: String, integer: Bool)], condition: String, order: String)] {
        [
            ("uploads",
             [("id", false), ("name", false), ("size", true), ("received", true), ("sha256", false), ("client_ip", false),
              ("client_port", true), ("state", false), ("error", false), ("worker_pid", true), ("created_at", false),
              ("updated_at", false), ("finished_at", false), ("token", false), ("tus_metadata", false), ("length_deferred", true)],
             "state NOT IN ('receiving', 'interrupted')", "rowid"),
            ("events",
             [("seq", true), ("at", false), ("upload_id", false), ("kind", false), ("actor", false), ("client", false), ("detail", false)],
             "1 = 1", "seq"),
            ("tokens",
             [("name", false), ("hash", false), ("admin", true), ("quota_bytes", true), ("quota_files", true), ("created_at", false),
              ("revoked_at", false)],
             "1 = 1", "name"),
            ("hook_cursor", [("id", true), ("seq", true), ("updated_at", false)], "1 = 1", "id"),
        ]
    }

    public func exportRows() throws(StoreError) -> CatalogRows {
        try locked { db throws(StoreError) in
            var tables: [CatalogRows.Table] = []
            for (table, columns, condition, order) in Self.copied {
                let rows = try db.query(
                    "SELECT \(columns.map(\.name).joined(separator: ", ")) FROM \(table) WHERE \(condition) ORDER BY \(order)"
                ) { row in
                    columns.indices.map { index -> SQLValue in
                        let column = Int32(index)
                        if row.isNull(column) { return .null }
                        return columns[index].integer ? .integer(row.int(column)) : .text(row.text(column))
                    }
                }
                tables.append(CatalogRows.Table(name: table, columns: columns.map(\.name), rows: rows))
            }
            let inProgress = try db.query("SELECT count(*) FROM uploads WHERE state IN ('receiving', 'interrupted')") { $0.int(0) }
            return CatalogRows(tables: tables, skippedInProgress: Int(inProgress.first ?? 0))
        }
    }

    /// Writes copied rows into this catalog, which must hold no upload, event or
    /// token yet, in one durable transaction; new events then number on from the
    /// copied ones.
    public func importRows(_ copy: CatalogRows) throws(StoreError) {
        try locked { db throws(StoreError) in
            try db.transaction(durable: true) { () throws(StoreError) in
                let present = try db.query(
                    "SELECT (SELECT count(*) FROM uploads) + (SELECT count(*) FROM events) + (SELECT count(*) FROM tokens)"
                ) { $0.int(0) }.first ?? 0
                guard present == 0 else {
                    throw .copyTargetNotEmpty(path: db.path)
                }
                for table in copy.tables {
                    let sql = "INSERT INTO \(table.name) (\(table.columns.joined(separator: ", "))) VALUES ("
                        + table.columns.map { _ in "?" }.joined(separator: ", ") + ")"
                    for row in table.rows { try db.run(sql, row) }
                }
                try db.continueIdentity(table: "events", column: "seq")
            }
        }
    }
}
