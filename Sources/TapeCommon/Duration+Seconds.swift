/// The one Duration → number conversion of the package (seconds as a Double, whole milliseconds).
/// `package` access: a public extension on a standard library type would leak into every user of
/// the KafkaClient product.
package extension Duration {
    /// The duration in seconds, with its fraction (attoseconds) kept as far as a Double holds it.
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) * 1e-18
    }

    /// The duration in whole milliseconds, truncated toward zero.
    var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds &* 1000 &+ attoseconds / 1_000_000_000_000_000
    }
}
