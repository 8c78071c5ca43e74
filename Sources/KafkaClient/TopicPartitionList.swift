import Crdkafka

/// Conversions between `rd_kafka_topic_partition_list_t` and Swift values.
enum TopicPartitionList {
    /// A new list owned by the caller (destroy with `rd_kafka_topic_partition_list_destroy`).
    static func make(_ items: [TopicPartitionOffset]) -> UnsafeMutablePointer<rd_kafka_topic_partition_list_t> {
        let list = rd_kafka_topic_partition_list_new(Int32(max(items.count, 1)))!
        for item in items {
            let tp = rd_kafka_topic_partition_list_add(list, item.topic, item.partition)!
            tp.pointee.offset = item.offset
        }
        return list
    }

    static func read(_ list: UnsafePointer<rd_kafka_topic_partition_list_t>?) -> [TopicPartitionOffset] {
        guard let list else { return [] }
        var result: [TopicPartitionOffset] = []
        result.reserveCapacity(Int(list.pointee.cnt))
        for i in 0..<Int(list.pointee.cnt) {
            let e = list.pointee.elems[i]
            result.append(.init(topic: String(cString: e.topic), partition: e.partition, offset: e.offset))
        }
        return result
    }

    /// The first per-partition error in a list, if any.
    static func firstError(_ list: UnsafePointer<rd_kafka_topic_partition_list_t>) -> (TopicPartitionOffset, rd_kafka_resp_err_t)? {
        for i in 0..<Int(list.pointee.cnt) {
            let e = list.pointee.elems[i]
            if e.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                return (.init(topic: String(cString: e.topic), partition: e.partition, offset: e.offset), e.err)
            }
        }
        return nil
    }
}
