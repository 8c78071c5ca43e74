import KafkaProtocol
import Logging
import NIOCore

/// ApiVersions and InitProducerId.
extension Broker {
    func apiVersions() -> ApiVersionsResponse { ApiVersionsResponse.supported() }

    /// An ApiVersions request at a version this broker does not support: UNSUPPORTED_VERSION, with
    /// what is supported (the caller encodes it as v0).
    func unsupportedApiVersions(version: Int16, clientId: String?) -> ApiVersionsResponse {
        logger.info("ApiVersions v\(version) is not supported; answering UNSUPPORTED_VERSION with a v0 body", metadata: ["client": "\(clientId ?? "")"])
        return ApiVersionsResponse.supported(errorCode: .unsupportedVersion)
    }

    /// A fresh producer id (epoch 0) for an idempotent producer; ids never repeat within a run and
    /// start from the wall clock so they do not repeat across restarts.
    ///
    /// v3+ with the producer's current id and epoch (KIP-360): an idempotent producer gets a fresh
    /// id (its sequences restart at 0); a transactional one must hold the current epoch.
    func initProducerId(_ r: InitProducerIdRequest, version: Int16 = 1) -> InitProducerIdResponse {
        if let transactionalId = r.transactionalId, !transactionalId.isEmpty {
            let current = r.producerId >= 0 ? (r.producerId, r.producerEpoch) : nil
            return initTransactionalProducerId(transactionalId, timeoutMs: r.transactionTimeoutMs, current: current, version: version)
        }
        let id = nextProducerId
        nextProducerId += 1
        producers.issued(producerId: id, now: clock.nowMs())
        logger.debug("InitProducerId", metadata: ["producerId": "\(id)", "transactionalId": "\(r.transactionalId ?? "-")"])
        return InitProducerIdResponse(errorCode: .none, producerId: id, producerEpoch: 0)
    }
}
