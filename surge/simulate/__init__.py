"""`surge simulate`: replay a load through a model of the HPA controller, no cluster needed.

One job per module: hpa (the controller's decisions), replicas (its replica calculator),
capacity (what a pod serves and how slow it gets), trace (the load), run (the clock),
search (the grid and its Pareto front), output (JSON, tables, plots), commands (the CLI).
docs/simulator.md describes the model and where it differs from Kubernetes.
"""
