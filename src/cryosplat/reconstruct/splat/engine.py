"""The per-image engine: the paper's training loop, batched, both half sets side by side.

Each step renders a mini-batch of views of each half model (orthographic splatting), applies shifts and
CTF in Fourier space, and takes an Adam step on the squared error to the images within a frequency
band that grows from coarse to fine over the epochs. The state (both models, both optimisers, where in
which epoch) is checkpointed atomically every epoch and every ``checkpoint_interval_s`` seconds, so a
killed run resumes without redoing finished work and with the same result.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from cryosplat.core.errors import CryosplatError
from cryosplat.core.fourier import radial_index_2d
from cryosplat.core.optim import Adam
from cryosplat.model.gaussians import GaussianModel, inverse_softplus
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.reconstruct.checkpoint import load_checkpoint, save_checkpoint
from cryosplat.reconstruct.distributed import Distributed
from cryosplat.reconstruct.grid.background import background_level
from cryosplat.reconstruct.grid.noise_levels import NoiseLevels
from cryosplat.reconstruct.splat.image_batches import (
    estimate_amplitude_scale,
    held_frequencies,
    image_batch,
    predict,
)

__all__ = ["SplatEngineConfig", "SplatEngine"]


@dataclass
class SplatEngineConfig:
    """Settings of the per-image engine.

    Attributes
    ----------
    epochs : passes over each half set
    batch_size : views rendered together per step and half
    lr_means_angstrom : Adam step for the means (Å), decayed by ``lr_decay`` over the run
    lr_scales, lr_rotations, lr_amplitudes : Adam steps of the raw (pre-activation) parameters
        (amplitudes at 0.1 instead of 0.03 give the same maps to 0.05 Å: round 2, session 51)
    lr_decay : final learning rate as a fraction of the first
    band_start_fraction : first frequency band, as a fraction of Nyquist
    band_full_at : fraction of the run after which the whole band up to Nyquist is fitted
    checkpoint_interval_s : seconds between mid-epoch checkpoints
    backend : splatting backend (``"auto"``, ``"reference"``, ``"fast"``, ``"fourier"``)
    init_radius_from_data : the random start's ball no larger than the molecule, as the grid
        engine's (:func:`cryosplat.reconstruct.grid.init_centre.initial_radius_fraction`); False:
        ``init_radius_fraction`` whatever the molecule's size
    """

    epochs: int = 8
    batch_size: int = 32
    lr_means_angstrom: float = 0.3
    lr_scales: float = 0.02
    lr_rotations: float = 0.02
    lr_amplitudes: float = 0.03
    lr_decay: float = 0.05
    band_start_fraction: float = 0.25
    band_full_at: float = 0.5
    checkpoint_interval_s: float = 60.0
    backend: str = "auto"
    init_radius_from_data: bool = True

    def validate(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr_means_angstrom", "lr_scales", "lr_rotations", "lr_amplitudes", "lr_decay"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


def _optimizer(model: GaussianModel, cfg: SplatEngineConfig) -> Adam:
    return Adam(
        [
            {"params": [model.means], "lr": cfg.lr_means_angstrom, "name": "means"},
            {"params": [model.raw_scales], "lr": cfg.lr_scales, "name": "scales"},
            {"params": [model.raw_quaternions], "lr": cfg.lr_rotations, "name": "rotations"},
            {"params": [model.raw_amplitudes], "lr": cfg.lr_amplitudes, "name": "amplitudes"},
        ]
    )


@dataclass
class _HalfState:
    name: str
    rows: np.ndarray
    model: GaussianModel
    optimizer: Adam
    background: float = 0.0  # the images' corner level, taken off each (grid/background.py)


class SplatEngine:
    """Train two half-set models with the per-image splatting loss.

    Parameters
    ----------
    particles : ParticleSet
        With poses and CTF.
    halves : (rows_a, rows_b)
    models : (model_a, model_b)
        Independent random initialisations.
    config : SplatEngineConfig
    checkpoint_path : Path
        Where the training state is kept.
    device : torch.device
    seed : int
        Seeds the batch order of every epoch.
    data_sign : +1 (RELION: protein bright) or -1
    dist : Distributed, optional
        Under ``torchrun``: data-parallel. Every rank holds both models; each renders its share of
        every mini-batch, the gradients are summed over the ranks before each Adam step (the
        gradient of the whole batch's mean loss), so the models stay the same on every rank and
        equal one process's to float rounding. Rank 0 alone writes the checkpoints.
    noise_levels : NoiseLevels, optional
        Each image's squared error weighed by the inverse of its noise variance
        (:mod:`cryosplat.reconstruct.grid.noise_levels`, as the statistics pass weighed it);
        None: alike.
    image_unit : float
        The images are fitted divided by this (a power of two,
        :func:`cryosplat.reconstruct.grid.fit.image_unit`), so that their unit does not steer
        Adam; :meth:`models` and :meth:`run` hand the models back in the images' own unit.
    """

    def __init__(
        self,
        particles: ParticleSet,
        halves,
        models,
        config: SplatEngineConfig,
        checkpoint_path: Path,
        device,
        seed: int = 0,
        data_sign: float = 1.0,
        dist: Distributed | None = None,
        noise_levels: NoiseLevels | None = None,
        image_unit: float = 1.0,
    ) -> None:
        config.validate()
        if not (math.isfinite(image_unit) and image_unit > 0):
            raise ValueError(f"image_unit must be positive and finite, got {image_unit}")
        self.noise_levels = noise_levels
        self.image_unit = float(image_unit)
        self.dist = Distributed() if dist is None else dist
        self.particles = particles
        self.config = config
        self.device = torch.device(device)
        self.seed = seed
        self.sign = float(data_sign)
        self.checkpoint_path = Path(checkpoint_path)
        self.halves = [
            _HalfState(
                name,
                np.asarray(rows),
                m.to(self.device),
                _optimizer(m, config),
                background_level(particles, np.asarray(rows)),
            )
            for name, rows, m in zip(("A", "B"), halves, models, strict=True)
        ]
        self.epoch = 0
        self.step_in_epoch = 0
        self.history: list[dict] = []
        self.scaled = False

    # -- schedule -------------------------------------------------------------------------------
    def steps_per_epoch(self) -> int:
        bs = self.config.batch_size
        return max(math.ceil(len(h.rows) / bs) for h in self.halves)

    def total_steps(self) -> int:
        return self.steps_per_epoch() * self.config.epochs

    def _progress_fraction(self) -> float:
        return (self.epoch * self.steps_per_epoch() + self.step_in_epoch) / max(
            1, self.total_steps()
        )

    def _set_learning_rates(self) -> None:
        factor = self.config.lr_decay ** self._progress_fraction()
        base = {
            "means": self.config.lr_means_angstrom,
            "scales": self.config.lr_scales,
            "rotations": self.config.lr_rotations,
            "amplitudes": self.config.lr_amplitudes,
        }
        for h in self.halves:
            for group in h.optimizer.param_groups:
                group["lr"] = base[group["name"]] * factor

    def band_shell(self) -> int:
        """Highest Fourier shell fitted at this point of the run."""
        nyquist = self.particles.box // 2
        start = self.config.band_start_fraction
        t = min(1.0, self._progress_fraction() / max(self.config.band_full_at, 1e-9))
        return int(round(nyquist * (start + (1.0 - start) * t)))

    def _order(self, half_index: int, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, half_index, epoch])
        return self.halves[half_index].rows[rng.permutation(len(self.halves[half_index].rows))]

    # -- checkpoints ----------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "engine": "splat",
            "config": asdict(self.config),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "scaled": self.scaled,
            "image_unit": self.image_unit,
            "history": self.history,
            "models": [
                {k: v.detach().cpu() for k, v in h.model.state_dict().items()} for h in self.halves
            ],
            "optimizers": [h.optimizer.state_dict() for h in self.halves],
        }

    def save(self) -> None:
        if self.dist.is_main:
            save_checkpoint(self.checkpoint_path, self.state())

    def load(self) -> bool:
        """Restore the state from the checkpoint if there is one; returns whether it did."""
        if not self.checkpoint_path.is_file():
            return False
        state = load_checkpoint(self.checkpoint_path)
        for h, ms, os_ in zip(self.halves, state["models"], state["optimizers"], strict=True):
            with torch.no_grad():
                for name, value in ms.items():
                    param = getattr(h.model, name)
                    param.data = value.to(self.device, param.dtype).clone()
            h.optimizer = _optimizer(h.model, self.config)
            h.optimizer.load_state_dict(os_)
        self.epoch, self.step_in_epoch = int(state["epoch"]), int(state["step_in_epoch"])
        self.scaled = bool(state["scaled"])
        self.image_unit = float(state.get("image_unit", 1.0))  # its models are in that unit
        self.history = list(state["history"])
        self._synchronise()
        return True

    def _synchronise(self) -> None:
        """Rank 0's parameters on every rank (no-op for one process)."""
        for h in self.halves:
            self.dist.broadcast_parameters_(h.model)

    # -- training -------------------------------------------------------------------------------
    def _scale_models(self) -> None:
        for i, h in enumerate(self.halves):
            rng = np.random.default_rng([self.seed, i, 10_000])
            rows = rng.choice(h.rows, size=min(len(h.rows), 64), replace=False)
            factor = estimate_amplitude_scale(
                h.model,
                self.particles,
                np.sort(rows),
                self.device,
                self.sign,
                self.config.backend,
                self.image_unit,
            )
            with torch.no_grad():
                amps = h.model.amplitudes * factor
                h.model.raw_amplitudes.copy_(inverse_softplus(amps))
        self._synchronise()
        self.scaled = True

    def _step(self, h: _HalfState, rows: np.ndarray) -> float | None:
        if self.dist.active:
            return self._step_shared(h, rows)
        losses = self._image_losses(h, rows)
        if losses.numel() == 0:  # every image of the batch dropped as bad
            return None
        loss = losses.mean() / self.particles.box**2
        self._check_loss(h, float(loss.detach()))
        h.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        h.optimizer.step()
        return float(loss.detach())

    def _image_losses(self, h: _HalfState, rows: np.ndarray) -> torch.Tensor:
        """Squared error of each image in the band; shape (len(rows),)."""
        batch = image_batch(
            self.particles,
            rows,
            self.device,
            self.sign,
            h.background,
            self.noise_levels,
            self.image_unit,
        )
        pred = predict(h.model, batch.rotations, batch.shifts, batch.ctf, self.config.backend)
        shells = radial_index_2d(self.particles.box, device=self.device)
        band = shells <= self.band_shell()
        held = held_frequencies(shells, batch.band_limits)
        if held is None:
            diff = (pred - batch.data)[:, band]
            losses = diff.real.pow(2).add(diff.imag.pow(2)).sum(dim=-1)
        else:  # a padded image's zeros past its own Nyquist are not fitted
            diff = pred - batch.data
            squared = diff.real.pow(2).add(diff.imag.pow(2))
            losses = (squared * (held & band[None])).sum(dim=(-2, -1))
        return losses if batch.weights is None else losses * batch.weights

    def _step_shared(self, h: _HalfState, rows: np.ndarray) -> float:
        """One data-parallel step: this rank's share of ``rows``, gradients summed over ranks."""
        mine = np.array_split(rows, self.dist.world_size)[self.dist.rank]
        h.optimizer.zero_grad(set_to_none=True)
        params = [p for group in h.optimizer.param_groups for p in group["params"]]
        if len(mine):
            loss = self._image_losses(h, mine).sum() / (len(rows) * self.particles.box**2)
            loss.backward()
        else:
            loss = torch.zeros((), device=self.device)
        total = self.dist.all_reduce_gradients_(params, loss)
        self._check_loss(h, total)
        h.optimizer.step()
        return total

    def _check_loss(self, h: _HalfState, loss: float) -> None:
        """Refuse to step on a non-finite loss (nothing NaN is ever saved or written)."""
        if not math.isfinite(loss):
            raise CryosplatError(
                f"the fit diverged: the loss of half {h.name} is {loss} at epoch "
                f"{self.epoch + 1}, step {self.step_in_epoch + 1}; nothing was written (try "
                "smaller learning rates, e.g. --lr-means, or check the images and CTF)"
            )

    def run(
        self,
        on_step: Callable[[int, int, dict], None] | None = None,
        on_epoch: Callable[[int], dict] | None = None,
    ) -> tuple[GaussianModel, GaussianModel]:
        """Train to the end, from the checkpoint if :meth:`load` restored one.

        Parameters
        ----------
        on_step : callable(done_steps, total_steps, info), optional
            Called after every step (progress display).
        on_epoch : callable(epoch) -> dict, optional
            Called after every epoch; what it returns is stored in the history (e.g. the current
            half-map resolution).
        """
        if not self.scaled:
            self._scale_models()
            self.save()
        per_epoch = self.steps_per_epoch()
        bs = self.config.batch_size
        last_save = time.monotonic()
        while self.epoch < self.config.epochs:
            orders = [self._order(i, self.epoch) for i in range(2)]
            losses = []
            while self.step_in_epoch < per_epoch:
                self._set_learning_rates()
                k = self.step_in_epoch
                step_losses = []
                for h, order in zip(self.halves, orders, strict=True):
                    rows = order[k * bs : (k + 1) * bs]
                    loss = self._step(h, np.sort(rows)) if len(rows) else None
                    if loss is not None:
                        step_losses.append(loss * self.image_unit**2)  # the images' unit
                losses.append(float(np.mean(step_losses)) if step_losses else math.nan)
                self.step_in_epoch += 1
                if on_step is not None:
                    on_step(
                        self.epoch * per_epoch + self.step_in_epoch,
                        self.total_steps(),
                        {"loss": losses[-1], "epoch": self.epoch + 1},
                    )
                if time.monotonic() - last_save > self.config.checkpoint_interval_s:
                    self.save()
                    last_save = time.monotonic()
            record = {"epoch": self.epoch + 1, "loss": float(np.mean(losses)) if losses else None}
            self.epoch += 1
            self.step_in_epoch = 0
            if on_epoch is not None:
                record.update(on_epoch(self.epoch))
            self.history.append(record)
            self.save()
            last_save = time.monotonic()
        return self.models()

    def models(self) -> tuple[GaussianModel, GaussianModel]:
        """The two half models in the images' own unit (the fitted ones where that is 1)."""
        if self.image_unit == 1.0:
            return self.halves[0].model, self.halves[1].model
        a, b = (h.model.with_amplitudes_times(self.image_unit) for h in self.halves)
        return a, b
