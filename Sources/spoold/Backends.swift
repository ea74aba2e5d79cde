import Foundation
import SpoolPostgres
import SpoolS3
import SpoolStore

extension StoreBackends {
    /// The backends the settings name: S3 for `objects`, PostgreSQL for `database`
    /// (credentials from the environment: the `AWS_*` variables, PGPASSWORD).
    init(objects: String?, partSize: Int64, database: String?) throws {
        let environment = ProcessInfo.processInfo.environment
        self.init()
        if let objects { blobs = try S3BlobStore.maker(objects: objects, partSize: partSize, environment: environment) }
        if let database { catalog = try PostgresCatalog.location(database, environment: environment) }
    }
}
