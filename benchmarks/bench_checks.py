"""The data checks a reconstruction runs before any work, on made data sets: scores and time.

``python benchmarks/bench_checks.py SET_FOLDER [SET_FOLDER ...] [--groups C2,C3,...]
[--checks poses,sources,ctf,symmetry]`` reads each made set (a folder with ``particles.star`` and
``dataset.json``, e.g. ``bench_out/datasets/5a1a_d2``) and prints one table row per check:

* the pose check (:mod:`cryosplat.reconstruct.pose_check`) on the poses as written and on the same
  set written with each slip (the shifts negated, their x and y swapped, the rotations inverted,
  both, the Euler angles rot and psi swapped, alone and with the rotations inverted, the x or y
  axis flipped (images mirrored); the shifts twice too large, and too large by the pixel size,
  which the shifts halved should undo): the verdict, the reading that fits best, its margin over
  the poses as given and over the next best reading (a mirror's twin: the Euler angles' signs
  turned), over the shells it judged; a set written with a slip must be named by it, the set as written must agree;
* ``sources``: the same check on the set as a merge of two sources (its rows' first and second
  halves as two optics settings, the second's Cs 10⁻⁴ mm apart), the second written with each of
  the first three slips: the second source must be named with its slip (a report, not a demand:
  read whole, half the particles slipped fit no reading clearly better); then the second's rows
  shuffled against its images, which must be named as such, and the two as written, which must
  agree (each setting inverted alone: its halves as read, shuffled, and as the other predicts);
* the CTF state check (:mod:`cryosplat.reconstruct.ctf_state_check`) with the set's raw images
  flagged as each state (raw, phase-flipped, CTF-premultiplied): flagged raw it must agree, flagged
  otherwise it must name raw, or say it cannot tell where the sample holds no signal past the
  CTF's first zero;
* the symmetry check (:mod:`cryosplat.reconstruct.grid.symmetry_check`) for the set's own group
  and each of ``--groups``: the least agreement over the group's operators (1 for a group the data
  hold, near 0 for one they do not; a run stops under 0.5), judged against the truth's own
  self-correlation under the group.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from run_benchmarks import self_correlation

from cryosplat.particles.halves import split_halves
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.ctf_state_check import STATES, check_ctf_state
from cryosplat.reconstruct.grid.gather import AccumulateConfig
from cryosplat.reconstruct.grid.sample_maps import shuffled_poses
from cryosplat.reconstruct.grid.symmetry_check import MIN_AGREEMENT, check_symmetry
from cryosplat.reconstruct.pose_check import VARIANTS, check_pose_conventions, read_as

DEFAULT_GROUPS = "C2,C3,C4,D2,D3"
CHECKS = ("poses", "sources", "ctf", "symmetry")


UNIT_SLIPS = ("shifts doubled", "shifts times the pixel size")
"""Shifts written too large (in Å read as pixels of 2 Å, or of the set's own pixel size): the
reading that undoes both is the shifts halved."""


def written_with(particles, written: str):
    """The set written with ``written`` (:data:`VARIANTS` or :data:`UNIT_SLIPS`), and the reading
    the check should find best."""
    if written not in UNIT_SLIPS:
        return read_as(particles, written), written
    pixel = particles.optics[0].pixel_size_angstrom
    factor = 2.0 if written == "shifts doubled" else pixel
    return replace(particles, shifts_angstrom=particles.shifts_angstrom * factor), "shifts halved"


def pose_rows(name: str, particles) -> list[str]:
    """One row per way of writing the poses: as given, then with each slip."""
    rows = []
    for written in (*VARIANTS[:-1], *UNIT_SLIPS):
        slipped, undone_by = written_with(particles, written)
        started = time.perf_counter()
        check = check_pose_conventions(slipped)
        seconds = time.perf_counter() - started
        scores = check.scores
        margin = max(scores) - scores[0]
        second = int(np.argsort(scores)[-2])  # the runner-up: a mirror's twin reading, say
        expected = "agree" if written == VARIANTS[0] else "mismatch"
        ok = check.verdict == expected and (expected == "agree" or check.best == undone_by)
        rows.append(
            f"| {name} | poses written {written} | {check.verdict}: best {check.best} "
            f"(+{margin:.3f} over as written; as written {scores[0]:.3f}; next "
            f"{VARIANTS[second]}, {max(scores) - scores[second]:.3f} under; shells 2-"
            f"{check.last_shell}) | {'as expected' if ok else 'NOT as expected'} | "
            f"{seconds:.2f} s |"
        )
    return rows


def two_sources(particles):
    """The set as a merge of two sources: its rows' first and second halves as two optics
    settings (the second's Cs 10⁻⁴ mm apart, so that they are told apart)."""
    group = particles.optics[0]
    second = replace(group, name="second", cs_mm=group.cs_mm + 1e-4)
    return replace(
        particles,
        optics=[replace(group, name="first"), second],
        optics_group=(np.arange(len(particles)) >= len(particles) // 2).astype(np.int64),
        notes=[],
        warnings=[],
    )


def source_rows(name: str, particles) -> list[str]:
    """One row per slip written in the second of two sources (:func:`two_sources`)."""
    merged = two_sources(particles)
    rows = []
    for written in VARIANTS[1:4]:
        started = time.perf_counter()
        check = check_pose_conventions(read_as(merged, written, merged.optics_group == 1))
        seconds = time.perf_counter() - started
        setting = check.slipped_setting
        named = (
            "none named"
            if setting is None
            else f"{setting.name} named: {VARIANTS[1 + setting.best]} "
            f"{max(setting.scores):.3f} against {setting.given:.3f}"
        )
        ok = (
            setting is not None
            and setting.name == "second"
            and VARIANTS[1 + setting.best] == written
        )
        rows.append(
            f"| {name} | second source written {written} | {named} (the whole set's readings "
            f"{', '.join(f'{s:.3f}' for s in check.scores)}; shells 2-{check.last_shell}) | "
            f"{'named' if ok else 'not named'} | {seconds:.2f} s |"
        )
    shuffled = shuffled_poses(merged, merged.optics_group == 1, seed=2)
    for label, read, expected in (
        ("second source's rows shuffled", shuffled, "second"),
        ("both sources as written", merged, None),
    ):
        started = time.perf_counter()
        check = check_pose_conventions(read)
        seconds = time.perf_counter() - started
        named = check.unrelated_setting
        alone = "; ".join(
            f"{a.name} {a.read:.3f} (shuffled {a.shuffled:.3f}, predicted {a.predicted:.3f})"
            for a in check.alone
        )
        ok = (named is None) == (expected is None) and (named is None or named.name == expected)
        rows.append(
            f"| {name} | {label} | {named.name + ' named' if named else 'none named'}, the "
            f"verdict {check.verdict} (each alone: {alone}) | "
            f"{'as expected' if ok else 'NOT as expected'} | {seconds:.2f} s |"
        )
    return rows


def ctf_state_rows(name: str, particles) -> list[str]:
    """One row per state the raw images are flagged as."""
    rows = []
    for code, flagged in enumerate(STATES):
        started = time.perf_counter()
        written = replace(particles, ctf_in_images=np.full(len(particles), code))
        check = check_ctf_state(written)
        seconds = time.perf_counter() - started
        if check is None:
            rows.append(f"| {name} | flagged {flagged} | no shell past the first zero | | |")
            continue
        expected = "agree" if code == 0 else "mismatch"
        ok = check.verdict == "weak" or (
            check.verdict == expected and (code == 0 or check.best == "raw")
        )
        scores = ", ".join(f"{s} {v:.3f}" for s, v in zip(STATES, check.scores, strict=True))
        rows.append(
            f"| {name} | flagged {flagged} | {check.verdict}: best {check.best} (as written "
            f"{check.written_score:.3f}; {scores}; shells {check.first}+) | "
            f"{'as expected' if ok else 'NOT as expected'} | {seconds:.2f} s |"
        )
    return rows


TRUTH_HOLDS = 0.9
"""The truth holds a group when its self-correlation under every operator is at least this
(:func:`run_benchmarks.self_correlation`; real maps are symmetric as deposited, e.g. the
beta-galactosidase map under D2, whatever the set's own ``symmetry`` says)."""


def symmetry_rows(name: str, particles, own: str, groups: list[str], truth: Path) -> list[str]:
    """One row per group: the set's own and the others, each judged against whether the truth
    itself holds the group."""
    halves = split_halves(particles, 0, True)[:2]
    rows = []
    for group in [own] + [g for g in groups if g != own]:
        if group == "C1":
            continue
        started = time.perf_counter()
        check = check_symmetry(particles, halves, group, AccumulateConfig())
        seconds = time.perf_counter() - started
        if check is None:
            rows.append(f"| {name} | symmetry {group} | too little signal to judge | | |")
            continue
        held = check.agreement >= MIN_AGREEMENT
        truth_score = self_correlation(truth, group)
        expected = held == (truth_score >= TRUTH_HOLDS)
        rows.append(
            f"| {name} | symmetry {group}{' (the set’s)' if group == own else ''} | agreement "
            f"{check.agreement:.3f} ({'held' if held else 'not held'}) | "
            f"{'as expected' if expected else 'NOT as expected'} (the truth's self-correlation "
            f"{truth_score:.3f}) | {seconds:.2f} s |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sets", nargs="+", type=Path, help="made data set folders")
    parser.add_argument(
        "--groups", default=DEFAULT_GROUPS, help=f"other point groups to check ({DEFAULT_GROUPS})"
    )
    parser.add_argument(
        "--checks", default=",".join(CHECKS), help=f"the checks to run ({','.join(CHECKS)})"
    )
    args = parser.parse_args(argv)
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    checks = [c.strip() for c in args.checks.split(",") if c.strip()]
    unknown = sorted(set(checks) - set(CHECKS))
    if unknown:
        parser.error(f"--checks: unknown {', '.join(unknown)} (choose from {', '.join(CHECKS)})")
    print("| set | check | result | | time |")
    print("|---|---|---|---|---|")
    for folder in args.sets:
        folder = folder.resolve()
        spec = json.loads((folder / "dataset.json").read_text())["spec"]
        here = Path.cwd()
        os.chdir(folder)  # the STAR names its stacks relative to its folder
        try:
            particles = read_particles("particles.star")
            own = spec.get("symmetry", "C1")
            rows = []
            if "poses" in checks:
                rows += pose_rows(spec["name"], particles)
            if "sources" in checks:
                rows += source_rows(spec["name"], particles)
            if "ctf" in checks:
                rows += ctf_state_rows(spec["name"], particles)
            if "symmetry" in checks:
                rows += symmetry_rows(spec["name"], particles, own, groups, folder / "truth.mrc")
        finally:
            os.chdir(here)
        for row in rows:
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
