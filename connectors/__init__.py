"""Input and output connectors: the MySQL-protocol source (snapshot and binlog) and the Kafka sink."""
