"""`wren batch`: run the agent on many instances with many workers, resumably.

Every finished instance is written to `preds.json` and `exit_statuses.json` at once, atomically
(temporary file, then rename) under a lock, so a run killed at any moment (even `kill -9`) leaves
valid files; the next run skips what they hold and redoes only what was in flight, and the
instances that failed for infrastructure reasons (see wren.bench.outcomes). Each instance gets its
own directory with its trajectory and a log, which also receives the log records (tracebacks
included) of the thread that ran it instead of the console.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import threading
import time
import traceback
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from wren.bench.config import BenchWrenConfig
from wren.bench.outcomes import ENVIRONMENT, entry_failure, failure_groups, failure_kind
from wren.bench.progress import STOPPED_STATUSES, BatchInterrupted, ProgressHook, StopEvent
from wren.bench.rundir import PREDS_FILE, STATUS_FILE, RunDir
from wren.environments.processes import kill_child_sessions
from wren.exceptions import ConfigError, RunStopped
from wren.redact import current_redactor

LOCK_FILE = ".wren-batch.lock"
WORKSPACES_DIR = ".workspaces"

logger = logging.getLogger("wren.batch")


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w") as f:
        # Known secret values only: a patch must still apply byte for byte.
        json.dump(current_redactor(shapes=False).data(data), f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class PredictionsStore:
    """preds.json and exit_statuses.json of one output directory, updated one instance at a time."""

    def __init__(self, output_dir: Path):
        self.output_dir = output_dir
        run = RunDir(output_dir)
        self.preds_path, self.status_path = run.preds, run.exit_statuses
        self._lock = threading.Lock()
        self.preds: dict[str, dict[str, Any]] = self._load(self.preds_path)
        self.statuses: dict[str, dict[str, Any]] = self._load(self.status_path)

    @staticmethod
    def _load(path: Path) -> dict[str, Any]:
        if not path.exists():
            return {}
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path} is not valid JSON ({e}); fix or remove it to resume") from e
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold an object keyed by instance_id")
        return data

    def done(self) -> set[str]:
        """Instances with a prediction, except those that failed for infrastructure reasons."""
        return {i for i in self.preds if i not in self.statuses or entry_failure(self.statuses[i]) is None}

    def record(self, result: dict[str, Any]) -> None:
        instance_id = result["instance_id"]
        with self._lock:
            self.preds[instance_id] = {
                "instance_id": instance_id,
                "model_name_or_path": result["model_name_or_path"],
                "model_patch": result["model_patch"],
            }
            self.statuses[instance_id] = {
                k: result[k]
                for k in ("exit_status", "failure", "n_steps", "cost", "duration_s", "error")
                if k in result
            }
            # exit statuses first: a crash between the two writes redoes the instance, never loses it.
            _write_json_atomic(self.status_path, self.statuses)
            _write_json_atomic(self.preds_path, self.preds)

    def forget(self, instance_ids: set[str]) -> None:
        with self._lock:
            for instance_id in instance_ids:
                self.preds.pop(instance_id, None)
                self.statuses.pop(instance_id, None)
            _write_json_atomic(self.status_path, self.statuses)
            _write_json_atomic(self.preds_path, self.preds)

    def summary(self) -> dict[str, list[str]]:
        by_status: dict[str, list[str]] = {}
        for instance_id, entry in sorted(self.statuses.items()):
            by_status.setdefault(entry.get("exit_status", "?"), []).append(instance_id)
        return by_status


_captures: dict[int, list[str]] = {}  # thread ident -> log lines of the instance that thread runs
_captures_lock = threading.Lock()


class _CaptureHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        lines = _captures.get(record.thread or 0)
        if lines is not None:
            lines.append(self.format(record))


def _not_captured(record: logging.LogRecord) -> bool:
    return record.thread not in _captures


_CAPTURE = _CaptureHandler()
_CAPTURE.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))


@contextlib.contextmanager
def instance_log(lines: list[str]) -> Any:
    """Log records of this thread go to `lines`, tracebacks included, and not to the other handlers."""
    root = logging.getLogger()
    with _captures_lock:
        if not _captures:
            for handler in root.handlers:
                handler.addFilter(_not_captured)
            root.addHandler(_CAPTURE)
        _captures[threading.get_ident()] = lines
    try:
        yield
    finally:
        with _captures_lock:
            del _captures[threading.get_ident()]
            if not _captures:
                root.removeHandler(_CAPTURE)
                for handler in root.handlers:
                    handler.removeFilter(_not_captured)


def render_task(template: str, inst: dict[str, Any]) -> str:
    from jinja2 import Environment, StrictUndefined

    return (
        Environment(undefined=StrictUndefined, keep_trailing_newline=True)
        .from_string(template)
        .render(**inst)
    )


def process_instance(
    inst: dict[str, Any],
    config: BenchWrenConfig,
    output_dir: str | Path,
    *,
    progress: Any = None,
    stop: threading.Event | None = None,
    on_env: Any = None,
    runner: Any = None,
) -> dict[str, Any]:
    """Run the agent on one instance in its own workspace; return its prediction and exit status.

    `runner` replaces `run_agent` (same arguments plus `instance`, the instance dict; a result with
    exit_status, submission, n_steps and cost): `wren batch --search` passes a tree search this way.
    """
    instance_id = inst["instance_id"]
    inst_dir = RunDir(output_dir).instance_dir(instance_id)
    inst_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log_lines = [f"instance {instance_id} started {time.strftime('%Y-%m-%d %H:%M:%S')}"]
    result: dict[str, Any] = {
        "instance_id": instance_id,
        "model_name_or_path": config.model.name or config.model.model_class,
        "model_patch": "",
        "exit_status": "Error",
        "n_steps": 0,
        "cost": 0.0,
    }
    if progress is not None:
        progress.instance_started(instance_id)
    try:
        with instance_log(log_lines):
            _run_instance(
                inst, config, inst_dir, result, log_lines, stop=stop, on_env=on_env, progress=progress,
                runner=runner,
            )  # fmt: skip
    finally:
        result["duration_s"] = round(time.monotonic() - started, 3)
        log_lines.append(
            f"exit status {result['exit_status']} after {result['n_steps']} steps, cost ${result['cost']:.4f}, "
            f"{result['duration_s']} s"
        )
        (inst_dir / f"{instance_id}.log").write_text("\n".join(log_lines) + "\n")
        if progress is not None:
            progress.instance_finished(instance_id, result["exit_status"], result["cost"])
    return result


def _run_instance(
    inst: dict[str, Any],
    config: BenchWrenConfig,
    inst_dir: Path,
    result: dict[str, Any],
    log_lines: list[str],
    *,
    stop: threading.Event | None,
    on_env: Any,
    progress: Any,
    runner: Any = None,
) -> None:
    """The body of process_instance: fills `result` in place."""
    from wren.bench.specs import InstanceSpec, instance_spec
    from wren.bench.workspace import open_workspace
    from wren.models import get_model
    from wren.run import run_agent

    instance_id = inst["instance_id"]
    agent_started = False
    try:
        try:
            spec = instance_spec(inst, config.bench.specs)
        except ConfigError:
            spec = InstanceSpec()  # nothing to install; the agent works on the bare checkout
        with open_workspace(inst, spec, config.environment, config.bench.workspace) as ws:
            log_lines += ws.setup_log
            if on_env is not None:
                on_env(ws.env, True)
            try:
                if stop is not None and stop.is_set():
                    raise BatchInterrupted(
                        "batch stopped before the agent started", status=getattr(stop, "reason", "")
                    )
                task = render_task(config.bench.task_template, inst)
                agent_started = True
                # A runner of the caller's also gets the instance (a search judges by its tests).
                more = {"instance": inst} if runner is not None else {}
                agent_result = (runner or run_agent)(
                    config,
                    task,
                    env=ws.env,
                    model=get_model(config.model),
                    output_dir=inst_dir,
                    instance_id=instance_id,
                    hooks=[ProgressHook(progress, instance_id, stop)],
                    **more,
                )
            finally:
                if on_env is not None:
                    on_env(ws.env, False)
        result.update(
            exit_status=agent_result.exit_status,
            model_patch=agent_result.submission or "",
            n_steps=agent_result.n_steps,
            cost=agent_result.cost,
        )
        failure = failure_kind(agent_result.exit_status)
        if failure is not None:
            result["failure"] = failure
            result["error"] = _exit_reason(agent_result.messages)[:2000]
    except BatchInterrupted as e:
        result["exit_status"] = e.exit_status
    except Exception as e:  # one instance's failure is its exit status, not the batch's end
        result["exit_status"] = type(e).__name__
        # Before the agent ran, whatever failed was the workspace or its environment.
        result["failure"] = failure_kind(type(e).__name__) if agent_started else ENVIRONMENT
        result["error"] = str(e)[:2000]
        log_lines.append(traceback.format_exc())


def _exit_reason(messages: list[dict[str, Any]]) -> str:
    """Why the agent's run ended, from its exit message."""
    for message in reversed(messages):
        if message.get("role") == "exit":
            return str((message.get("extra") or {}).get("reason") or message.get("content") or "")
    return ""


class BatchRunner:
    """Runs instances with a pool of workers (threads, or Ray tasks) into one output directory."""

    def __init__(
        self,
        config: BenchWrenConfig,
        output_dir: str | Path,
        *,
        workers: int = 1,
        executor: str = "threads",
        ray_address: str | None = None,
        redo_existing: bool = False,
        progress: Any = None,
        runner: Any = None,
    ):
        if workers < 1:
            raise ConfigError(f"--workers must be at least 1, not {workers}")
        if executor not in ("threads", "ray"):
            raise ConfigError(f"--executor must be threads or ray, not {executor!r}")
        self.output_dir = Path(output_dir)
        self.config = config.model_copy(deep=True)
        workspace = self.config.bench.workspace
        # A folder under the user's root, removed when the batch ends (if empty); None for ours.
        self._batch_root: str | None = None
        if not workspace.root:
            # Checkouts live beside the results, so that those of a killed run are found and
            # removed by the next one instead of piling up in /tmp.
            workspace.root = str(self.output_dir / WORKSPACES_DIR)
        else:
            # Under a root of the user's, this batch's checkouts get a folder of their own (named
            # after the output directory), which the next run of the batch may remove whole.
            key = hashlib.sha256(str(self.output_dir.resolve()).encode()).hexdigest()[:12]
            workspace.root = self._batch_root = str(Path(workspace.root) / f"wren-batch-{key}")
        self.workers = workers
        self.executor = executor
        self.ray_address = ray_address
        self.redo_existing = redo_existing
        self.progress = progress
        self.runner = runner
        self.stop = StopEvent()
        self._envs: set[Any] = set()
        self._envs_lock = threading.Lock()

    def _track_env(self, env: Any, opened: bool) -> None:
        with self._envs_lock:
            (self._envs.add if opened else self._envs.discard)(env)

    @contextlib.contextmanager
    def _exclusive(self) -> Any:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with open(self.output_dir / LOCK_FILE, "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConfigError(f"another wren batch is writing to {self.output_dir}") from None
            yield

    def todo(self, instances: list[dict[str, Any]], store: PredictionsStore) -> list[dict[str, Any]]:
        ids = {inst["instance_id"] for inst in instances}
        if self.redo_existing:
            store.forget(ids & store.done())
            return list(instances)
        return [inst for inst in instances if inst["instance_id"] not in store.done()]

    def run(self, instances: list[dict[str, Any]]) -> dict[str, Any]:
        """Run every instance not already done; return a summary of exit statuses and failures."""
        from wren.bench.workspace import check_workspace_config

        check_workspace_config(self.config.environment, self.config.bench.workspace)
        self._prune_orphan_containers()
        with self._exclusive():
            # Holding the lock, no other runner uses these: what is left is a killed run's.
            shutil.rmtree(self.config.bench.workspace.root, ignore_errors=True)
            for name in (PREDS_FILE, STATUS_FILE):
                for tmp in self.output_dir.glob(f".{name}.*.tmp"):
                    tmp.unlink(missing_ok=True)
            store = PredictionsStore(self.output_dir)
            todo = self.todo(instances, store)
            skipped = len(instances) - len(todo)
            if self.progress is not None:
                self.progress.total = len(todo)
            started = time.monotonic()
            interrupted = False
            try:
                if self.executor == "ray":
                    self._run_ray(todo, store)
                else:
                    self._run_threads(todo, store)
            except (KeyboardInterrupt, RunStopped) as e:
                interrupted = True
                self._shut_down(getattr(e, "exit_status", BatchInterrupted.exit_status))
                if isinstance(e, RunStopped):
                    raise  # the process exits as the signal asks, once everything has ended
            if self._batch_root:
                with contextlib.suppress(OSError):
                    os.rmdir(self._batch_root)  # only when empty: the user's root is left as it was
            counts = Counter(entry.get("exit_status", "?") for entry in store.statuses.values())
            selected = {inst["instance_id"] for inst in instances}
            return {
                "output_dir": str(self.output_dir),
                "instances": len(instances),
                "skipped_existing": skipped,
                "ran": len(todo),
                "interrupted": interrupted,
                "exit_statuses": dict(sorted(counts.items())),
                "by_status": store.summary(),
                # Infrastructure failures among the selected instances, most common kind first.
                "failures": failure_groups({i: e for i, e in store.statuses.items() if i in selected}),
                "seconds": round(time.monotonic() - started, 3),
            }

    def _prune_orphan_containers(self) -> None:
        """Remove containers whose Wren process was killed before it could (an earlier run's)."""
        from wren.environments.docker import prune_containers

        kind = self.config.environment.get("environment_class")
        if kind not in ("docker", "podman"):
            return
        executable = self.config.environment.get("executable") or kind
        try:
            removed = prune_containers(executable)
        except Exception as e:  # an engine that does not answer fails the instances, not here
            logger.warning("could not look for orphaned containers: %s", e)
            return
        if removed:
            logger.warning("removed %d containers left by killed runs: %s", len(removed), ", ".join(removed))

    def _record(self, store: PredictionsStore, result: dict[str, Any]) -> None:
        if result["exit_status"] not in STOPPED_STATUSES:
            store.record(result)

    def _run_threads(self, todo: list[dict[str, Any]], store: PredictionsStore) -> None:
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="wren-batch")
        try:
            futures: set[Future] = {
                pool.submit(
                    process_instance,
                    inst,
                    self.config,
                    self.output_dir,
                    progress=self.progress,
                    stop=self.stop,
                    on_env=self._track_env,
                    runner=self.runner,
                )
                for inst in todo
            }
            while futures:
                # A short timeout keeps the main thread responsive to Ctrl-C.
                finished, futures = wait(futures, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in finished:
                    self._record(store, future.result())
        except BaseException as e:
            self.stop.stop(getattr(e, "exit_status", BatchInterrupted.exit_status))
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)

    def _shut_down(self, reason: str = BatchInterrupted.exit_status) -> None:
        """After Ctrl-C or a stop signal: stop the agents, remove containers, kill commands still running."""
        self.stop.stop(reason)
        with self._envs_lock:
            envs = list(self._envs)
        for env in envs:
            with contextlib.suppress(Exception):
                env.close()
        kill_child_sessions()
        for thread in threading.enumerate():
            if thread.name.startswith("wren-batch"):
                thread.join(timeout=30)
        kill_child_sessions()

    def _run_ray(self, todo: list[dict[str, Any]], store: PredictionsStore) -> None:
        try:
            import ray
        except ImportError as e:
            raise ConfigError("--executor ray needs Ray: pip install 'wren-agent[ray]'") from e
        if not ray.is_initialized():
            ray.init(address=self.ray_address, include_dashboard=False, log_to_driver=False)
        remote = ray.remote(num_cpus=0)(_ray_process_instance)
        config_data = self.config.model_dump()
        pending: dict[Any, str] = {}
        queue = list(todo)
        try:
            while queue or pending:
                # Keep `workers` tasks in flight, so Ray runs at most that many at once.
                while queue and len(pending) < self.workers:
                    inst = queue.pop(0)
                    if self.progress is not None:
                        self.progress.instance_started(inst["instance_id"])
                    ref = remote.remote(inst, config_data, str(self.output_dir), self.runner)
                    pending[ref] = inst["instance_id"]
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ref in ready:
                    instance_id = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as e:  # the worker process died
                        result = {
                            "instance_id": instance_id,
                            "model_name_or_path": self.config.model.name,
                            "model_patch": "",
                            "exit_status": type(e).__name__,
                            "failure": failure_kind(type(e).__name__),
                            "error": str(e)[:2000],
                        }
                    self._record(store, result)
                    if self.progress is not None:
                        self.progress.instance_finished(
                            instance_id, result["exit_status"], result.get("cost", 0.0)
                        )
        except BaseException:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            raise


def _ray_process_instance(
    inst: dict[str, Any], config_data: dict[str, Any], output_dir: str, runner: Any = None
) -> dict[str, Any]:
    config = BenchWrenConfig.model_validate(config_data)
    return process_instance(inst, config, output_dir, runner=runner)
