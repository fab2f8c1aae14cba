//! The Kafka listener against real Kafka clients (kcat, confluent-kafka) and raw sockets.
