"""The printed form of a reconstruct output folder's summary (``cryosplat info RUN``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryosplat.cli.record_lines import angstrom, is_number, next_commands

if TYPE_CHECKING:
    from cryosplat.reconstruct.run_summary import RunSummary

__all__ = ["format_run"]


def _pair(values) -> tuple[float, float] | None:
    """Two numbers of ``run.json`` (a band, a range), or None where either is missing or
    non-finite."""
    if isinstance(values, list) and len(values) == 2:
        if all(isinstance(v, int | float) for v in values):
            return values[0], values[1]
    return None


def _state(r: RunSummary) -> str:
    if r.holder is not None:
        return f"{r.status}: {r.holder} works in this folder now"
    if r.abandoned:
        return "running, but no process holds it: stopped without a word (killed)"
    return r.status


def _result_lines(res: dict) -> list[str]:
    """The results of a run's ``run.json``: the resolution with its band and masks, the half
    models' and the data's FSC 0.143, the models' and half sets' sizes, timings and memory."""
    lines: list[str] = []
    band = _pair(res.get("resolution_band_angstrom"))
    band_text = f" (68 % band {band[0]:.2f}-{band[1]:.2f} Å)" if band else ""
    lines.append(f"resolution:   {angstrom(res.get('resolution_angstrom'))}{band_text}")
    if res.get("resolution_definition"):
        lines.append(f"  ({res['resolution_definition']})")
    given = res.get("given_mask")
    if "resolution_soft_spherical_mask_angstrom" in res:
        why = (
            f"the resolution above is read within the given mask {given}"
            if given
            else "the data stopped early there; the resolution above is read within the "
            "automatic mask"
        )
        lines.append(
            "  in the soft spherical mask alone: "
            f"{angstrom(res['resolution_soft_spherical_mask_angstrom'])} ({why})"
        )
    if "model_half_maps_0143_spherical_angstrom" in res:
        lines.append(
            "half models FSC 0.143 (optimistic for smooth models): "
            f"{angstrom(res.get('model_half_maps_0143_spherical_angstrom'))} spherical mask, "
            f"{angstrom(res.get('model_half_maps_0143_automatic_angstrom'))} automatic mask"
            + (
                f", {angstrom(res.get('model_half_maps_0143_given_mask_angstrom'))} given mask"
                if given
                else ""
            )
        )
    if "data_half_maps_0143_angstrom" in res:
        text = angstrom(res["data_half_maps_0143_angstrom"])
        by_direction = _pair(res.get("data_half_maps_0143_by_direction_angstrom"))
        if by_direction:
            text += f"; by direction {by_direction[0]:.2f}-{by_direction[1]:.2f} Å"
        lines.append(f"data half maps FSC 0.143: {text}")
    local = res.get("local_resolution_5_50_95_angstrom")
    if isinstance(local, list) and len(local) == 3 and all(is_number(v) for v in local):
        none = res.get("local_resolution_windows_without")
        lines.append(
            f"local resolution: {local[0]:.2f}-{local[2]:.2f} Å (5th-95th percentile, median "
            f"{local[1]:.2f} Å; local_resolution.mrc)"
            + (f"; {none} windows in the molecule read none" if is_number(none) and none else "")
        )
    if isinstance(res.get("selection"), str):
        lines.append(f"particles chosen: {res['selection']}")
    left_out = res.get("background_structure")
    if isinstance(left_out, dict) and all(
        is_number(left_out.get(k)) for k in ("sampled_images_left_out", "sampled_images")
    ):
        counted = all(is_number(left_out.get(k)) for k in ("images_left_out", "images"))
        files = left_out.get("files")
        lines.append(
            "left out:     "
            + (
                f"{left_out['images_left_out']} of {left_out['images']} particles (the sample "
                f"held {left_out['sampled_images_left_out']} of {left_out['sampled_images']})"
                if counted
                else f"{left_out['sampled_images_left_out']} of {left_out['sampled_images']} "
                "sampled images"
            )
            + " (structure in their background far beyond their noise: a support film's edge, "
            "contamination; --image-weights off keeps them)"
            + (f"; their rows: {', '.join(map(str, files))}" if isinstance(files, list) else "")
        )
    dust = res.get("hot_pixels")
    if isinstance(dust, dict) and all(is_number(dust.get(k)) for k in ("pixels", "sds")):
        lines.append(
            f"hot pixels:   {dust['pixels']} replaced in {dust.get('images')} of "
            f"{dust.get('images_read')} images (beyond {dust['sds']:g} s.d.s; --dust-sds)"
        )
    if isinstance(res.get("n_gaussians"), list):
        lines.append("Gaussians:    " + " + ".join(str(n) for n in res["n_gaussians"]) + " (A + B)")
        negative, share = res.get("n_negative_gaussians"), res.get("negative_mass_share")
        if isinstance(negative, list) and isinstance(share, list) and any(negative):
            lines.append(
                "  below the solvent level: "
                + " + ".join(str(n) for n in negative)
                + ", their mass "
                + " and ".join(f"{100 * s:.0f} %" for s in share)
                + " of the positive mass"
            )
    if isinstance(res.get("n_particles"), list):
        lines.append(
            "half sets:    "
            + " + ".join(str(n) for n in res["n_particles"])
            + f" particles ({res.get('halves', '?')})"
        )
    first = res.get("first_pass") if isinstance(res.get("first_pass"), dict) else None
    cost = {**res, **first} if first else res  # the fitting pass's, where outputs were remade
    if isinstance(cost.get("timings_s"), dict):
        lines.append(
            "timings:      "
            + ", ".join(f"{k} {v:.1f} s" for k, v in cost["timings_s"].items())
            + (f" ({cost['device']})" if cost.get("device") else "")
            + ("; the outputs made again since from the kept checkpoints" if first else "")
        )
    if isinstance(cost.get("peak_resident_memory_gb"), (int, float)):
        predicted = cost.get("predicted_peak_memory_gb")
        lines.append(
            f"memory:       peak {cost['peak_resident_memory_gb']:.2f} GB resident"
            + (f" (predicted {predicted:.2f} GB)" if isinstance(predicted, (int, float)) else "")
        )
    return lines


def _state_lines(r: RunSummary, ident: dict) -> list[str]:
    """How an unfinished run stands (its last log line, its error, its checkpoints and the
    command that resumes it), or a complete run's kept checkpoints."""
    lines: list[str] = []
    chosen = ident.get("selection")
    resume = (
        f"cryosplat reconstruct {ident.get('input', 'PARTICLES')} -o {r.path} --resume (with the "
        "options it was started with"
        + (f"; it chose its particles: {chosen}" if isinstance(chosen, str) else "")
        + ")"
    )
    if r.status != "complete":
        if r.last_log_line:
            lines.append(f"last logged:  {r.last_log_line}")
        if r.error:
            lines.append(f"stopped by:   {r.error}")
        if r.checkpoint_bytes:
            lines.append(f"checkpoints:  {r.checkpoint_bytes / 1e6:.0f} MB")
            lines += [f"  {note}" for note in r.checkpoint_progress]
        if r.holder is None:
            lines.append(f"resume:       {resume}")
    elif r.checkpoint_bytes and r.holder is None:  # kept (--keep-checkpoints)
        lines.append(
            f"checkpoints:  {r.checkpoint_bytes / 1e6:.0f} MB kept: {resume} makes the outputs "
            "again from them, e.g. with --mask MASK"
        )
    if r.status == "complete":
        lines += next_commands(r.path, ident, (r.results or {}).get("resolution_angstrom"))
    return lines


def _helix_text(helical) -> str:
    """``, helix twist T°, rise R Å, N units summed`` from ``run.json``, or nothing."""
    if not isinstance(helical, dict):
        return ""
    return (
        f", helix twist {helical.get('twist_degrees', '?')}°, rise "
        f"{helical.get('rise_angstrom', '?')} Å, {helical.get('n_asu', '?')} units summed"
    )


def format_run(r: RunSummary) -> str:
    """The printed form of a run folder's summary."""
    ident, res = r.identity, r.results
    lines = [f"run:          {r.path} ({_state(r)}; cryosplat {r.version or '?'})"]
    if ident:
        lines.append(
            f"input:        {ident.get('input', '?')}: {ident.get('n_particles', '?')} particles, "
            f"box {ident.get('box', '?')}, {ident.get('pixel_size_angstrom', '?')} Å/px, engine "
            f"{ident.get('engine', '?')}, symmetry {ident.get('symmetry', 'C1')}"
            + _helix_text(ident.get("helical"))
            + f", seed {ident.get('seed', '?')}"
        )
    times = [f"started {r.started}"] if r.started else []
    times += [f"finished {r.finished}"] if r.finished else []
    times += [f"stopped {r.stopped}"] if r.stopped else []
    if times:
        lines.append("time:         " + ", ".join(times))
    if res:
        lines += _result_lines(res)
    if r.map_voxel_size_angstrom is not None:
        unfinished = "" if r.status == "complete" else "; written before the run stopped"
        lines.append(
            f"map.mrc:      voxel size {r.map_voxel_size_angstrom:.4f} Å (header{unfinished})"
        )
        if res.get("map"):
            lines.append(f"  ({res['map']})")
    from cryosplat.reconstruct.run_folder import VIEW_FILE

    level = res.get("chimerax_surface_level")
    if is_number(level) and (r.path / VIEW_FILE).is_file():
        lines.append(f"view:         chimerax {r.path / VIEW_FILE} (the surface at {level:.4g})")
    lines += _state_lines(r, ident)
    for warning in r.warnings:
        lines.append(f"warning: {warning}")
    if r.missing_outputs:
        lines.append("missing outputs: " + ", ".join(r.missing_outputs))
    return "\n".join(lines)
