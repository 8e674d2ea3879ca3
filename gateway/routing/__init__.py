"""Route decisions: which variant of which model serves a request."""
