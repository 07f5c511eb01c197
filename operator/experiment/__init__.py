"""The ScalingExperiment's state machine: stages, variants and their cost, the target's
owned fields with the three-way restore, child runs, and simulate-then-confirm."""
