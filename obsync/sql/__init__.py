"""The SQL obsync reads: DDL statements and WHERE-clause row filters."""
