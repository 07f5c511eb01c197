"""Alice, Surge's demo target: an AI support agent with known, tunable behaviour.

Start it with `surge demo-agent`, in-process with `running_agent(config)`, or as a
subprocess with `start_agent_process(args)`. See docs/agent.md for the timing semantics.
"""

from surge.agent.config import AgentConfig
from surge.agent.latency import LatencySpec, TokenSpec, parse_latency, parse_tokens
from surge.agent.pipeline import RequestRecord, agent_state
from surge.agent.process import start_agent_process, stop_agent_process
from surge.agent.server import build_app, running_agent, running_app

__all__ = [
    "AgentConfig",
    "LatencySpec",
    "RequestRecord",
    "TokenSpec",
    "agent_state",
    "build_app",
    "parse_latency",
    "parse_tokens",
    "running_agent",
    "running_app",
    "start_agent_process",
    "stop_agent_process",
]
