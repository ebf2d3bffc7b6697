"""Webhooks: endpoints, the event outbox and signed at-least-once delivery."""
