"""The Kafka side: topic creation, partition choice and the partition-aware, deduplicating sink."""
