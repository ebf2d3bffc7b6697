"""The durable job queue in Postgres and the loop that works through it."""
