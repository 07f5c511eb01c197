"""`make bench`: Surge's loadgen against other generators on one loopback target."""
