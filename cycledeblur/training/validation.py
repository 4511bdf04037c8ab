"""Scoring the delivered generator on validation pairs while it trains (`data.val_blur` / `data.val_sharp`).

The first scoring is of the weights the run starts from (zero-shot, for a fine-tune), then every `train.val_every`
steps and at the last one. With `train.keep_best`, the weights of the best scoring are kept (in memory and in every
checkpoint, so a resumed run keeps them too) and delivered at the end: a fine-tune that only hurts its validation
pairs delivers the weights it started from, and so does one whose gains stay within `train.keep_best_margin`.
Scorings are ranked by the mean PSNR over the pairs, or (`train.keep_best_by=worst`) by the worst group's mean change
over the first scoring, so that a mean gain on some pairs cannot hide a loss on others. A group is a subfolder of
`data.val_blur` (one kind of blur, one kind of scan); a pair directly in it is a group of its own.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..config import Config
from ..errors import UserError
from ..evaluation import matching_pairs, score_pairs
from ..inference import Deblurrer


class Validation:
    def __init__(self, config: Config):
        data = config.data
        for key, folder in (("data.val_blur", data.val_blur), ("data.val_sharp", data.val_sharp)):
            if not Path(folder).is_dir():
                raise UserError(f"{key}={folder}: no such folder (validation pairs are read from local folders)")
        try:
            self.pairs = matching_pairs(Path(data.val_blur), Path(data.val_sharp))
        except UserError:
            raise UserError(
                f"data.val_blur={data.val_blur}: no file has a twin of the same name in data.val_sharp={data.val_sharp}"
            ) from None
        self.channels = data.channels
        self.every, self.keep_best, self.margin = config.train.val_every, config.train.keep_best, config.train.keep_best_margin
        self.rank_by = config.train.keep_best_by
        # The pairs' names are their paths under data.val_blur: "mild/photo" is in group "mild/", "photo" alone.
        groups_of_pairs = [name.split("/")[0] + "/" if "/" in name else name for name, _, _ in self.pairs]
        self.groups = sorted(set(groups_of_pairs))
        self.group_of_pair = torch.tensor([self.groups.index(group) for group in groups_of_pairs])
        self.best_score, self.best_psnr, self.best_step = -math.inf, -math.inf, -1
        self.first_psnrs: torch.Tensor | None = None  # per pair, of the first scoring: what `worst` measures changes from
        self.best_weights: dict[str, torch.Tensor] | None = None
        # Per pair, of the last scoring: RUN/logs/validation.jsonl keeps them, so that another way of choosing the step
        # (another margin, grouping or rank) can be tried on a finished run.
        self.pair_psnrs: dict[str, float] = {}

    def due(self, step: int, last: bool) -> bool:
        return step % self.every == 0 or last

    @torch.no_grad()
    def score(self, generator: torch.nn.Module, step: int, device: torch.device) -> dict[str, float]:
        """The mean scores of `generator` (unwrapped) on the pairs, as log values; remembers the best step."""
        was_training = generator.training
        try:
            report = score_pairs(Deblurrer(generator, device=str(device)), self.pairs)
        finally:
            generator.train(was_training)
        if report.failed:
            name, reason = next(iter(report.failed.items()))
            raise UserError(f"validation pair {name} cannot be scored: {reason}")
        output, given = report.mean("output"), report.mean("input")
        psnrs = torch.tensor([image.output["psnr"] for image in report.images], dtype=torch.float64)
        self.pair_psnrs = {image.name: image.output["psnr"] for image in report.images}
        if self.first_psnrs is None:
            self.first_psnrs = psnrs
        sums = torch.zeros(len(self.groups), dtype=torch.float64).index_add_(0, self.group_of_pair, psnrs - self.first_psnrs)
        worst_change = float((sums / self.group_of_pair.bincount()).min())
        score = worst_change if self.rank_by == "worst" else output["psnr"]
        if score > self.best_score + self.margin:
            self.best_score, self.best_psnr, self.best_step = score, output["psnr"], step
            if self.keep_best:
                self.best_weights = {name: value.detach().cpu().clone() for name, value in generator.state_dict().items()}
        return {
            "val/psnr": output["psnr"],
            "val/ssim": output["ssim"],
            "val/psnr_gain": output["psnr"] - given["psnr"],
            "val/worst_change": worst_change,
            "val/best_step": float(self.best_step),
        }

    def deliver_best(self, generator: torch.nn.Module) -> int | None:
        """Load the best step's weights into `generator` (unwrapped) when they are kept; returns that step."""
        if self.best_weights is None:
            return None
        generator.load_state_dict(self.best_weights)
        return self.best_step

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {
            "best_score": torch.tensor(self.best_score, dtype=torch.float64),
            "best_psnr": torch.tensor(self.best_psnr, dtype=torch.float64),
            "best_step": torch.tensor(self.best_step),
        }
        if self.first_psnrs is not None:
            state["first_psnrs"] = self.first_psnrs
        if self.best_weights is not None:
            state |= {f"weights.{name}": value for name, value in self.best_weights.items()}
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if not state:  # a checkpoint of a run without validation: this run's scoring starts from here
            return
        self.best_psnr, self.best_step = float(state["best_psnr"]), int(state["best_step"])
        # Checkpoints written before `keep_best_by` ranked by the mean PSNR alone, and kept no per-pair scores.
        self.best_score = float(state.get("best_score", state["best_psnr"]))
        self.first_psnrs = state.get("first_psnrs")
        weights = {name.removeprefix("weights."): value for name, value in state.items() if name.startswith("weights.")}
        self.best_weights = weights or None
