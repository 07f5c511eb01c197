"""The LoadTest's state machine: admission, phases and endings, the worker Job and
what its pods say, and collecting their summaries into results."""
