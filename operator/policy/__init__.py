"""The cluster admin's policy against a spec (pure rules and limits) and the lookups
those rules need (Services, resolved addresses, Secret labels, runs in flight)."""
