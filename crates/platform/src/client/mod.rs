//! Outbound calls: deadline, retries, circuit breaker, concurrency limit, balancing.
