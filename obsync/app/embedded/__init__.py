"""Real servers on 127.0.0.1 (MariaDB, OceanBase seekdb, tansu Kafka) for the tests and `obsync demo`."""
