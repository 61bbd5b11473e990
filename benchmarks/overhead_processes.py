"""The servers a benchmark starts as its own children on free ports: nginx, the fake upstream, sidecars, LiteLLM.

Everything lives in a scratch folder the caller owns; no system configuration is touched, and every child
is stopped by the caller through `Child.stop()`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import select
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from core.children import popen  # every server and load generator dies with the benchmark

HERE = Path(__file__).resolve().parent
NGINX_TEMPLATE = HERE / "nginx" / "mock.conf.in"
CHAT_MODEL = "bench-model"
STREAM_MODEL = "bench-stream"
PRICE = {"input_per_mtok": 0.15, "output_per_mtok": 0.6}
LOGGED, UNLOGGED, DIRECT, LITELLM = "sidecar", "sidecar-nolog", "direct", "litellm"


@dataclass
class Child:
    """A server started by the benchmark, with the URL it announced."""

    name: str
    process: subprocess.Popen[str]
    url: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_reachable(url: str) -> bool:
    """True when a Redis server answers PING at `url` (benchmarks then add their Redis variant)."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def child_env(*drop: str, **extra: str) -> dict[str, str]:
    """The environment for a benchmark's child process: this one's, without `TOLLGATE_*` (and any other
    `drop` prefixes) so a developer's own settings cannot change what is measured, plus `extra`."""
    prefixes = ("TOLLGATE_", *drop)
    return {**{key: value for key, value in os.environ.items() if not key.startswith(prefixes)}, **extra}


def start_child(
    name: str, command: list[str], ready: re.Pattern[str], log: Path | None = None, timeout_s: float = 60.0
) -> Child:
    """Start `command` (stderr to `log`) and wait for a stdout line matching `ready` (its group 1 is the URL)."""
    env = child_env()
    stderr = log.open("w") if log is not None else subprocess.DEVNULL
    process = popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        readable, _, _ = select.select([process.stdout], [], [], 0.2)
        if readable:
            line = process.stdout.readline()
            match = ready.search(line)
            if match:
                return Child(name, process, match.group(1))
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode} before it was ready: {command}")
    process.kill()
    raise RuntimeError(f"{name} did not announce itself within {timeout_s:g} s")


def start_nginx(scratch: Path) -> Child:
    """nginx with one worker answering a fixed chat.completion, in the foreground, all paths in `scratch`."""
    for sub in ("logs", "tmp"):
        (scratch / sub).mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = NGINX_TEMPLATE.read_text().replace("@DIR@", str(scratch)).replace("@PORT@", str(port))
    (scratch / "nginx.conf").write_text(conf)
    command = [
        "/usr/sbin/nginx",
        "-p",
        str(scratch),
        "-c",
        str(scratch / "nginx.conf"),
        "-e",
        str(scratch / "logs/error.log"),
    ]
    process = popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return Child("nginx", process, f"http://127.0.0.1:{port}/v1")
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("nginx did not start listening; see " + str(scratch / "logs/error.log"))


def start_sidecar(
    command: list[str], scratch: Path, chat_url: str, stream_url: str, *, logging_on: bool
) -> tuple[Child, Path]:
    """The sidecar routing CHAT_MODEL to nginx and STREAM_MODEL to the fake upstream; returns its data dir."""
    data_dir = scratch / ("logged" if logging_on else "unlogged")
    data_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "data_dir": str(data_dir / ".tollgate"),
        "models": {
            # Priced, so cost lookups never fall back to importing litellm's price map mid-run.
            CHAT_MODEL: {"deployments": [{"base_url": chat_url}], "price": PRICE},
            STREAM_MODEL: {"deployments": [{"base_url": stream_url, "model": "fake-model"}], "price": PRICE},
        },
        "traffic": {"enabled": logging_on},
    }
    config_path = data_dir / "tollgate.yaml"
    config_path.write_text(json.dumps(config))  # JSON is YAML
    ready = re.compile(r"listening on (http://\S+/v1)")
    arguments = [*command, "--config", str(config_path), "--port", "0"]
    child = start_child(LOGGED if logging_on else UNLOGGED, arguments, ready, log=data_dir / "sidecar.log")
    return child, data_dir / ".tollgate"


def tollgate() -> list[str]:
    """The `tollgate` command run by this interpreter (the project's venv)."""
    return [sys.executable, "-m", "core.cli"]


def start_fake_upstream(ttft_ms: float) -> Child:
    """The project's fake upstream streaming 8 tokens, 1 ms apart, after `ttft_ms`."""
    command = [*tollgate(), "fake-upstream", "--port", "0", "--ttft-ms", f"{ttft_ms:g}"]
    return start_child(
        "fake-upstream",
        [*command, "--inter-token-ms", "1", "--output-tokens", "8"],
        re.compile(r"(http://\S+/v1)"),
    )


@dataclass
class Targets:
    """Everything under test: the upstreams and the two sidecars."""

    nginx: Child
    fake: Child
    logged: Child
    unlogged: Child
    logged_dir: Path

    def chat_urls(self) -> dict[str, str]:
        return {DIRECT: self.nginx.url, LOGGED: self.logged.url, UNLOGGED: self.unlogged.url}

    def stream_urls(self) -> dict[str, str]:
        return {DIRECT: self.fake.url, LOGGED: self.logged.url, UNLOGGED: self.unlogged.url}

    def sidecars(self) -> dict[str, Child]:
        return {LOGGED: self.logged, UNLOGGED: self.unlogged}

    def stop(self) -> None:
        for child in (self.logged, self.unlogged, self.fake, self.nginx):
            child.stop()


def start_targets(scratch: Path, sidecar_command: list[str], ttft_ms: float) -> Targets:
    """nginx, the fake upstream and the two sidecars (log on, log off); nothing is left running on failure."""
    started: list[Child] = []
    try:
        nginx = start_nginx(scratch / "nginx")
        started.append(nginx)
        fake = start_fake_upstream(ttft_ms)
        started.append(fake)
        logged, logged_dir = start_sidecar(sidecar_command, scratch, nginx.url, fake.url, logging_on=True)
        started.append(logged)
        unlogged, _ = start_sidecar(sidecar_command, scratch, nginx.url, fake.url, logging_on=False)
        return Targets(nginx, fake, logged, unlogged, logged_dir)
    except BaseException:
        for child in reversed(started):
            child.stop()
        raise


@dataclass
class LiteLLMProxy:
    """A running LiteLLM proxy and the master key its clients must send."""

    child: Child
    master_key: str


def start_litellm(
    python: Path, scratch: Path, chat_url: str, stream_url: str, timeout_s: float = 180.0
) -> LiteLLMProxy:
    """LiteLLM's proxy (from its own venv's `python`) routing the same two models to the same upstreams.

    No database, local price map, telemetry off; it refuses to start without a master key, so one is made up.
    Readiness is polled on /health/liveliness because its startup banner is not a stable contract.
    """
    folder = scratch / "litellm"
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "model_list": [
            {"model_name": CHAT_MODEL, "litellm_params": {"model": "openai/bench-model", "api_base": chat_url, "api_key": "dummy"}},
            {"model_name": STREAM_MODEL, "litellm_params": {"model": "openai/fake-model", "api_base": stream_url, "api_key": "dummy"}},
        ],
        "litellm_settings": {"telemetry": False, "drop_params": True},
    }  # fmt: skip
    (folder / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    master_key = "sk-bench-" + secrets.token_hex(8)
    port = free_port()
    env = child_env(
        "DATABASE_URL",
        LITELLM_MASTER_KEY=master_key,
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_TELEMETRY="False",
        LITELLM_LOG="ERROR",
    )
    command = [str(python), "-m", "litellm.proxy.proxy_cli", "--config", str(folder / "config.yaml")]
    command += ["--host", "127.0.0.1", "--port", str(port), "--telemetry", "False"]
    log = (folder / "litellm.log").open("w")
    process = popen(command, stdout=log, stderr=subprocess.STDOUT, text=True, env=env, cwd=folder)
    child = Child(LITELLM, process, f"http://127.0.0.1:{port}/v1")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"LiteLLM proxy exited with code {process.returncode}; see {folder / 'litellm.log'}"
            )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/liveliness", timeout=1):
                return LiteLLMProxy(child, master_key)
        except OSError:
            time.sleep(0.5)
    child.stop()
    raise RuntimeError(f"LiteLLM proxy did not answer within {timeout_s:g} s; see {folder / 'litellm.log'}")
