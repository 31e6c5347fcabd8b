"""Functional coverage of a regression: the testbenches' cover points (``tb/coverage.py``,
cocotb-coverage), merged over every run with cocotb-coverage's own merger into
``build/sim/coverage.yml``, and summarised in ``build/sim/coverage.json``:

* ``declared``: bins of every cover point and cross;
* ``hit``: bins hit at least ``at_least`` times by some run;
* ``percent``; ``holes``: ``"<cover point>: <bin>"`` for every bin not hit;
* ``points``: per cover point, its size, hits and holes.
"""

import json
from pathlib import Path

__all__ = ["merge_coverage_files", "format_coverage"]


def merge_coverage_files(files, out_dir):
    """Merge the runs' ``coverage.yml`` files; write ``coverage.yml`` and ``coverage.json`` in
    ``out_dir``; return the summary (``None`` when no run wrote coverage)."""
    import yaml
    from cocotb_coverage.coverage import merge_coverage
    files = [str(f) for f in files if Path(f).exists()]
    if not files:
        return None
    out_dir = Path(out_dir)
    merged = out_dir / "coverage.yml"
    merge_coverage(lambda _msg: None, str(merged), *files)
    db = yaml.safe_load(merged.read_text())
    points = {}
    for name, item in sorted(db.items()):
        if "bins:_hits" not in item:         # a group of cover points, not a point
            continue
        at_least = item.get("at_least", 1)
        bins = item["bins:_hits"]
        holes = [str(b) for b, n in bins.items() if n < at_least]
        points[name] = {"size": len(bins), "hit": len(bins) - len(holes), "holes": holes}
    declared = sum(p["size"] for p in points.values())
    hit = sum(p["hit"] for p in points.values())
    summary = {"declared": declared, "hit": hit,
               "percent": round(100.0 * hit / declared, 2) if declared else 100.0,
               "holes": [f"{name}: {b}" for name, p in points.items() for b in p["holes"]],
               "runs": len(files), "points": points}
    tmp = out_dir / ".coverage.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1))
    tmp.replace(out_dir / "coverage.json")
    return summary


def format_coverage(summary, path, limit=20):
    """The lines ``make sim`` prints: the overall figure, then the holes."""
    lines = [f"functional coverage: {summary['hit']}/{summary['declared']} bins "
             f"({summary['percent']:.1f} %) over {summary['runs']} runs: {path}"]
    holes = summary["holes"]
    if holes:
        lines.append(f"  {len(holes)} holes:")
        lines += [f"    {h}" for h in holes[:limit]]
        if len(holes) > limit:
            lines.append(f"    ... and {len(holes) - limit} more (see {path})")
    return lines
