"""What ``cryosplat info`` prints for the records commands leave in their output folders
(``score.json``, ``defocus.json``), and the small readers of their values."""

from __future__ import annotations

from pathlib import Path

__all__ = ["angstrom", "format_defocus", "format_saved_passes", "format_scores", "is_number"]


def angstrom(value) -> str:
    """A resolution of ``run.json``: null there is a non-finite value (``run_folder``'s
    writer), a resolution no shell vouches for."""
    if isinstance(value, int | float):
        return f"{value:.2f} Å"
    return "none" if value is None else "?"


def is_number(value) -> bool:
    """A number of a JSON record (not a boolean)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def format_scores(folder: Path, data: dict) -> str:
    """The lines ``info`` prints for a ``cryosplat score`` output folder (its ``score.json``)."""

    def number(key: str, form: str) -> str:
        value = data.get(key)
        return format(value, form) if is_number(value) else "?"

    scored = f"{number('n_particles', ',')} particles, score median {number('score_median', '.2f')}"
    if is_number(data.get("null_fraction")):
        scored += (
            f" (noise alone scores 0 ± 1); about {100 * data['null_fraction']:.1f} % hold nothing "
            "the map predicts"
        )
    against, reference, resolution = "run:   ", data.get("run"), "its resolution"
    if data.get("map"):
        against, reference, resolution = "map:   ", data["map"], "the resolution given"
    lines = [
        f"{folder}: cryosplat score output (cryosplat {data.get('cryosplat_version', '?')}, "
        f"finished {data.get('finished', '?')})",
        f"particles:    {data.get('particles')}",
        f"{against}       {reference} ({resolution} "
        f"{angstrom(data.get('run_resolution_angstrom'))}; shells read to "
        f"{number('shells_to_angstrom', '.2f')} Å)",
        f"scored:       {scored}",
        f"kept:         {number('kept', ',')} ({folder / 'kept.npy'}); named: "
        f"{number('named', ',')} ({folder / 'named.npy'})",
    ]
    if data.get("kept_metadata"):
        lines.append(f"kept file:    {data['kept_metadata']}")
    return "\n".join(lines)


def format_defocus(folder: Path, data: dict) -> str:
    """The lines ``info`` prints for a ``cryosplat refine-defocus`` output folder."""

    def number(key: str, form: str) -> str:
        value = data.get(key)
        return format(value, form) if is_number(value) else "?"

    if data.get("applied"):
        shared = ""
        if is_number(data.get("micrograph_sd_angstrom")) and data["micrograph_sd_angstrom"] > 0:
            shared = f"{number('micrograph_sd_angstrom', '.0f')} Å per micrograph, "
        read = (
            f"the recorded defoci off by {number('prior_mean_angstrom', '+.0f')} Å on average, "
            f"{shared}{number('prior_sd_angstrom', '.0f')} Å one by one; offsets applied "
            f"{number('offset_rms_angstrom', '.0f')} Å rms"
        )
    else:
        read = (
            "the images do not show the recorded defoci to be off (evidence gain "
            f"{number('evidence_gain', '.1f')} nats); no offset applied"
        )
    lines = [
        f"{folder}: cryosplat refine-defocus output (cryosplat "
        f"{data.get('cryosplat_version', '?')}, finished {data.get('finished', '?')})",
        f"particles:    {data.get('particles')} ({number('n_particles', ',')})",
        f"run:          {data.get('run')} (its resolution "
        f"{angstrom(data.get('run_resolution_angstrom'))}; shells read to "
        f"{number('shells_to_angstrom', '.2f')} Å)",
        f"read against: {data.get('read_against', 'the half map made without each particle')}",
        f"defocus:      {read}",
        f"new values:   {data.get('refined_metadata')} (per particle: {folder / 'defocus.csv'})",
    ]
    astigmatism = data.get("astigmatism")
    if isinstance(astigmatism, dict):
        lines.insert(-1, f"astigmatism:  {_astigmatism_line(astigmatism)}")
    return "\n".join(lines)


def format_poses(folder: Path, data: dict) -> str:
    """The lines ``info`` prints for a ``cryosplat refine-poses`` output folder."""

    def number(values: dict, key: str, form: str) -> str:
        value = values.get(key)
        return format(value, form) if is_number(value) else "?"

    lines = [
        f"{folder}: cryosplat refine-poses output (cryosplat "
        f"{data.get('cryosplat_version', '?')}, finished {data.get('finished', '?')})",
        f"particles:    {data.get('particles')} ({number(data, 'n_particles', ',')})",
        f"run:          {data.get('run')} (its resolution "
        f"{angstrom(data.get('run_resolution_angstrom'))}; shells read to "
        f"{number(data, 'shells_to_angstrom', '.2f')} Å)",
    ]
    halves = data.get("halves")
    for name, half in (halves if isinstance(halves, dict) else {}).items():
        if not isinstance(half, dict):
            continue
        if half.get("applied"):
            read = (
                f"the recorded poses off by {number(half, 'prior_rotation_sd_degrees', '.2f')}° "
                f"and {number(half, 'prior_shift_sd_angstrom', '.2f')} Å per component; "
                "moves applied"
            )
        else:
            read = (
                "the images do not show the recorded poses to be off (evidence gain "
                f"{number(half, 'evidence_gain', '.1f')} nats); no move applied"
            )
        lines.append(f"half {name}:       {read}")
    lines += [
        f"moves:        turns {number(data, 'turn_rms_degrees', '.2f')}° and shift moves "
        f"{number(data, 'shift_move_rms_angstrom', '.2f')} Å rms",
        f"new poses:    {data.get('refined_metadata')} (per particle: {folder / 'poses.csv'})",
    ]
    return "\n".join(lines)


def _astigmatism_line(data: dict) -> str:
    """What ``defocus.json`` says of the micrographs' astigmatism."""

    def number(key: str, form: str) -> str:
        value = data.get(key)
        return format(value, form) if is_number(value) else "?"

    if data.get("applied"):
        return (
            f"{number('micrographs', ',')} micrographs read: off by "
            f"{number('prior_sd_angstrom', '.0f')} Å along each component; moves applied "
            f"{number('move_rms_angstrom', '.0f')} Å rms"
        )
    return (
        f"{number('micrographs', ',')} micrographs read: not shown to be off (evidence gain "
        f"{number('evidence_gain', '.1f')} nats); not changed"
    )


def next_commands(run: Path, ident: dict, resolution: object) -> list[str]:
    """The commands that read a complete run further, as ``info`` lists them for it (``ident``
    its identity, ``resolution`` its reported resolution, Å): sharpening and the defocus where
    the map is fine enough for them."""
    particles = ident.get("input", "PARTICLES")
    fine = is_number(resolution)
    lines = []
    if fine and resolution < 10.0:
        lines.append(
            f"sharpen:      cryosplat sharpen {run} -o OUT.mrc (for model building: the map's "
            "Guinier B-factor taken out; --local also filters it by its local resolution)"
        )
    lines.append(
        f"poses:        cryosplat refine-poses {particles} --run {run} -o OUT (each particle's "
        "pose read against its own half set's map)"
    )
    if fine and resolution < 8.0:
        lines.append(
            f"defocus:      cryosplat refine-defocus {particles} --run {run} -o OUT (each "
            "particle's defocus read against its own half set's map, its own share taken out)"
        )
    lines.append(
        f"score:        cryosplat score {particles} --run {run} -o OUT (each particle against "
        "the half map made without it: junk named, the rest's rows for --ind)"
        + (
            "; with the run's own --ind, --class, --optics-group or --weights"
            if ident.get("selection")
            else ""
        )
    )
    return lines


def format_saved_passes(folder: Path, passes: list[tuple[str, int, int]]) -> str:
    """What an interrupted ``score``, ``refine-defocus`` or ``refine-poses`` left in ``folder``:
    its passes over the images, each with the images read."""
    done = ", ".join(f"{name} {read:,}/{total:,}" for name, read, total in passes)
    return (
        f"{folder}: an interrupted score, refine-defocus or refine-poses (no outputs yet); its "
        "passes over the "
        f"images, images read: {done}. Run the same command again with -o {folder} to go on "
        "from there."
    )
