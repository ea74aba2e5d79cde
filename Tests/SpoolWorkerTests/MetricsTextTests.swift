import SpoolSystem
import Testing
@testable import SpoolWorker

@Suite struct MetricsTextTests {
    @Test func histogramBucketsAreCumulativeAndTheSumIsInSeconds() {
        var totals = [UInt64](repeating: 0, count: 64)
        totals[Int(Metric.durationBucket0.rawValue)] = 2
        totals[Int(Metric.durationBucket2.rawValue)] = 1
        totals[Int(Metric.durationBucketInf.rawValue)] = 1
        totals[Int(Metric.durationMilliseconds.rawValue)] = 1_234_005
        totals[Int(Metric.durationCount.rawValue)] = 4
        let text = MetricsText.render(totals: totals, gauges: .init())
        for line in ["spool_upload_duration_seconds_bucket{le=\"0.1\"} 2", "spool_upload_duration_seconds_bucket{le=\"1.0\"} 2",
                     "spool_upload_duration_seconds_bucket{le=\"10.0\"} 3", "spool_upload_duration_seconds_bucket{le=\"600.0\"} 3",
                     "spool_upload_duration_seconds_bucket{le=\"+Inf\"} 4", "spool_upload_duration_seconds_sum 1234.005",
                     "spool_upload_duration_seconds_count 4"] {
            #expect(text.contains(line + "\n"), "\(line)")
        }
        #expect(UploadDuration.bucket(seconds: 0.1) == .durationBucket0)
        #expect(UploadDuration.bucket(seconds: 601) == .durationBucketInf)
    }

    @Test func everyFamilyHasHelpAndTypeAndCountersEndInTotal() {
        let text = MetricsText.render(totals: [], gauges: .init())
        for line in text.split(separator: "\n") where line.hasPrefix("# TYPE ") {
            let parts = line.split(separator: " ")
            #expect(text.contains("# HELP \(parts[2]) "))
            if parts[3] == "counter" { #expect(parts[2].hasSuffix("_total")) }
        }
    }
}
