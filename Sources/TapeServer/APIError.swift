import HTTPTypes
import Hummingbird
import MarketData
import NIOCore

/// An error the HTTP API returns as JSON:
/// `{"error":{"code":"bad_parameter","parameter":"interval","message":"..."}}`.
public struct APIError: Error, HTTPResponseError, Sendable, Hashable {
    /// A machine-readable kind; new codes may be added.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        public let name: String
        public let status: HTTPResponse.Status
        public var description: String { name }

        /// A query parameter is missing, unknown or malformed (400).
        public static let badParameter = Code(name: "bad_parameter", status: .badRequest)
        /// No or wrong bearer token (401).
        public static let unauthorized = Code(name: "unauthorized", status: .unauthorized)
        /// No such route (404).
        public static let notFound = Code(name: "not_found", status: .notFound)
        /// The route exists for GET only (405).
        public static let methodNotAllowed = Code(name: "method_not_allowed", status: .methodNotAllowed)
        /// The candle history could not be read (503).
        public static let historyUnavailable = Code(name: "history_unavailable", status: .serviceUnavailable)
    }

    public var code: Code
    /// The query parameter at fault, for `badParameter`.
    public var parameter: String?
    /// One sentence saying what was wrong and what to do.
    public var message: String

    public init(_ code: Code, parameter: String? = nil, _ message: String) {
        self.code = code
        self.parameter = parameter
        self.message = message
    }

    public static func badParameter(_ name: String, _ message: String) -> APIError {
        APIError(.badParameter, parameter: name, message)
    }

    public var status: HTTPResponse.Status { code.status }

    /// The JSON body.
    public var json: String {
        var out: [UInt8] = []
        JSONWriter.appendRaw("{\"error\":{\"code\":", to: &out)
        JSONWriter.appendString(code.name, to: &out)
        if let parameter {
            JSONWriter.appendRaw(",\"parameter\":", to: &out)
            JSONWriter.appendString(parameter, to: &out)
        }
        JSONWriter.appendRaw(",\"message\":", to: &out)
        JSONWriter.appendString(message, to: &out)
        JSONWriter.appendRaw("}}", to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
        if code == .unauthorized { headers[.wwwAuthenticate] = "Bearer realm=\"tape\"" }
        if code == .methodNotAllowed { headers[.allow] = "GET, HEAD" }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: json)))
    }
}
