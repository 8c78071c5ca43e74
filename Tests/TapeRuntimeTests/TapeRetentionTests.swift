import TapeRuntime
import XCTest

/// `tape up --retention/--retention-size` as the embedded broker's topic configs.
final class TapeRetentionTests: XCTestCase {
    func testParsesDurationsAndSizesAndRefusesNonsense() {
        XCTAssertEqual(TapeRetention.parseDuration("3d"), 3 * 86_400_000)
        XCTAssertEqual(TapeRetention.parseDuration("12h"), 12 * 3_600_000)
        XCTAssertEqual(TapeRetention.parseDuration("90m"), 90 * 60_000)
        XCTAssertEqual(TapeRetention.parseDuration("500ms"), 500)
        XCTAssertEqual(TapeRetention.parseDuration("forever"), -1)
        for bad in ["", "3", "-3d", "0d", "d", "3w", "99999999999999999d", "1.5h"] {
            XCTAssertNil(TapeRetention.parseDuration(bad), bad)
        }
        XCTAssertEqual(TapeRetention.parseSize("5GB"), 5_000_000_000)
        XCTAssertEqual(TapeRetention.parseSize("2GiB"), 2 << 30)
        XCTAssertEqual(TapeRetention.parseSize("1.5 GB"), 1_500_000_000)
        XCTAssertEqual(TapeRetention.parseSize("unlimited"), -1)
        XCTAssertEqual(TapeRetention.parseSize("123456"), 123_456)
        for bad in ["", "GB", "-5GB", "0", "nanGB", "infGB", "1e30GB", "5PB"] {
            XCTAssertNil(TapeRetention.parseSize(bad), bad)
        }
    }

    func testSharesTheSizeOutPerPartitionAndKeepsTheGapLedgerWhole() throws {
        let topics: [(name: String, partitions: Int32)] = [("tape.trades", 3), ("tape.gaps", 1), ("tape.books", 3), ("tape.deadletter", 1)]
        let configs = TapeRetention(milliseconds: 86_400_000, totalBytes: 7_000_000_000).topicConfigs(topics)
        XCTAssertEqual(configs["tape.gaps"]?["retention.ms"], "-1")
        XCTAssertEqual(configs["tape.gaps"]?["retention.bytes"], "-1")
        let trades = try XCTUnwrap(configs["tape.trades"])
        XCTAssertEqual(trades["retention.ms"], "86400000")
        XCTAssertEqual(trades["retention.bytes"], "1000000000", "7 GB over 7 capped partitions")
        // Segments small enough for whole-segment deletion to keep to both limits.
        XCTAssertEqual(trades["segment.bytes"], "125000000")
        XCTAssertEqual(trades["segment.ms"], "10800000")
        let unlimited = TapeRetention(milliseconds: -1, totalBytes: -1).topicConfigs(topics)
        XCTAssertEqual(unlimited["tape.books"]?["retention.bytes"], "-1")
        XCTAssertNil(unlimited["tape.books"]?["segment.bytes"])
        XCTAssertNil(unlimited["tape.books"]?["segment.ms"])
        XCTAssertEqual(TapeRetention(milliseconds: 3 * 86_400_000, totalBytes: 5_000_000_000).description, "3 days, at most 5.0 GB")
    }
}
