"""The fault scenarios of ``make chaos``, in the order they run; each module has a ``SCENARIO``."""
