"""The model endpoint: the OpenAI-compatible client, its rate limiter and circuit breaker,
token and cost arithmetic."""

from workers.model.circuit import CircuitBreaker, CircuitState
from workers.model.client import ModelClient, http_client_from_settings, model_client_from_settings
from workers.model.cost import Prices, price_usage
from workers.model.ratelimit import RateLimiter
from workers.model.tokens import frame_tokens, image_tokens, smart_resize

__all__ = [
    "CircuitBreaker",
    "CircuitState",
    "ModelClient",
    "Prices",
    "RateLimiter",
    "frame_tokens",
    "http_client_from_settings",
    "image_tokens",
    "model_client_from_settings",
    "price_usage",
    "smart_resize",
]
