"""`make bench-scale`: the pipeline's cost as the rows grow (performance test).

Synthetic tables are drawn from the reviewed reference profile (reference/data_profile.json,
its `distributions`: each label's share (a regression: each target quantile bin's), and per
label each feature's bin shares, values uniform within a bin), so they look like the project's
data at any size without copying it.
Each stage runs in a fresh process per size, so its peak RSS is its own (the synthetic table
included):

  prepare   prepare's work on the table: the personal-data scan, minimisation, the split
  data_io   write and read the table as prepared Parquet (what the stages hand each other)
  validate  validate_frame on the table (schema, duplicates, label noise, poisoning checks)
  train     fit the model of train.py
  evaluate  score, then the evasion and membership attacks on their bounded samples

The table (median seconds and peak RSS per stage and size, the growth t(largest)/t(previous
size), the machine and the command) goes to benchmarks/RESULTS.md, and is printed. Goals
(params.yaml `bench:`) are reported, not enforced: timings depend on the machine.

  python benchmarks/scale.py                       # 10k, 100k and 1M rows
  python benchmarks/scale.py --sizes 2000,4000 --stages validate --output /tmp/r.md

The whole pipeline: `--pipeline ROWS` writes a synthetic raw table of ROWS rows (Parquet) into
a scratch copy of the project (its sources, no outputs), points data.raw_path at it and runs
`dvc repro` there: each stage's wall time (DVC's hashing and the stage's start-up included) and
the total go to a "Whole pipeline" section of RESULTS.md, kept when the stage table is rewritten.

  python benchmarks/scale.py --pipeline 1000000    # make bench-pipeline
  python benchmarks/scale.py --pipeline 3000 --until validate   # `dvc repro validate`: up to it
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess  # nosec B404 - runs this script itself with fixed arguments
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from results import machine, write_section  # benchmarks/results.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("prepare", "data_io", "validate", "train", "evaluate")
PIPELINE_SECTION = "# Whole pipeline (make bench-pipeline)"
GOALS = {"validate_seconds": 60, "validate_rss_mb": 2048, "max_growth": 12, "pipeline_seconds": 300}


def span(low: float, inner: list[float], high: float) -> Any:
    """Bin edges from the range and the quantile edges; the profile rounds its range, so a
    quantile edge may lie just outside it."""
    inner_edges = np.asarray(inner, dtype=float)
    if len(inner_edges):
        low, high = min(low, inner_edges[0]), max(high, inner_edges[-1])
    return np.r_[low, inner_edges, high]


def synthetic(profile: dict[str, Any], rows: int, seed: int, label: str, quality: Any) -> Any:
    """A table of `rows` rows drawn from the profile's distributions (see the docstring);
    `quality` is the project's quality module (it reads the profile's ranges)."""
    import pandas as pd

    dist = profile.get("distributions")
    if not dist:
        raise SystemExit(
            "bench-scale: reference/data_profile.json has no 'distributions': rebuild it with "
            "'make profile' (python -m PACKAGE profile) and review it"
        )
    rng = np.random.default_rng(seed)
    spec = dist["target"]
    shares = np.asarray(spec["shares"], dtype=float)
    labels = rng.choice(len(shares), size=rows, p=shares / shares.sum())
    columns: dict[str, Any] = {}
    for name, ref in dist["features"].items():
        counts = np.asarray(ref["label_counts"], dtype=float) + 1e-3
        bins = np.empty(rows, dtype=np.int64)
        for k in range(len(shares)):
            where = np.flatnonzero(labels == k)
            p = counts[:, k] / counts[:, k].sum()
            bins[where] = rng.choice(len(p), size=len(where), p=p)
        kind = profile["features"].get(name, {}).get("type", "numeric")
        if ref["kind"] == "categorical":
            # the profile's categories only ("other" folds into the first level)
            levels = np.array([*ref["levels"], ref["levels"][0], None], dtype=object)
            columns[name] = pd.Series(levels[bins], dtype=object)
            continue
        low, high = quality.feature_range(profile["features"][name]) or (0.0, 1.0)
        edges = span(low, ref["edges"], high)
        values = rng.uniform(
            edges[np.minimum(bins, len(edges) - 2)], edges[np.minimum(bins + 1, len(edges) - 1)]
        )
        if kind in ("integer", "boolean"):  # whole numbers stay whole (booleans 0/1)
            values = np.round(values)
        values[bins == len(edges)] = np.nan  # the missing-value bin
        columns[name] = values
    frame = pd.DataFrame(columns)
    if spec["task"] == "regression":  # the label is a quantile bin of the target: a value in it
        target = profile["target"]
        edges = span(target["min"], spec["edges"], target["max"])
        frame[label] = rng.uniform(edges[labels], edges[labels + 1])
        return frame
    classes = spec["classes"]
    names = [int(c) if str(c).lstrip("-").isdigit() else c for c in classes]
    frame[label] = np.asarray(names, dtype=object)[labels]
    if all(isinstance(n, int) for n in names):
        frame[label] = frame[label].astype("int64")
    return frame


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker(stage: str, rows: int, seed: int, warm_up: bool = True) -> dict[str, Any]:
    """Run one stage on a fresh synthetic table; return its time and this process's peak RSS."""
    sys.path.insert(0, str(ROOT / "src"))
    package = next(p.parent.name for p in (ROOT / "src").glob("*/validate.py"))
    modules = {
        m: __import__(f"{package}.{m}", fromlist=["_"]) for m in ("config", "data", "quality")
    }
    paths = modules["config"].Paths(ROOT)
    params = modules["config"].load_params(paths)
    profile = modules["data"].load_profile(paths)
    label = modules["data"].LABEL
    if warm_up:  # the stage once on a small table first: imports are not what is measured
        worker(stage, 300, seed, warm_up=False)
    frame = synthetic(profile, rows, seed, label, modules["quality"])
    extra: dict[str, Any] = {}
    started = time.perf_counter()
    if stage == "prepare":
        privacy = __import__(f"{package}.privacy", fromlist=["_"])
        data = modules["data"]
        report = privacy.scan(frame, [*profile["features"], label])
        kept, _ = data.minimise(frame, profile)
        task = data.task_of(profile)
        settings = params["data"]
        data.split(kept, settings["test_size"], settings["seed"], task != "regression")
        extra = {"pii_sampled_columns": len(report["sampled_columns"])}
    elif stage == "data_io":
        data = modules["data"]
        with tempfile.TemporaryDirectory() as folder:
            target = Path(folder) / "train.parquet"
            data.write_prepared(frame, target)
            data.read_prepared(target, profile)
            extra = {"file_mb": round(target.stat().st_size / 1024**2, 1)}
    elif stage == "validate":
        validate = __import__(f"{package}.validate", fromlist=["_"])
        report = validate.validate_frame(frame, profile, params["validate"])
        extra = {"passed": report["passed"], "rejected": report["rejected_count"]}
    elif stage in ("train", "evaluate"):
        train = __import__(f"{package}.train", fromlist=["_"])
        task = profile["target"]["task"]
        if stage == "train":
            train.fit(frame, params["train"], profile)
        else:
            model = train.fit(frame, params["train"], profile)
            evaluate = __import__(f"{package}.evaluate", fromlist=["_"])
            robustness = __import__(f"{package}.robustness", fromlist=["_"])
            started = time.perf_counter()
            evaluate.score(model, frame, task)
            seed_value = params["data"]["seed"]
            robust = robustness.evasion(
                model, frame, {**params["robustness"], "seed": seed_value}, task
            )
            privacy = robustness.membership_inference(
                model, frame, frame, {**params["privacy"], "seed": seed_value}, task
            )
            extra = {"attack_rows": robust["rows"], "membership_rows": privacy["members"]}
    else:
        raise SystemExit(f"bench-scale: unknown stage {stage!r}: choose from {', '.join(STAGES)}")
    return {"seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb(), **extra}


def run(stage: str, rows: int, seed: int) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--worker",
        stage,
        "--rows",
        str(rows),
        "--seed",
        str(seed),
    ]
    # this project's own interpreter and script, an argument list, no shell
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # nosec B603  # own
    if done.returncode:
        raise SystemExit(f"bench-scale: {stage} on {rows} rows failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(
    results: dict[tuple[str, int], list[dict[str, Any]]], sizes: list[int], stages: list[str]
) -> str:
    lines = [
        "| rows | "
        + " | ".join(f"{s} s" for s in stages)
        + " | "
        + " | ".join(f"{s} MB" for s in stages)
        + " |",
        "|---:|" + "---:|" * (2 * len(stages)),
    ]
    medians = {key: statistics.median(r["seconds"] for r in runs) for key, runs in results.items()}
    for rows in sizes:
        times = " | ".join(f"{medians[(s, rows)]:.2f}" for s in stages)
        rss = " | ".join(f"{max(r['peak_rss_mb'] for r in results[(s, rows)]):.0f}" for s in stages)
        lines.append(f"| {rows:,} | {times} | {rss} |")
    if len(sizes) >= 2:
        big, previous = sizes[-1], sizes[-2]
        growth = " | ".join(
            f"{medians[(s, big)] / max(medians[(s, previous)], 1e-9):.1f}" for s in stages
        )
        lines.append(f"| t({big:,})/t({previous:,}) | {growth} |" + " |" * len(stages))
    return "\n".join(lines)


def goals(
    results: dict[tuple[str, int], list[dict[str, Any]]],
    sizes: list[int],
    stages: list[str],
    budget: dict[str, Any],
) -> list[str]:
    out = []
    medians = {key: statistics.median(r["seconds"] for r in runs) for key, runs in results.items()}
    big = sizes[-1]
    if "validate" in stages:
        seconds, rss = (
            medians[("validate", big)],
            max(r["peak_rss_mb"] for r in results[("validate", big)]),
        )
        ok = seconds <= budget["validate_seconds"] and rss <= budget["validate_rss_mb"]
        out.append(
            f"- validate on {big:,} rows: {seconds:.1f} s, {rss:.0f} MB peak "
            f"(goal <= {budget['validate_seconds']} s and <= {budget['validate_rss_mb']} MB): "
            + ("met" if ok else "MISSED")
        )
    if len(sizes) >= 2:
        for stage in stages:
            ratio = medians[(stage, big)] / max(medians[(stage, sizes[-2])], 1e-9)
            ok = ratio <= budget["max_growth"] * big / sizes[-2] / 10
            out.append(
                f"- {stage}: t({big:,})/t({sizes[-2]:,}) = {ratio:.1f} "
                f"(goal <= {budget['max_growth']} per 10x rows): " + ("met" if ok else "MISSED")
            )
    total = sum(medians[(s, big)] for s in stages)
    out.append(
        f"- the measured stages together on {big:,} rows: {total:.0f} s (goal for the whole "
        f"pipeline <= {budget['pipeline_seconds']} s; the whole `dvc repro`: --pipeline ROWS)"
    )
    return out


def pipeline(rows: int, seed: int, until: str | None = None) -> dict[str, Any]:
    """`dvc repro` on a synthetic raw table of `rows` rows in a scratch copy of the project
    (`dvc repro UNTIL`: that stage and those before it): each stage's wall time (from DVC
    announcing it to DVC announcing the next, so its hashing and start-up are in it), the
    total and the load average before and after."""
    import yaml

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import scratch_env, scratch_project  # the copy the integration tests run

    sys.path.insert(0, str(ROOT / "src"))
    package = next(p.parent.name for p in (ROOT / "src").glob("*/validate.py"))
    modules = {
        m: __import__(f"{package}.{m}", fromlist=["_"]) for m in ("config", "data", "quality")
    }
    profile = modules["data"].load_profile(modules["config"].Paths(ROOT))
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as folder:
        copy = scratch_project(Path(folder) / "project", "raw")
        raw = copy / "data" / "raw" / "bench.parquet"
        raw.parent.mkdir(parents=True, exist_ok=True)
        frame = synthetic(profile, rows, seed, modules["data"].LABEL, modules["quality"])
        frame.to_parquet(raw, index=False)
        del frame
        params = yaml.safe_load((copy / "params.yaml").read_text(encoding="utf-8"))
        params["data"].update({"raw_path": "data/raw/bench.parquet", "target": "target"})
        (copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), "utf-8")
        env = scratch_env(copy)
        for args in (
            ["git", "init", "-q"],
            ["git", "add", "-A"],
            [
                "git",
                "-c",
                "user.name=bench",
                "-c",
                "user.email=bench@example.com",
                "commit",
                "-q",
                "--no-verify",
                "-m",
                "bench",
            ],
        ):  # fixed argument lists, no shell
            subprocess.run(args, cwd=copy, env=env, capture_output=True, check=True)  # nosec B603 B607  # fixed argv
        load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        started = time.perf_counter()
        marks: list[tuple[str, float]] = []
        # dvc from this environment (scratch_env puts it first on PATH), an argument list
        with subprocess.Popen(  # nosec B603 B607  # fixed argv, no shell
            ["dvc", "repro", *([until] if until else [])],
            cwd=copy,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as process:
            output = []
            for line in process.stdout or []:
                output.append(line)
                if line.startswith("Running stage '"):
                    marks.append((line.split("'")[1], time.perf_counter() - started))
            code = process.wait()
        total = time.perf_counter() - started
        if code:
            raise SystemExit(
                f"bench-scale: dvc repro on {rows} rows failed:\n{''.join(output)[-3000:]}"
            )
    ends = [t for _, t in marks[1:]] + [total]
    return {
        "rows": rows,
        "stages": {name: end - start for (name, start), end in zip(marks, ends, strict=True)},
        "total": total,
        "until": until,
        "load": (load_before, os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")),
    }


def pipeline_section(result: dict[str, Any], budget: dict[str, Any], command: str) -> str:
    stages = result["stages"]
    ok = result["total"] <= budget["pipeline_seconds"]
    what = f"the whole pipeline on {result['rows']:,} rows: {result['total']:.0f} s (goal <= "
    verdict = f"{budget['pipeline_seconds']} s, params.yaml bench.pipeline_seconds): "
    verdict += "met" if ok else "MISSED"
    repro = "dvc repro" + (f" {result['until']}" if result.get("until") else "")
    if result.get("until"):
        what = f"the pipeline up to {result['until']} on {result['rows']:,} rows: "
        verdict = f"{result['total']:.0f} s (the goal is for the whole pipeline: not compared)"
    return "\n".join(
        [
            PIPELINE_SECTION,
            "",
            f"`{repro}` on a synthetic raw table of {result['rows']:,} rows in a scratch copy "
            f"of the project. Machine: {machine(with_load=False)}; 1-minute load average "
            f"{result['load'][0]:.1f} at the start, {result['load'][1]:.1f} at the end. "
            f"Command: `{command}`.",
            "",
            "| rows | " + " | ".join(f"{name} s" for name in stages) + " | total s |",
            "|---:|" + "---:|" * (len(stages) + 1),
            f"| {result['rows']:,} | "
            + " | ".join(f"{t:.1f}" for t in stages.values())
            + f" | {result['total']:.1f} |",
            "",
            f"- {what}{verdict}",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="10000,100000,1000000", help="comma-separated row counts"
    )
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated stages")
    parser.add_argument("--repeat", type=int, default=1, help="runs per stage and size (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    parser.add_argument(
        "--pipeline", type=int, metavar="ROWS", help="run dvc repro on ROWS synthetic raw rows"
    )
    parser.add_argument(
        "--until", metavar="STAGE", help="with --pipeline: a stage of dvc.yaml, run up to it"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.rows, args.seed)))
        return 0
    import yaml

    budget = {**GOALS, **(yaml.safe_load((ROOT / "params.yaml").read_text()).get("bench") or {})}
    command = "python benchmarks/scale.py " + " ".join(argv if argv is not None else sys.argv[1:])
    output = Path(args.output)
    if args.pipeline is not None:
        if args.pipeline < 100:
            parser.error("--pipeline ROWS: at least 100 rows")
        stages = list((yaml.safe_load((ROOT / "dvc.yaml").read_text()) or {}).get("stages", {}))
        if args.until is not None and args.until not in stages:
            parser.error(f"--until {args.until!r}: choose a stage of dvc.yaml: {', '.join(stages)}")
        result = pipeline(args.pipeline, args.seed, args.until)
        section = pipeline_section(result, budget, command.strip())
        write_section(output, "bench-pipeline", section)
        print(section)
        return 0
    try:
        sizes = sorted(int(s) for s in args.sizes.split(","))
    except ValueError:
        parser.error(f"--sizes {args.sizes!r}: give row counts such as 10000,100000")
    stages = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown or not sizes or min(sizes) < 100 or args.repeat < 1:
        parser.error(f"--stages from {', '.join(STAGES)}; --sizes >= 100 rows; --repeat >= 1")
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for rows in sizes:
        for stage in stages:
            results[(stage, rows)] = [run(stage, rows, args.seed + i) for i in range(args.repeat)]
            last = results[(stage, rows)][-1]
            print(
                f"bench-scale: {stage:<8} {rows:>9,} rows {last['seconds']:7.2f} s "
                f"{last['peak_rss_mb']:6.0f} MB",
                flush=True,
            )
    report = [
        "# Scale benchmark (make bench-scale)",
        "",
        f"Machine: {machine()}. Command: `{command.strip()}`. Median of {args.repeat} run(s) per "
        "cell; each stage in a fresh process (peak RSS includes its synthetic table).",
        "",
        table(results, sizes, stages),
        "",
        "Goals (params.yaml `bench:`):",
        "",
        *goals(results, sizes, stages, budget),
        "",
    ]
    write_section(output, "bench-scale", "\n".join(report))
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
