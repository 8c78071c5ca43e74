import XCTest
final class IntegrationPlaceholderTests: XCTestCase { func testVersion() {} }
