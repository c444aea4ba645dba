"""The Markdown document of a reproduction table (what ``table.md`` and the command print)."""

from __future__ import annotations

import math
from typing import Any

from ochmr_lit.eval.buckets import describe_occlusion_buckets
from ochmr_lit.eval.references import COMPARED_METRICS, constant_verdict


def format_cell(summary: dict[str, Any], digits: int = 1) -> str:
    """``mean ± sd`` over seeds (``mean`` alone for one seed), ``-`` when nothing was measured."""
    mean, sd, values = summary["mean"], summary["sd"], summary["values"]
    if mean is None or not math.isfinite(mean):
        return "-"
    if len(values) > 1:
        return f"{mean:.{digits}f} ± {sd:.{digits}f}"
    return f"{mean:.{digits}f}"


def _joined(overrides: list[str] | None) -> str:
    return " ".join(overrides or []) or "none"


def _command(result: dict[str, Any]) -> str:
    seeds = result.get("partial_of") or result["seeds"]
    parts = [f"python -m ochmr_lit.reproduce table={result['table']}", f"preset={result['preset']}",
             f"seeds=[{','.join(str(s) for s in seeds)}]"]
    if result.get("context_checkpoint"):
        parts.append(f"context_checkpoint={result['context_checkpoint']}")
    return " ".join(parts)


def mpjpe_gain(result: dict[str, Any], baseline: str = "spin", method: str = "ochmr_predicted_d2",
               metric: str = "mpjpe_heavy") -> dict[str, Any] | None:
    """Relative error reduction of ``method`` against ``baseline`` on ``metric``, per seed and for the means.

    Returns None when the table lacks either row or the metric (e.g. the paper preset).
    """
    rows = {row["key"]: row for row in result.get("rows", [])}
    if baseline not in rows or method not in rows or metric not in rows[baseline]["cells"]:
        return None
    base, ours = rows[baseline]["cells"][metric], rows[method]["cells"][metric]
    per_seed = [1.0 - o / b if b else math.nan for b, o in zip(base["values"], ours["values"], strict=True)]
    return {"metric": metric, "baseline": baseline, "method": method, "per_seed": per_seed,
            "of_means": 1.0 - ours["mean"] / base["mean"] if base["mean"] else math.nan}


def versus_constant(result: dict[str, Any]) -> dict[str, str]:
    """Row key -> the ``vs constant`` cell: each model row against the ``constant`` row of ``result["references"]``.

    A model row whose seed-mean MPJPE or PA-MPJPE (any column measuring one, e.g. ``mpjpe`` or
    ``3dpw_pc/pa_mpjpe``) is not lower than the constant's is flagged ``⚠ not better than constant``; else
    ``better`` (``-`` when nothing is comparable); reference rows say ``reference``. {} without a constant row.
    """
    rows = {row["key"]: row for row in [*result.get("rows", []), *result.get("references", [])]}
    constant = rows.get("constant")
    if constant is None or not constant.get("reference"):
        return {}
    keys = [key for _, key in result["columns"] if key.rpartition("/")[2] in COMPARED_METRICS]
    means = {key: {k: cell["mean"] for k, cell in row["cells"].items()} for key, row in rows.items()}
    return {key: "reference" if row.get("reference") else constant_verdict(means[key], means["constant"], keys)
            for key, row in rows.items()}


def _mesh_section(result: dict[str, Any]) -> list[str]:
    headers = [h for h, _ in result["columns"]]
    verdicts = versus_constant(result)
    extra = ["vs constant"] if verdicts else []
    lines = ["| method | context | CoNorm | " + " | ".join([*headers, *extra]) + " |",
             "|" + "---|" * (3 + len(headers) + len(extra))]
    for row in [*result["rows"], *result.get("references", [])]:
        depths = ",".join(str(d) for d in row["depths"]) or "-"
        cells = [format_cell(row["cells"][key]) for _, key in result["columns"]]
        cells += [verdicts[row["key"]]] if verdicts else []
        lines.append(f"| {row['label']} | {row['context']} | {depths} | " + " | ".join(cells) + " |")
    if verdicts:
        lines += ["", "constant: every person gets the mean pose, shape and camera the regressor starts from (no "
                  "image); oracle: the same with each person's true global orientation. Both come from the first "
                  "run's test evaluation; a row that does not lower MPJPE or PA-MPJPE below constant is flagged."]
    counts = result["rows"][0].get("counts") or {}
    if any(v is not None for v in counts.values()):
        lines += ["", "People per bucket (test split): " + ", ".join(
            f"{k.removeprefix('count_')} {v}" for k, v in counts.items() if v is not None)
            + f" ({describe_occlusion_buckets(percent=True)} hidden by others; distractor: the crop shows more "
            "visible pixels of one other person than of the target, across the occlusion buckets)."]
    if any(row.get("diagnostic") for row in result["rows"]):
        exact = any(row.get("diagnostic") == "exact" for row in result["rows"])
        lines += ["", "Context diagnostics: the rows \"context shuffled\" evaluate the same checkpoints with another "
                  "person's centermaps (the batch rolled by one), \"context zeroed\" with zero maps; a model that "
                  "uses its context is worse there than with its own maps."
                  + (" The rows \"context exact\" give a model trained on predicted context the maps rendered from "
                     "the annotations: what a perfect context estimator would give it." if exact else "")]
    for metric, bucket in CLAIM_BUCKETS:
        gain = mpjpe_gain(result, metric=metric)
        if gain is None:
            continue
        seeds = ", ".join(f"seed {s}: {100 * g:.1f} %" for s, g in zip(result["seeds"], gain["per_seed"],
                                                                      strict=True))
        lines += ["", f"{bucket} MPJPE of OCHMR (predicted context) against SPIN: {100 * gain['of_means']:.1f} "
                  f"% lower ({seeds}); the claim to check is at least 20 % lower."]
    lines += _interval_lines(result)
    return lines


def _interval_lines(result: dict[str, Any]) -> list[str]:
    """The paired bootstrap intervals of each row-with-context's MPJPE reduction against SPIN, one line per row."""
    intervals = result.get("claim_intervals") or {}
    labels = {row["key"]: row["label"] for row in result.get("rows", [])}
    lines = []
    for key, buckets in intervals.items():
        parts = [f"{bucket} {100 * g['gain']:.1f} % [{100 * g['low']:.1f}, {100 * g['high']:.1f}] ({g['people']} "
                 "people)" for bucket, g in buckets.items()]
        lines.append(f"- {labels.get(key, key)}: " + "; ".join(parts))
    if not lines:
        return []
    level = next(iter(next(iter(intervals.values())).values()))["level"]
    return ["", f"MPJPE reduction against SPIN per person, seeds averaged, with its {100 * level:.0f} % paired "
            "bootstrap interval over the bucket's people (the same people resampled for both models):", "", *lines]


#: (metric, bucket name) of the supplementary's claim: OCHMR with predicted context at least 20 % below SPIN.
CLAIM_BUCKETS = (("mpjpe_heavy", "Heavy-occlusion"), ("mpjpe_distractor", "Distractor-bucket"))


def _sweep_section(result: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for dataset, block in result["datasets"].items():
        labels = [row["label"] for row in block["rows"]]
        lines += [f"#### {dataset}", "", "| min. box score | #boxes | " + " | ".join(f"{lab} AP (%)" for lab in labels)
                  + " |", "|" + "---|" * (2 + len(labels))]
        for i, (t, n) in enumerate(zip(block["thresholds"], block["num_boxes"], strict=True)):
            cells = [format_cell(row["ap"][i]) for row in block["rows"]]
            lines.append(f"| {t:.2f} | {int(n)} | " + " | ".join(cells) + " |")
        lines += ["", f"Detections: `{block['detections']}`.", ""]
    return lines


TITLES = {
    "occlusion": "Occlusion (supplementary table 1 in miniature)",
    "conorm_depth": "CoNorm placement (supplementary table 3)",
    "detector_sweep": "Detector-confidence sweep (supplementary table 4)",
}


def _context_estimator_budget(result: dict[str, Any]) -> str:
    given = result.get("context_checkpoint")
    if given:
        return f"the context estimator given as `context_checkpoint={given}` (not trained by this command)"
    return f"of the context estimator `{_joined(result.get('context_budget'))}`"


def _training_time_lines(result: dict[str, Any]) -> list[str]:
    """One line: each trained row's training time (minutes, per seed, each run's processes added up) and the sum."""
    parts, total = [], 0.0
    for row in result.get("rows", []):
        if row.get("diagnostic") or row.get("reference"):
            continue
        times = [run.get("training_seconds") for run in row.get("runs", [])]
        if not times or any(t is None for t in times):
            continue
        total += sum(times)
        parts.append(f"{row['label']} " + " / ".join(f"{t / 60:.1f}" for t in times))
    if not parts:
        return []
    return [f"Training time of the rows' runs in minutes, per seed (each run's interrupted and resumed processes "
            f"added up; the context estimator's own training not counted): {'; '.join(parts)}; "
            f"{total / 60:.1f} min in all.", ""]


def format_table_document(result: dict[str, Any]) -> str:
    """Title, command, seeds, machine, time, then the table (Markdown)."""
    minutes = result["seconds"] / 60.0
    partial = result.get("partial_of")
    lines = [f"### {TITLES[result['table']]}, preset `{result['preset']}`" + (" (partial)" if partial else ""), "",
             f"Command: `{_command(result)}`", ""]
    if partial:
        rest = [str(s) for s in partial if s not in result["seeds"]]
        todo = f"seed {rest[0]} is" if len(rest) == 1 else f"seeds {', '.join(rest)} are"
        lines += [f"**Partial**: every row is trained for seeds {', '.join(str(s) for s in result['seeds'])}; "
                  f"{todo} still to train (the command goes on with them; after an interruption, run it again), "
                  "and `table.md` supersedes this file once they are done.", ""]
    lines += [f"Seeds: {', '.join(str(s) for s in result['seeds'])}"
              + (" (cells: mean ± sample standard deviation over seeds)" if len(result["seeds"]) > 1 else "")
              + f". Training budget of every regressor row: `{_joined(result.get('budget'))}`, "
              + _context_estimator_budget(result) + "; overrides of every "
              f"run `{_joined(result.get('overrides'))}`, of the regressor rows "
              f"`{_joined(result.get('regressor_overrides'))}`, of the context estimator "
              f"`{_joined(result.get('context_overrides'))}`.", "",
              f"Machine: {result['machine']}. Wall time of this command: {minutes:.1f} min (finished runs it "
              "reused count as zero).", "", *_training_time_lines(result)]
    if result["table"] == "detector_sweep":
        lines += _sweep_section(result)
    else:
        lines += ["Errors in mm (SPIN joint protocol, 14 LSP joints), AP in % (COCO keypoint AP, ground-truth boxes).",
                  ""] if result["preset"] == "cpu" else ["Errors in mm, AP in %, each column's protocol as named.", ""]
        lines += _mesh_section(result)
    return "\n".join(lines).rstrip() + "\n"
