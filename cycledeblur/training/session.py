"""What every training loop shares: the run folder, the Accelerator, replayable data streams, the step counter and
its checkpoints, the weight average, and the log / sample / checkpoint chores that end each step.

A loop (cyclegan.py, pix2pix.py) owns its networks and its losses and writes its step out in full; the session
keeps the bookkeeping identical between them, so that resume, logs and outputs work the same in every mode.
"""

from __future__ import annotations

import copy
import json
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, GradientAccumulationPlugin, ProjectConfiguration, set_seed
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..config import Config, config_to_dict, save_config
from ..data.workers import loader_workers
from ..errors import ConfigError, TrainingInterrupted, UserError, first_line
from ..precision import training_precision
from .checkpoints import remove_leftovers, resolve_resume, save_checkpoint, saved_process_count
from .data_position import DataPosition
from .guard import centre_crops, pseudo_pair_psnr, starting_generator
from .init_from import initial_weights, start_from
from .loop_state import Stateful, load_loop_state, save_loop_state
from .metrics import DIVERGENCE_CHECK_EVERY, RunningMeans, stop_if_diverged
from .model_card import write_generator
from .network_sets import DELIVERED, NETWORK_SETS
from .progress import TrainingProgress
from .stopper import SignalStopper
from .tracking import build_trackers
from .validation import Validation


class TrainState:
    """The loop's own counters, saved with every checkpoint."""

    def __init__(self):
        self.step = 0

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"step": torch.tensor(self.step)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.step = int(state["step"])


def build_accelerator(config: Config, run_dir: Path) -> tuple[Accelerator, str]:
    """The run's Accelerator, with `train.mixed_precision` resolved (`auto`); and the reason for that precision."""
    has_accelerator = torch.cuda.is_available() or (hasattr(torch, "accelerator") and torch.accelerator.is_available())
    # Crops have one size (a few with a crop schedule): cuDNN's autotuning pays off after the first step at each.
    torch.backends.cudnn.benchmark = True
    device_type = "cuda" if torch.cuda.is_available() else torch.accelerator.current_accelerator().type if has_accelerator else "cpu"
    config.train.mixed_precision, reason = training_precision(config.train.mixed_precision, device_type)
    accelerator = Accelerator(
        # Without cpu=True, `torchrun` on a machine with no GPU starts independent processes, not a gloo group.
        cpu=not has_accelerator,
        mixed_precision=config.train.mixed_precision,
        dynamo_backend="inductor" if config.train.compile else None,
        # Two loaders of different lengths: an epoch end of either must not force an early optimizer step.
        gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=config.train.grad_accum_steps, sync_with_dataloader=False),
        # Schedules are defined in optimizer steps; Accelerate would otherwise step them once per process.
        step_scheduler_with_optimizer=False,
        # Batches come from pinned memory on a GPU: their copy to the device can overlap the step before.
        dataloader_config=DataLoaderConfiguration(non_blocking=True),
        log_with=build_trackers(run_dir / "logs"),
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
    )
    return accelerator, reason


class TrainingSession:
    """One training run: `start` it once the networks are prepared, call `record` and `end_step` in the loop and
    `finish` with the generator to deliver."""

    def __init__(self, config: Config, resume: str | bool | None):
        self.config = config
        self.run_dir = Path(config.output_dir)
        self.resume_from = resolve_resume(self.run_dir, resume)
        self.accelerator, precision_reason = build_accelerator(config, self.run_dir)
        self.accelerator.print(f"mixed precision: {config.train.mixed_precision} ({precision_reason})")
        images_cached = config.data.cache_images != "none"
        config.data.num_workers, workers_reason = loader_workers(config.data.num_workers, self.accelerator.device.type, images_cached)
        self.accelerator.print(f"data-loader workers: {config.data.num_workers} ({workers_reason})")
        self.state = TrainState()
        self.validation = Validation(config) if config.data.val_blur else None
        if self.accelerator.is_main_process:
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                save_config(config, self.run_dir / "config.yaml")
            except OSError as error:
                raise UserError(f"output_dir={config.output_dir!r} cannot be written: {error}") from None
            remove_leftovers(self.run_dir)
        set_seed(config.train.seed)  # network initialisation
        self.progress: TrainingProgress | None = None
        self.data = DataPosition(config, self.accelerator)
        self.losses = RunningMeans()
        self.stopper = SignalStopper()
        self._averaged: AveragedModel | None = None
        self._averaged_source: torch.nn.Module | None = None
        self._delivered: torch.nn.Module | None = None
        self._delivered_step: int | None = None  # when the delivered weights are not the last step's
        self._process_state: dict[str, Stateful] = {}
        self._frozen: list[torch.nn.Parameter] = []

    @property
    def step(self) -> int:
        return self.state.step

    def check_crop_sizes(self, generator: torch.nn.Module, discriminator: torch.nn.Module, discriminator_channels: int) -> None:
        """Every crop size the run will train on must suit the generator's strides and leave the discriminator more than
        one patch: better said now, naming the key, than as a shape error deep in the first step."""
        sizes = self.config.data.crop_sizes()
        for key, size in sizes:
            if size % generator.size_multiple:
                raise ConfigError(f"{key}={size} must be a multiple of {generator.size_multiple}, the generator's total stride")
        key, smallest = min(sizes, key=lambda item: item[1])
        untouched = copy.deepcopy(discriminator.state_dict())  # a forward updates spectral-norm vectors and batch statistics
        try:
            with torch.no_grad():
                discriminator(torch.zeros(2, discriminator_channels, smallest, smallest))
        except (RuntimeError, ValueError) as error:
            raise ConfigError(f"{key}={smallest} is too small for model.discriminator (fewer layers or larger crops): {error}") from None
        finally:
            discriminator.load_state_dict(untouched)

    def start_networks(self, **networks: torch.nn.Module) -> dict[str, torch.nn.Module]:
        """Before `prepare`: fine-tuning (`model.init_from`) loads the released weights into `networks` (by role:
        deblur, reblur, translator, discriminator_sharp, discriminator_blurred, discriminator; the delivered generator
        inside a translator last, from the source's delivered one), `train.freeze` picks the deblurring
        generator's parameters that `hold_frozen` keeps, and every network takes the run's memory layout
        (`train.channels_last`). A resumed run skips the loading: its checkpoint has the weights. Returns `networks`."""
        source, channels = self.config.model.init_from, self.config.data.channels
        network_set = NETWORK_SETS[self.config.train.mode]
        generator = network_set.delivered(networks[network_set.carrier])
        if source and self.resume_from is None:
            weights, source_channels = initial_weights(source)
            started = [role for role in networks if role in weights]
            for role in started:
                start_from(networks[role], weights[role], source_channels, channels, role)
            if DELIVERED not in networks:  # the delivered generator within its carrier: the source's, averaged if it was
                start_from(generator, weights[DELIVERED], source_channels, channels, DELIVERED)
                started.append(DELIVERED)
            self.accelerator.print(f"fine-tuning from {source}: {', '.join(started)} start from its weights")
        prefixes = self.config.train.freeze
        named = dict(generator.named_parameters())
        self._frozen = [p for name, p in named.items() if any(name == x or name.startswith(x + ".") for x in prefixes)]
        if prefixes and not self._frozen:
            parts = sorted({name.split(".")[0] for name in named})
            raise ConfigError(f"train.freeze={prefixes}: no parameter of the generator has these names; its parts: {parts}")
        if self.config.train.channels_last:
            for network in networks.values():
                network.to(memory_format=torch.channels_last)
        return networks

    def prepare(self, networks: dict[str, torch.nn.Module], *others: Any) -> tuple[dict[str, torch.nn.Module], list, torch.nn.Module]:
        """`accelerator.prepare` the mode's networks (`network_sets`, in its order) and `others` (optimizers,
        schedulers, loaders), then start the weight average (`train.ema_decay`) of the network that carries the
        deblurring generator (the generator itself, or UNIT's translator). Returns
        the prepared networks by role, the prepared `others`, and the generator the run delivers (unwrapped; in the
        average when there is one): what samples show, validation scores and the run saves."""
        network_set = NETWORK_SETS[self.config.train.mode]
        networks, others = network_set.prepare(self.accelerator, networks, *others)
        averaged = self._weight_average(networks[network_set.carrier])
        unwrapped = self.accelerator.unwrap_model(networks[network_set.carrier], keep_torch_compile=False)
        return networks, others, network_set.delivered(averaged.module if averaged is not None else unwrapped)

    def hold_frozen(self) -> None:
        """Before the generators' optimizer step: during the first `train.freeze_steps` steps, drop the frozen
        parameters' gradients. Adam skips parameters without one, so their weights and optimizer state stay as
        released (and data-parallel training, which has already reduced the gradients, is undisturbed)."""
        if self.step < self.config.train.freeze_steps:
            for parameter in self._frozen:
                parameter.grad = None

    def _weight_average(self, generator: torch.nn.Module) -> AveragedModel | None:
        """The EMA copy of `generator` (`train.ema_decay`), or None when it is off; `end_step` updates it after
        each generator update. Never trained itself, so it stays out of `prepare`."""
        decay = self.config.train.ema_decay
        if decay == 0:
            return None
        self._averaged_source = self.accelerator.unwrap_model(generator, keep_torch_compile=False)
        self._averaged = AveragedModel(self._averaged_source, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        return self._averaged

    def start(self, delivered: torch.nn.Module, **process_state: Stateful) -> None:
        """Resume (when asked) the prepared objects, the step, the weight average and `process_state` (what each
        process holds alone, such as its image pools), which every checkpoint saves from now on; start logging.
        `delivered` is the generator the run will deliver (the weight average, when there is one): validation
        scores it, from the weights the run starts with on."""
        accelerator = self.accelerator
        self._delivered = accelerator.unwrap_model(delivered, keep_torch_compile=False)
        self._process_state = {**process_state, "skipped_files": self.data.skipped_files}
        if self.resume_from is not None:
            try:
                accelerator.load_state(str(self.resume_from))
            except (pickle.UnpicklingError, RuntimeError, OSError, KeyError, ValueError) as error:
                # weights_only unpickling refuses anything but tensors and plain containers: no code runs.
                raise UserError(f"cannot resume from {self.resume_from}: {first_line(error)}") from None
            load_loop_state(self.resume_from, self._shared_state(), self._process_state, accelerator.process_index)
            accelerator.print(f"resumed from {self.resume_from} at step {self.step}")
            saved = saved_process_count(self.resume_from)
            if saved not in (None, accelerator.num_processes):
                # Each process's shard of every epoch depends on the count: the weights, step and schedules carry
                # on, but the batches from here are not those the interrupted run would have drawn.
                accelerator.print(
                    f"the checkpoint was written by {saved} process(es), this run has {accelerator.num_processes}: "
                    "the data order changes from here on"
                )
        accelerator.init_trackers("cycledeblur", config=flat_hparams(self.config))
        train = self.config.train
        images_per_step = train.batch_size * train.grad_accum_steps * accelerator.num_processes
        self.progress = TrainingProgress(train.max_steps, self.step, images_per_step, enabled=accelerator.is_main_process)
        if self.validation is not None and self.resume_from is None:
            self._validate()
        self._last_log_time, self._last_log_step = time.perf_counter(), self.step

    @property
    def logs_this_step(self) -> bool:
        """Whether the step in progress ends with a log line (for values too costly to record every step)."""
        coming = self.step + 1
        return coming % self.config.train.log_every == 0 or coming == self.config.train.max_steps

    def record(self, terms: dict[str, torch.Tensor], group: str = "loss") -> None:
        """Add this step's `terms`, logged as `group/name` means at the next log step."""
        self.losses.record(terms, group)

    def end_step(
        self,
        schedulers: list,
        checkpointed: list[torch.nn.Module],
        save_samples: Callable[[Path], None],
        generator_updated: bool,
    ) -> None:
        """Count the optimizer step, update the weight average, then log, sample and checkpoint when their
        intervals come round."""
        accelerator, train = self.accelerator, self.config.train
        if self._averaged is not None and generator_updated:
            self._averaged.update_parameters(self._averaged_source)
        self.state.step += 1
        step, last = self.step, self.step == train.max_steps
        for scheduler in schedulers:
            scheduler.step()
        if step % train.log_every == 0 or last:
            means = self.losses.means(accelerator)
            stop_if_diverged(means, step, self.run_dir)
            means["lr/generator"] = schedulers[0].get_last_lr()[0]
            skipped_files = self.data.skipped_files.count.to(accelerator.device)
            means["data/skipped_files"] = accelerator.reduce(skipped_files, reduction="sum").item()
            now = time.perf_counter()  # after the loss read-out above, which waits for the device
            steps = step - self._last_log_step
            means["perf/steps_per_second"] = steps / (now - self._last_log_time)
            means["perf/images_per_second"] = means["perf/steps_per_second"] * self.progress.images_per_step
            self._last_log_time, self._last_log_step = now, step
            accelerator.log(means, step=step)
            self.progress.show_losses(means)
            self.losses.clear()
        elif step % DIVERGENCE_CHECK_EVERY == 0:  # between log steps too: a NaN must not wait for the next log
            stop_if_diverged(self.losses.means(accelerator), step, self.run_dir)
        if accelerator.is_main_process and (step % train.sample_every == 0 or last):
            save_samples(self.run_dir / "samples" / f"step_{step:07d}.png")
        if self.validation is not None and self.validation.due(step, last):
            self._validate()
        checkpoint_due = step % train.checkpoint_every == 0 or last
        stopping = not last and self.stopper.requested(accelerator, logged_now=step % train.log_every == 0)
        if checkpoint_due or stopping:
            saved = save_checkpoint(accelerator, self.run_dir, step, train.keep_checkpoints, checkpointed, self._save_loop_state)
        self.progress.advance(step)
        if stopping:
            raise TrainingInterrupted(
                f"stopped by {self.stopper.signal.name} after step {step}; checkpoint saved to {saved}: continue with --resume",
                self.stopper.signal,
            )

    def __enter__(self) -> TrainingSession:
        """Show the progress bar, and make SIGINT (Ctrl-C) and SIGTERM (a cluster's pre-emption) end the run after
        the current step with a checkpoint. A second signal acts at once, as without this."""
        self.progress.__enter__()
        self.stopper.__enter__()
        return self

    def __exit__(self, *exception: object) -> None:
        self.stopper.__exit__(*exception)
        self.progress.__exit__(*exception)

    def _shared_state(self) -> dict[str, Stateful]:
        shared: dict[str, Stateful] = {"train": self.state}
        if self._averaged is not None:
            shared["weight_average"] = self._averaged
        if self.validation is not None:
            shared["validation"] = self.validation
        return shared

    def _validate(self) -> None:
        """Score the delivered generator on the validation pairs (every process alike, so that all keep the same
        best step), log and show the scores."""
        scores = self.validation.score(self._delivered, self.step, self.accelerator.device)
        self.accelerator.log(scores, step=self.step)
        if self.accelerator.is_main_process:
            with (self.run_dir / "logs" / "validation.jsonl").open("a") as file:
                file.write(json.dumps({"step": self.step, "psnr": self.validation.pair_psnrs}) + "\n")
        self.accelerator.print(
            f"validation, step {self.step}: PSNR {scores['val/psnr']:.2f} dB ({scores['val/psnr_gain']:+.2f} over the "
            f"input; worst group {scores['val/worst_change']:+.2f} against the first scoring), SSIM {scores['val/ssim']:.4f}; "
            f"best so far: step {self.validation.best_step}"
        )

    def _save_loop_state(self, folder: Path) -> None:
        save_loop_state(folder, self._shared_state(), self._process_state, self.accelerator.process_index)

    def guard(self, generator: torch.nn.Module, reblur: torch.nn.Module, sharp_photos: list[torch.Tensor]) -> None:
        """`train.guard` (see `guard.py`): keep the trained `generator` or load the weights it started from."""
        generator = self.accelerator.unwrap_model(generator, keep_torch_compile=False)
        reblur = self.accelerator.unwrap_model(reblur, keep_torch_compile=False)
        start = starting_generator(generator, self.config.model.init_from, self.config.data.channels)
        crops = centre_crops(sharp_photos, generator.size_multiple)
        candidates = {"trained": generator, "start": start}
        scores = pseudo_pair_psnr(candidates, reblur, crops, self.accelerator.device, self.accelerator.autocast)
        self.accelerator.log({f"guard/{name}_psnr": value for name, value in scores.items()}, step=self.step)
        kept = "trained" if scores["trained"] >= scores["start"] else "start"
        self.accelerator.print(
            f"guard: on {len(crops)} sharp photos blurred by the reblurring generator, the trained deblurrer scores "
            f"{scores['trained']:.2f} dB, its start {scores['start']:.2f} dB: delivering the {kept}"
        )
        if kept == "start":
            generator.load_state_dict(start.state_dict())
            self._delivered_step = 0

    def finish(self, generator: torch.nn.Module) -> Path:
        """Save the delivered blurred -> sharp generator with its model card; returns its folder."""
        self.accelerator.wait_for_everyone()
        generator_dir = self.run_dir / "generator"
        generator = self.accelerator.unwrap_model(generator, keep_torch_compile=False)
        steps = self.step if self._delivered_step is None else self._delivered_step
        best_step = self.validation.deliver_best(generator) if self.validation is not None else None
        if best_step is not None:
            steps = best_step
            self.accelerator.print(
                f"delivering the weights of step {steps}, the best on the validation pairs (PSNR {self.validation.best_psnr:.2f} dB)"
            )
        if self.accelerator.is_main_process:
            write_generator(generator, generator_dir, self.config, steps, self.progress.last_losses)
            if self.config.train.report:
                self.write_report()
        self.accelerator.end_training()
        return generator_dir

    def write_report(self) -> None:
        """RUN/report.html. The run is complete without it: a photo that went missing costs the page, not the run."""
        from ..report import write_report

        try:
            self.accelerator.print(f"report: {write_report(self.run_dir)}")
        except (UserError, OSError) as error:
            self.accelerator.print(f"report not written ({first_line(error)}); `cycledeblur report {self.run_dir}` retries")


def flat_hparams(config: Config) -> dict:
    """The config flattened to `section/key` scalars, the form trackers accept as hyperparameters."""
    flat = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
                walk(value, f"{prefix}{key}/")
            else:
                flat[prefix + key] = str(value) if isinstance(value, (list, tuple, dict)) else value

    walk(config_to_dict(config), "")
    return flat
