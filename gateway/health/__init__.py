"""Which variants may take traffic now: readiness and outlier ejection, outside the routing table.

State is keyed by ``(backend name, BackendModel)``, so it survives a swap of the routing table
for every target the new table still has.
"""
