import Synchronization

/// A value behind a lock, shareable with escaping and concurrent closures: the tests' collecting
/// sink (append from callbacks, read at the end).
package final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    package init(_ value: Value) { mutex = Mutex(value) }
    package func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }

    /// The current value (a copy).
    package var value: Value {
        get { mutex.withLock { $0 } }
        set { mutex.withLock { $0 = newValue } }
    }
}

extension Locked {
    /// Appends to a collected array.
    package func append<Element: Sendable>(_ element: Element) where Value == [Element] { mutex.withLock { $0.append(element) } }
    package func append<Element: Sendable>(contentsOf elements: [Element]) where Value == [Element] { mutex.withLock { $0.append(contentsOf: elements) } }
}
