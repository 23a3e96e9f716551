"""Command line: ``python -m core demo|generate|list|tms-dataset|tms-train``."""

from __future__ import annotations

import argparse
import sys
import time

from core.errors import InputError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core", description="NeuroPredict engine commands.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="make sure the workspace holds the demo cohort")
    demo.add_argument("--workspace", default=None)
    gen = sub.add_parser("generate", help="generate a synthetic cohort and save it")
    gen.add_argument("--workspace", default=None)
    gen.add_argument("--config", help="YAML config file (see assets/cohorts/)")
    gen.add_argument("--preset", help="name of a shipped preset, e.g. default")
    gen.add_argument("--name", help="save under this name instead of the config's")
    gen.add_argument("--n-patients", type=int)
    gen.add_argument("--seed", type=int)
    lst = sub.add_parser("list", help="list saved cohorts")
    lst.add_argument("--workspace", default=None)
    from core.tms.dataset import add_cli as add_tms_dataset

    add_tms_dataset(sub)
    from core.tms.surrogate import add_cli as add_tms_train

    add_tms_train(sub)
    args = parser.parse_args(argv)
    if args.command in ("tms-dataset", "tms-train"):
        if args.command == "tms-dataset":
            from core.tms.dataset import run_cli
        else:
            from core.tms.surrogate import run_cli

        try:
            return run_cli(args)
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    from core.store.workspace import Workspace

    try:
        workspace = Workspace(args.workspace)
        if args.command == "list":
            print(workspace.catalogue().to_string(index=False))
            return 0
        from core.synth.config import GENERATOR_VERSION, CohortConfig, presets
        from core.synth.generator import generate_cohort

        if args.command == "demo":
            config = presets()["default"]
            if config.name in workspace and workspace.load(config.name).provenance.get("generator_version") == GENERATOR_VERSION:
                print(f"workspace {workspace.path} already holds the demo cohort {config.name!r}")
                return 0
        elif args.config:
            config = CohortConfig.from_yaml(args.config)
        else:
            available = presets()
            if (args.preset or "default") not in available:
                raise InputError(f"no preset {args.preset!r}; available: {', '.join(available)}.")
            config = available[args.preset or "default"]
        overrides = {k: v for k, v in (("name", getattr(args, "name", None)), ("n_patients", getattr(args, "n_patients", None)), ("seed", getattr(args, "seed", None))) if v is not None}
        config = CohortConfig.from_dict({**config.to_dict(), **overrides})
        start = time.perf_counter()

        def report(done, total):
            print(f"\r  generating {config.name!r}: chunk {done}/{total}", end="", file=sys.stderr, flush=True)

        cohort = generate_cohort(config, progress=report)
        workspace.save(cohort)
        print(f"\nsaved {cohort.n_patients} patients as {cohort.name!r} in {workspace.path} ({time.perf_counter() - start:.1f} s)")
        return 0
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

