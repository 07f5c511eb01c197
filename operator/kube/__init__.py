"""The only door to the Kubernetes API: the client, its errors (permanent or not),
the target's Lease (one run per target) and the operator's leader election."""
