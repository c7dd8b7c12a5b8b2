"""HTTP adapters: the FastAPI application, problem+json, staff tokens, idempotency."""
