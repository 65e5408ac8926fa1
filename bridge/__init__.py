"""The bridge: consumes job messages from RabbitMQ, runs them on the actor pool, records the
outcome in the database and publishes status events. Imports `jobs` and `actors.pool` only."""
