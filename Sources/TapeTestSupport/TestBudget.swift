import Foundation

/// How much of each seeded property test and fuzz loop to run. `make test` runs all of it;
/// `make test-fast` sets `TAPE_TEST_BUDGET=quick` for a tenth (same seeds, first ones first), so
/// the inner loop stays short on a debug build.
package enum TestBudget {
    package static let isQuick = ProcessInfo.processInfo.environment["TAPE_TEST_BUDGET"] == "quick"

    /// `full` iterations, or a tenth of them (at least 1) when quick.
    package static func iterations(_ full: Int) -> Int { isQuick ? max(1, full / 10) : full }

    /// The seeds `full`, or the first eighth of them (at least 2) when quick.
    package static func seeds(_ full: ClosedRange<UInt64>) -> [UInt64] {
        let all = Array(full)
        return isQuick ? Array(all.prefix(max(2, all.count / 8))) : all
    }
}
