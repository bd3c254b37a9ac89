"""The service loop: Kafka consumer, ingest handler, in-flight ledger, outbox and commit,
policies, dedup and work markers."""
