"""`wren learn probe` as a library call: the next-step check of one model on a run directory of
demonstrations, its outputs (items, sampled edits, corrective DPO pairs) and its summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from wren.exceptions import ConfigError
from wren.learn.probe import EditCheck
from wren.validation import StrictModel


class ProbeOptions(StrictModel):
    """What to probe, and what to write."""

    model: str
    """A GGUF to serve here, or the URL of an OpenAI-compatible server (http...)."""
    dataset: str = ""
    """The demonstrations' tasks (for the verdicts)."""
    workers: int = 4
    """Demonstrations probed at once."""
    n_ctx: int = 4096
    """Context per sequence of a served GGUF."""
    lora: list[str] = Field(default_factory=list)
    """Adapter GGUFs served over `model`."""
    edit_check: EditCheck = Field(default_factory=EditCheck)
    """Replies sampled at each edit step, applied and judged."""
    output: str = ""
    """JSONL of every step's reply beside the demonstration's (and OUTPUT.edits.json)."""
    pairs: str = ""
    """DPO pairs (dpo.jsonl format) where the reply missed the demonstration's command."""
    max_tokens: int = 3072
    """Longest pair (prompt cut to fit)."""

    @property
    def served_here(self) -> bool:
        return not self.model.startswith(("http://", "https://"))


def probe_demonstrations(demos: str | Path, options: ProbeOptions, base_config: Any) -> dict[str, Any]:
    """Probe the model on the demonstrations in run directory `demos` (those the judge resolved, or
    all while unjudged); `base_config` is the run config whose model settings every query uses.
    Writes what `options` asks for; the result's `pairs` is the number of DPO pairs written."""
    from wren.learn.data.episodes import load_judged_episodes
    from wren.learn.data.export import write_jsonl
    from wren.learn.probe import probe_config, probe_served

    if options.edit_check.samples and not base_config.bench.workspace.repos:
        raise ConfigError("--samples judges each sampled edit in a checkout: give --repos DIR")
    if options.lora and not options.served_here:
        raise ConfigError("--lora needs --model to be a GGUF served here, not a server's URL")

    def config_for(api_base: str) -> Any:
        return base_config.model_copy(
            update={"model": base_config.model.model_copy(update={"api_base": api_base})}
        )

    episodes = load_judged_episodes(demos, dataset=options.dataset or None)
    # Only the judge's resolved demonstrations, when it has judged them: the check asks for
    # the steps of a run that worked.
    episodes = [e for e in episodes if e.resolved or e.verdict is None]
    check = options.edit_check
    if not options.served_here:
        result = probe_config(episodes, config_for(options.model), workers=options.workers, edit_check=check)
    else:
        result = probe_served(
            options.model,
            episodes,
            config_for,
            n_ctx=options.n_ctx,
            workers=options.workers,
            lora=options.lora,
            edit_check=check,
        )
    if options.pairs:
        from wren.learn.data.export import ExportConfig
        from wren.learn.probe import corrective_pairs
        from wren.serve.convert import token_counter
        from wren.serve.embedded import default_model_path

        count = token_counter(default_model_path())
        records = corrective_pairs(
            episodes, result["items"], ExportConfig(max_tokens=options.max_tokens), count
        )
        result["pairs"] = write_jsonl(options.pairs, records)
    if options.output:
        write_jsonl(options.output, result["items"])
        if "edits" in result:
            Path(options.output).with_suffix(".edits.json").write_text(json.dumps(result["edits"], indent=2))
    return result


def probe_lines(result: dict[str, Any], edit_check: EditCheck) -> list[str]:
    """The probe's summary as lines of text: rates by kind of step, and the edit check's."""
    summary = result["summary"]
    lines = [
        f"{result['episodes']} demonstrations, {summary['overall']['n']} steps; same kind / exact command:"
    ]
    lines += [f"  {'all':8s} {summary['overall']['same_kind']:.2f} / {summary['overall']['exact']:.2f}"]
    for kind, rates in summary["by_kind"].items():
        given = ", ".join(f"{k} {n}" for k, n in summary["confusion"][kind].items())
        lines.append(
            f"  {kind:8s} {rates['same_kind']:.2f} / {rates['exact']:.2f}  (n={rates['n']}; replies: {given})"
        )
    if "edits" in result:
        edits, samples = result["edits"], edit_check.samples
        lines.append(
            f"edit step, {samples} samples at temperature {edit_check.temperature}: fixed {edits['fix_rate']:.2f} of "
            f"{edits['tasks']} tasks (pass@{samples}), {edits['sample_fix_rate']:.2f} of samples"
        )
    return lines
