"""`surge demo-agent` flags and ALICE_* env vars reach the config; bad values exit 2."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import surge.agent.server
from surge.agent.config import AgentConfig
from surge.agent.latency import LatencySpec, TokenSpec
from surge.cli import app


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[AgentConfig]:
    seen: list[AgentConfig] = []

    async def fake_serve(config: AgentConfig) -> None:
        seen.append(config)

    monkeypatch.setattr(surge.agent.server, "serve", fake_serve)
    return seen


def test_flags(captured: list[AgentConfig]) -> None:
    args = [
        "demo-agent", "--port", "9000", "--cpu-ms", "20", "--latency", "fixed:50ms",
        "--stall-every", "4s", "--stall-for", "1s", "--max-concurrency", "4",
        "--queue-size", "8", "--error-rate", "0.1", "--ready-delay", "3s",
        "--ttft", "200ms", "--tpot", "25ms", "--output-tokens", "uniform:8-16",
        "--seed", "42",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert captured == [
        AgentConfig(
            port=9000,
            cpu_ms=20.0,
            latency=LatencySpec("fixed", value_s=0.05),
            stall_every_s=4.0,
            stall_for_s=1.0,
            max_concurrency=4,
            queue_size=8,
            error_rate=0.1,
            ready_delay_s=3.0,
            ttft=LatencySpec("fixed", value_s=0.2),
            tpot_s=0.025,
            output_tokens=TokenSpec(8, 16),
            seed=42,
        )
    ]


def test_env_vars(captured: list[AgentConfig]) -> None:
    env = {
        "ALICE_CPU_MS": "7.5",
        "ALICE_LATENCY": "lognormal:median=80ms,sigma=0.5",
        "ALICE_ERROR_RATE": "0.25",
        "ALICE_TPOT": "10ms",
        "ALICE_SEED": "3",
        "ALICE_HOST": "0.0.0.0",
    }
    result = CliRunner().invoke(app, ["demo-agent"], env=env)
    assert result.exit_code == 0, result.output
    (config,) = captured
    assert config.cpu_ms == 7.5
    assert config.latency == LatencySpec("lognormal", median_s=0.08, sigma=0.5)
    assert (config.error_rate, config.tpot_s, config.seed, config.host) == (
        0.25,
        0.01,
        3,
        "0.0.0.0",
    )


@pytest.mark.parametrize(
    "bad",
    [
        ["--latency", "gamma:k=1"],
        ["--error-rate", "1.5"],
        ["--stall-every", "1s", "--stall-for", "2s"],
        ["--tpot", "10"],
        ["--output-tokens", "uniform:9-3"],
        ["--model", "gpt"],
        ["--cpu-ms", "-1"],
        ["--gpu-slots", "-1"],
        ["--gpu-slots", "4", "--max-concurrency", "4"],
    ],
)
def test_bad_values_exit_2(captured: list[AgentConfig], bad: list[str]) -> None:
    result = CliRunner().invoke(app, ["demo-agent", *bad])
    assert result.exit_code == 2, result.output
    assert captured == []


def test_gpu_slots_mode_defaults_cpu_to_zero(captured: list[AgentConfig]) -> None:
    result = CliRunner().invoke(app, ["demo-agent", "--gpu-slots", "4", "--latency", "fixed:1s"])
    assert result.exit_code == 0, result.output
    (config,) = captured
    assert (config.gpu_slots, config.slots, config.max_concurrency, config.cpu_ms) == (4, 4, 0, 0)


def test_gpu_slots_keeps_an_explicit_cpu_cost(captured: list[AgentConfig]) -> None:
    env = {"ALICE_GPU_SLOTS": "2", "ALICE_CPU_MS": "1.5"}
    result = CliRunner().invoke(app, ["demo-agent"], env=env)
    assert result.exit_code == 0, result.output
    (config,) = captured
    assert (config.slots, config.cpu_ms) == (2, 1.5)


def test_without_gpu_slots_cpu_keeps_its_default(captured: list[AgentConfig]) -> None:
    result = CliRunner().invoke(app, ["demo-agent", "--max-concurrency", "3"])
    assert result.exit_code == 0, result.output
    (config,) = captured
    assert (config.slots, config.cpu_ms) == (3, 10.0)


def test_gpu_slots_and_max_concurrency_name_both_flags() -> None:
    with pytest.raises(ValueError, match="--gpu-slots or --max-concurrency"):
        AgentConfig(gpu_slots=2, max_concurrency=2)


def test_summary_is_loggable() -> None:
    summary = AgentConfig(seed=1).summary()
    assert summary["latency"] == "lognormal:median=50ms,sigma=0.4"
    assert summary["output_tokens"] == "uniform:16-64"
    assert summary["ttft"] == "fixed:150ms"
