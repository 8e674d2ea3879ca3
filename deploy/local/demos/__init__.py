"""``make rollout-demo`` and ``make migrate-demo``: a rollout walked end to end on the local stack,
under load through three client protocols, with a printed timeline and a verdict."""
