"""``hipseg fe`` on the real hip label maps: one FE model per map, its quality, volumes and
gaps, time and peak memory, and a linear-elastic check solve (issue 14).

Per map (``../shared/data/hip-labels``):

1. ``hipseg fe MAP --enforce-gap --format feb`` at the default element size, in its own
   process: wall time and peak memory of the whole command (reading, cartilage, mesh, quality,
   the ``.feb``), and its summary (elements, dihedral angles, inverted elements, bodies closed
   and in one piece, each body's volume against the map's at the map's own resolution, the
   smallest node distance between bones).
2. The check solve (``hipseg.fe.solve``, contacts tied, linearised) of the model built at
   ``--solve-size`` mm (default 2; the default 1 mm model has about 4 M unknowns), in its own
   process: unknowns, CG iterations, converged, largest displacement, elements with stress
   10x above their neighbours' median, time and peak memory.
3. Baseline, on the first ``--baseline-cases`` maps: ``hipseg mesh`` (the bone surface meshes
   users start their FE work from today) on the same map in the same run; the ratio is
   ``hipseg fe``'s time over it.

Usage: .venv/bin/python benchmarks/fe.py --out DIR [--maps s20 s30 ...] [--solve-size MM]
       [--table-only]
Results go to DIR/fe_benchmark.json after every map; a rerun with the same DIR measures only
the maps not in it. Each ``.feb`` (about 0.5 GB at 1 mm) is deleted once measured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from measure import run_measured

LABEL_MAPS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "hip-labels"
HIPSEG = [sys.executable, "-m", "hipseg"]


def solve_one(label_map: Path, size_mm: float, out: Path) -> None:
    """Build the model at ``size_mm``, run the check solve, write its numbers to ``out``."""
    from hipseg.core.labels import DEFAULT_LABELS
    from hipseg.fe.model import FeSettings, fe_model
    from hipseg.fe.solve import check_solve
    from hipseg.fe.template import FeTemplate
    from hipseg.io import read_labels

    started = time.perf_counter()
    model = fe_model(read_labels(label_map, DEFAULT_LABELS), DEFAULT_LABELS,
                     FeSettings(size_mm=size_mm, enforce_gap=True))
    built = time.perf_counter() - started
    result = check_solve(model, FeTemplate())
    out.write_text(json.dumps({
        "elements": len(model.mesh.tets), "unknowns": result.unknowns,
        "iterations": result.iterations, "relative_residual": result.relative_residual,
        "converged": result.converged, "max_displacement_mm": result.max_displacement_mm,
        "max_von_mises_mpa": float(result.von_mises_mpa.max()), "spikes": result.spikes,
        "build_s": built, "solve_s": time.perf_counter() - started - built}))


def run_case(label_map: Path, root: Path, solve_size: float, baseline: bool) -> dict:
    case = label_map.name.removesuffix(".nii.gz")
    logs = root / "logs"
    seconds, peak = run_measured([*HIPSEG, "fe", str(label_map), "--out", str(root / "fe"),
                                  "--enforce-gap", "--format", "feb", "--no-progress"],
                                 logs / f"fe-{case}.log")
    summary = json.loads((root / "fe" / f"{case}_fe.json").read_text())
    solve_path = root / "solve" / f"{case}.json"
    solve_path.parent.mkdir(parents=True, exist_ok=True)
    solve_s, solve_peak = run_measured(
        [sys.executable, __file__, "--solve-one", str(label_map), "--solve-size", str(solve_size),
         "--out", str(solve_path)], logs / f"solve-{case}.log")
    solve = json.loads(solve_path.read_text())
    row = {"case": case, "fe_s": seconds, "fe_peak_gib": peak, "summary": summary,
           "solve": solve, "solve_wall_s": solve_s, "solve_peak_gib": solve_peak}
    if baseline:
        row["mesh_s"], _ = run_measured([*HIPSEG, "mesh", str(label_map), "--out",
                                         str(root / "mesh"), "--no-progress"],
                                        logs / f"mesh-{case}.log")
    return row


def format_table(rows: list[dict], solve_size: float) -> str:
    head = ("| map | elements (M) | min dihedral | inverted | bodies closed, 1 piece | manifold | "
            "max abs vol err bones | max abs vol err cartilage (body) | min bone gap mm | "
            f"fe s | fe GiB | solve at {solve_size:g} mm: unknowns, CG its, converged, spikes, s, "
            "GiB | fe / mesh time |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in rows:
        s = row["summary"]
        bones = [b for b in s["bodies"] if b["kind"] == "bone"]
        cartilage = [b for b in s["bodies"] if b["kind"] == "cartilage"]
        worst = max(cartilage, key=lambda b: abs(b["volume_error_pct"]))
        closed = sum(b["closed"] and b["pieces"] == 1 for b in s["bodies"])
        manifold = sum(b["manifold"] for b in s["bodies"])
        solve = row["solve"]
        ratio = f"{row['fe_s'] / row['mesh_s']:.1f}x" if "mesh_s" in row else ""
        lines.append(
            f"| {row['case']} | {s['elements'] / 1e6:.2f} | {s['min_dihedral_deg']:.1f} | "
            f"{s['inverted']} | {closed}/{len(s['bodies'])} | {manifold}/{len(s['bodies'])} | "
            f"{max(abs(b['volume_error_pct']) for b in bones):.2f} % | "
            f"{abs(worst['volume_error_pct']):.1f} % ({worst['name'].removesuffix('_cartilage')}) | "
            f"{min(s['min_bone_gap_mm'].values()):.2f} | {row['fe_s']:.0f} | "
            f"{row['fe_peak_gib']:.2f} | {solve['unknowns'] / 1e3:.0f}k, {solve['iterations']}, "
            f"{'yes' if solve['converged'] else 'NO'}, {solve['spikes']}, "
            f"{solve['solve_s']:.0f}, {row['solve_peak_gib']:.2f} | {ratio} |")
    times = [r["fe_s"] for r in rows]
    lines.append(f"\n{len(rows)} maps; hipseg fe median {statistics.median(times):.0f} s, max "
                 f"{max(times):.0f} s; peak memory max "
                 f"{max(r['fe_peak_gib'] for r in rows):.2f} GiB")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--maps", nargs="+", help="map names (default: all)")
    parser.add_argument("--solve-size", type=float, default=2.0)
    parser.add_argument("--baseline-cases", type=int, default=3)
    parser.add_argument("--table-only", action="store_true",
                        help="print the table of the maps DIR/fe_benchmark.json holds")
    parser.add_argument("--solve-one", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.solve_one is not None:
        solve_one(args.solve_one, args.solve_size, args.out)
        return
    maps = sorted(LABEL_MAPS.glob("*.nii.gz"))
    if args.maps:
        maps = [m for m in maps if m.name.removesuffix(".nii.gz") in args.maps]
    if not maps:
        raise SystemExit(f"{LABEL_MAPS}: no label maps")
    root = args.out.resolve()
    (root / "logs").mkdir(parents=True, exist_ok=True)
    results = root / "fe_benchmark.json"
    # An interrupted run keeps the maps it measured; a rerun measures only the others.
    rows = json.loads(results.read_text()) if results.is_file() else []
    done = {row["case"] for row in rows}
    if args.table_only:
        print(format_table(rows, args.solve_size))
        return
    for index, label_map in enumerate(maps):
        if label_map.name.removesuffix(".nii.gz") in done:
            continue
        rows.append(run_case(label_map, root, args.solve_size, index < args.baseline_cases))
        results.write_text(json.dumps(rows, indent=1))
        for big in (root / "fe").glob("*_fe.feb"):  # 0.5 GB each; the summary stays
            big.unlink()
        print(f"{label_map.name}: fe {rows[-1]['fe_s']:.0f} s, solve "
              f"{'converged' if rows[-1]['solve']['converged'] else 'NOT converged'}", flush=True)
    print(format_table(rows, args.solve_size))


if __name__ == "__main__":
    main()
