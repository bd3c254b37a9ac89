"""The model endpoint: the OpenAI-compatible client, its rate limiter and circuit breaker,
token and cost arithmetic."""
