import KafkaClient
print("tape (librdkafka \(LibrdkafkaInfo.version))")
