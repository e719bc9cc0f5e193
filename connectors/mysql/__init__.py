"""The MySQL-protocol source: OceanBase MySQL tenants, MySQL and MariaDB."""
