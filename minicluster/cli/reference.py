"""`minicluster reference record RESULT... --out FILE`: a site reference from healthy results;
`aggregate DIR --reference FILE`: a run judged against one."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from minicluster.core.errors import EXIT_OK, InputError


def no_action(args: argparse.Namespace) -> int:
    raise InputError("reference needs an action: record (see minicluster reference --help)")


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"no such result: {path}") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"cannot read {path} as a JSON result: {e}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path} is not a minicluster result")
    from minicluster.analysis.nodecheck import FORMAT as NODECHECK_FORMAT
    from minicluster.result import check_json

    if data.get("schema_version") != NODECHECK_FORMAT:
        try:  # a result edited by hand or cut short: named here, not a crash further on
            check_json(data)
        except InputError as e:
            raise InputError(f"{path}: {e}") from None
    return data


def _result_file(path: Path) -> Path:
    """A result.json, or the run directory holding one."""
    return path / "result.json" if path.is_dir() else path


def record(args: argparse.Namespace) -> int:
    """`reference record`: median, MAD and count per metric of healthy results of one job on one
    platform, written as a site reference (read back by the reference reader before it is kept)."""
    from minicluster.analysis import reference_site, references

    if args.out.is_dir():
        raise InputError(
            f"--out {args.out} is a directory: give the reference's file name (e.g. "
            f"{args.out / 'site.yaml'})"
        )
    if args.out.exists() and not args.force:
        raise InputError(f"{args.out} exists: give another --out (or --force to replace it)")
    files = [_result_file(p) for p in args.results]
    results = [(str(f), _read(f)) for f in files]
    name = args.name or args.out.stem
    ref = reference_site.record(results, name)
    references.from_dict(ref.to_dict(), str(args.out))  # what is written reads back
    try:
        references.save(ref, args.out)
    except OSError as e:
        raise InputError(f"cannot write {args.out}: {e.strerror or e}") from None
    print(
        f"minicluster: site reference {name} ({len(ref.figures)} figures from {len(files)} "
        f"healthy result{'s' if len(files) != 1 else ''}, platform {', '.join(f'{k}={v}' for k, v in ref.platform.items())}): "
        f"{args.out}"
    )
    return EXIT_OK


def check_flags(reference: Path | None, floor_pct: float | None) -> None:
    """InputError (one line, exit 2) for `--floor-pct` without `--reference FILE`, or outside
    (0, 100]: the one check of the pair for every command that takes them."""
    if reference is None and floor_pct is not None:
        raise InputError("--floor-pct needs --reference FILE")
    if floor_pct is not None and not 0 < floor_pct <= 100:
        raise InputError(f"--floor-pct must be in (0, 100], got {floor_pct:g}")


def judge_hook(path: Path, floor_pct: float | None) -> Any:
    """A function adding the `reference` section to a run result (dict) before it is written:
    the reference is read now, so a bad file is refused before anything is aggregated."""
    from minicluster.analysis import reference_site, references
    from minicluster.result.model import RunResult

    ref = references.load(path)

    def judge(result: dict[str, Any]) -> None:
        run = RunResult.from_json(result)
        if run.kind != "run":
            raise InputError(f"--reference judges training runs, not {run.kind} results")
        checks = run.checks
        floor = floor_pct
        if floor is None:
            floor = (
                checks.reference_floor_pct if checks is not None else references.DEFAULT_FLOOR_PCT
            )
        result["reference"] = reference_site.judge_run(run, ref, floor)

    return judge
