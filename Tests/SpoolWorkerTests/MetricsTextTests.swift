import SpoolSystem
import Testing
@testable import SpoolWorker

@Suite struct MetricsTextTests {
    @Test func histogramBucketsAreCumulativeAndTheSumKeepsItsUnit() {
        let h = Histogram.uploadDuration
        var totals = [UInt64](repeating: 0, count: 128)
        for value in [0.05, 0.1, 5.0, 601.0] { totals[Int(h.bucket(value))] += 1 }
        totals[Int(h.slots.upperBound - 2)] = 1_234_005  // milliseconds
        totals[Int(h.slots.upperBound - 1)] = 4
        let text = MetricsText.render(totals: totals, gauges: .init())
        for line in ["spool_upload_duration_seconds_bucket{le=\"0.1\"} 2", "spool_upload_duration_seconds_bucket{le=\"1.0\"} 2",
                     "spool_upload_duration_seconds_bucket{le=\"10.0\"} 3", "spool_upload_duration_seconds_bucket{le=\"600.0\"} 3",
                     "spool_upload_duration_seconds_bucket{le=\"+Inf\"} 4", "spool_upload_duration_seconds_sum 1234.005",
                     "spool_upload_duration_seconds_count 4"] {
            #expect(text.contains(line + "\n"), "\(line)")
        }
        #expect(MetricsText.decimal(1_500, scale: 1_000_000) == "0.001500")
        #expect(MetricsText.decimal(7, scale: 1) == "7")
    }

    @Test func histogramsDoNotOverlapAndFitTheBoard() {
        let all: [Histogram] = [.uploadDuration, .commit, .logSync, .fileSync, .commitBatch]
        let counters = Metric.allCases.map(\.rawValue).max() ?? 0
        #expect(counters + Int32(UploadDoor.allCases.count) <= all.map(\.base).min() ?? 0)
        for (a, b) in zip(all, all.dropFirst()) { #expect(a.slots.upperBound <= b.base) }
        #expect((all.last?.slots.upperBound ?? 0) <= 128)
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
