"""Local development tooling: a Kafka-compatible broker and a Confluent-compatible schema registry.

Nothing here is on the worker's runtime path. Tests and local runs use these real processes on loopback
instead of mocks; production talks to Confluent Schema Registry (or Karapace, Redpanda, Apicurio) and Kafka.
"""
