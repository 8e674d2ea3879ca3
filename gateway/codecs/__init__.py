"""Pure two-way translations between wire formats and :mod:`gateway.inference` types."""
