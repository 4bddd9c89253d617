"""The LightningModule: wires encoders, a fusion and a head; holds no fusion logic itself."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, cast

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from mmexp.contracts import Batch, Encoder, EncoderOutput, Fusion
from mmexp.core.errors import ConfigError
from mmexp.data.augment import Augment
from mmexp.data.balance import balanced_class_weights
from mmexp.data.datamodule import MultimodalDataModule
from mmexp.data.task import Task
from mmexp.models.head import build_head
from mmexp.models.missing import modality_dropout
from mmexp.training.feature_cache import FeatureCache, FeatureCacheCallback
from mmexp.training.metrics import EpochPredictions, TaskMetrics
from mmexp.training.objective import Objective
from mmexp.training.options import class_weights_option, pos_weight_option
from mmexp.training.param_groups import parameter_groups
from mmexp.training.scored_rows import RowCollector, ScoredRows


class MultimodalClassifier(L.LightningModule):
    """Image encoder + text encoder -> fusion -> MLP head, trained with cross-entropy (multiclass, binary) or
    one binary cross-entropy per class (multilabel); ``task`` says which (``mmexp.data.task``)."""

    def __init__(
        self,
        *,
        image_encoder: Encoder,
        text_encoder: Encoder,
        fusion: Callable[..., Fusion],
        num_classes: int,
        optimizer: Callable[..., torch.optim.Optimizer],
        task: Task | None = None,
        positive: int | None = None,
        pos_weight: str | float | Sequence[float] | None = None,
        scheduler: Callable[..., Any] | None = None,
        head_hidden: int = 256,
        dropout: float = 0.1,
        label_smoothing: float = 0.0,
        class_weights: str | Sequence[float] | None = None,
        modality_dropout: dict[str, float] | None = None,
        feature_cache: bool = True,
        feature_cache_budget_gb: float = 2.0,
        compile: bool | str = False,
        backbone_lr: float | None = None,
        backbone_weight_decay: float | None = None,
        layer_lr_decay: float | None = None,
        augment: Augment | None = None,
    ) -> None:
        super().__init__()
        # in the checkpoint only: loggers get the whole run config once, from train.py
        self.save_hyperparameters(
            ignore=["image_encoder", "text_encoder", "fusion", "optimizer", "scheduler", "augment", "task"],
            logger=False,
        )
        available = {encoder.modality: encoder for encoder in (image_encoder, text_encoder)}
        self.fusion = fusion(dims={m: e.out_dim for m, e in available.items()}, num_classes=num_classes)
        # unused encoders are dropped; every encoder is an nn.Module meeting the Encoder contract
        self.encoders = nn.ModuleDict({m: cast(nn.Module, available[m]) for m in self.fusion.modalities})
        # each pooled vector at a common scale before fusion: raw, a pretrained CNN's (norm ~17) drowns
        # MiniLM's L2-normalized one (norm 1), and concat learns from the image alone
        self.feature_norms = nn.ModuleDict({m: nn.LayerNorm(available[m].out_dim) for m in self.fusion.modalities})
        self.head = build_head(self.fusion, num_classes=num_classes, hidden=head_hidden, dropout=dropout)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.backbone_lr, self.backbone_weight_decay = backbone_lr, backbone_weight_decay
        self.layer_lr_decay = layer_lr_decay
        self.augment = augment if "image" in self.encoders else None
        self.label_smoothing = label_smoothing
        self.task = task or Task()
        self.objective = Objective(self.task, num_classes, positive)
        # binary/multilabel decision thresholds, tuned on val (task.threshold=tune) and saved in the checkpoint;
        # a multiclass model has no such key in its state dict
        self.thresholds: torch.Tensor | None
        self.register_buffer("thresholds", self.objective.initial_thresholds() if self.objective.n_thresholds else None)
        self.class_weights = class_weights_option(class_weights)
        self.pos_weights = pos_weight_option(pos_weight)
        _check_weights(self.task, self.class_weights, self.pos_weights)
        # the loss's weights, resolved by setup() and saved in the checkpoint; None: no key in the state dict.
        # class_weight: cross-entropy's per-class weight (binary pos_weight too); pos_weight: multilabel's BCE
        self.class_weight: torch.Tensor | None
        self.pos_weight: torch.Tensor | None
        weighs_classes = self.class_weights is not None or (self.task.binary and self.pos_weights is not None)
        self.register_buffer("class_weight", torch.ones(num_classes) if weighs_classes else None)
        weighs_labels = self.task.multilabel and self.pos_weights is not None
        self.register_buffer("pos_weight", torch.ones(num_classes) if weighs_labels else None)
        if isinstance(self.class_weights, list) and len(self.class_weights) == num_classes:
            self.class_weight = torch.tensor(self.class_weights)
        self.modality_dropout = {m: float(p) for m, p in (modality_dropout or {}).items() if m in self.encoders}
        for modality, rate in self.modality_dropout.items():
            if not 0.0 <= rate < 1.0:
                raise ConfigError(f"model.modality_dropout.{modality}={rate} must be in [0, 1)")
        self.train_metrics = TaskMetrics(self.objective, "train/")
        self.val_metrics = TaskMetrics(self.objective, "val/")
        self.test_metrics = TaskMetrics(self.objective, "test/", kind="test")
        self.test_per_class = TaskMetrics(self.objective, kind="per_class")
        self.epoch_predictions = {"train": EpochPredictions(), "val": EpochPredictions()}
        self.test_details: dict[str, list[Any]] = {}
        self.test_rows = RowCollector()
        self.test_scored: ScoredRows | None = None  # the rows the last trainer.test scored: predictions/test.csv
        self.use_feature_cache, self.feature_cache_budget_gb = feature_cache, feature_cache_budget_gb
        self.feature_caches: dict[str, FeatureCache] = {}  # filled by FeatureCacheCallback during a stage
        if compile:
            self.compile_parts("inductor" if compile is True else compile)

    def compile_parts(self, backend: str) -> None:
        """``torch.compile`` each encoder, the fusion and the head, in place, with ``backend``.

        In place (``nn.Module.compile``) keeps parameter names, so compiled and eager runs share checkpoints.
        Parts, not the whole module: the batch carries raw strings and the training step has Python
        control flow (modality dropout, the feature cache) that would break one big graph anyway; each
        part's tensor code compiles, and LSTM/GRU fall back to eager on their own.
        """
        backends = torch._dynamo.list_backends(exclude_tags=())
        if backend not in backends:
            raise ConfigError(
                f"model.compile={backend!r} is not a torch.compile backend: use true (inductor), "
                f"false, or one of {sorted(backends)}"
            )
        parts: list[nn.Module] = [*self.encoders.values(), cast(nn.Module, self.fusion), self.head]
        for part in parts:
            part.compile(backend=backend)

    def setup(self, stage: str) -> None:
        """Resolve ``class_weights`` / ``pos_weight`` against the data: ``balanced`` from the train split's counts,
        a list checked against the label map. A checkpoint loaded after this (resume, test) restores its own."""
        if self.class_weights is None and self.pos_weights is None:
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        if not isinstance(datamodule, MultimodalDataModule):
            if "balanced" in (self.class_weights, self.pos_weights):
                raise ConfigError("model.class_weights/pos_weight=balanced count the train labels of the datamodule")
            return
        names = datamodule.label_names
        if self.class_weights is not None:
            self.class_weight = self._class_weight(names, datamodule.train_labels()).to(self.device)
            return
        weight = self._pos_weight(names, datamodule.train_labels())
        if self.task.binary:
            assert self.objective.positive is not None and self.class_weight is not None
            self.class_weight = torch.ones(len(names), device=self.device)
            self.class_weight[self.objective.positive] = weight.to(self.device)
        else:
            self.pos_weight = weight.to(self.device)

    def _class_weight(self, names: list[str], train_labels: torch.Tensor) -> torch.Tensor:
        if self.class_weights == "balanced":
            return balanced_class_weights(train_labels, len(names))
        assert isinstance(self.class_weights, list)
        if len(self.class_weights) != len(names):
            raise ConfigError(
                f"model.class_weights has {len(self.class_weights)} value(s); expected {len(names)}, one per "
                f"class in this order (labels.json): {', '.join(names)}"
            )
        return torch.tensor(self.class_weights)

    def _pos_weight(self, names: list[str], train_labels: torch.Tensor) -> torch.Tensor:
        """Binary: one weight for the positive class; multilabel: one per class (negatives / positives)."""
        if self.pos_weights == "balanced":
            positive = self.objective.positive
            hits = train_labels.float() if positive is None else torch.eq(train_labels, positive).float()
            positives = hits.sum(0)  # (K,) multilabel, a scalar for binary
            weight = (len(train_labels) - positives) / positives.clamp(min=1)
            return weight.clamp(min=1e-3)
        assert self.pos_weights is not None
        values = self.pos_weights if isinstance(self.pos_weights, list) else [self.pos_weights]
        expected = len(names) if self.task.multilabel and len(values) > 1 else 1
        if len(values) != expected:
            raise ConfigError(
                f"model.pos_weight has {len(values)} value(s); expected "
                + (
                    f"one, or {len(names)} (one per class in labels.json order: {', '.join(names)})"
                    if self.task.multilabel
                    else "one (the positive class's weight)"
                )
            )
        weight = torch.tensor(values, dtype=torch.float32)
        return weight.expand(len(names)).clone() if self.task.multilabel else weight[0]

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
        """Cross-entropy with label smoothing and the class weights (``mean``: weighted by the labels' weights, as
        ``torch.nn.functional.cross_entropy`` does); multilabel: binary cross-entropy per class with ``pos_weight``
        and targets smoothed toward 1/2. Training, val/loss and test/loss all use it; ``none``: one value per row."""
        if self.task.multilabel:
            targets = labels.to(logits.dtype) * (1 - self.label_smoothing) + self.label_smoothing / 2
            pos_weight = None if self.pos_weight is None else self.pos_weight.to(logits.dtype)
            per_class = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight, reduction="none")
            per_row = per_class.mean(-1)
            return per_row if reduction == "none" else per_row.sum() if reduction == "sum" else per_row.mean()
        weight = None if self.class_weight is None else self.class_weight.to(logits.dtype)
        return F.cross_entropy(logits, labels, weight=weight, label_smoothing=self.label_smoothing, reduction=reduction)

    def configure_callbacks(self) -> list[L.Callback]:
        """The frozen-encoder feature cache comes with the model, so every Trainer stage can use it.

        A trainer that has one already (from an earlier stage, or the user's own) keeps it.
        """
        callbacks = self.trainer.callbacks  # type: ignore[attr-defined]  # set by Lightning's callback connector
        if not self.use_feature_cache or any(isinstance(c, FeatureCacheCallback) for c in callbacks):
            return []
        return [FeatureCacheCallback(budget_gb=self.feature_cache_budget_gb)]

    def encode(self, batch: Batch) -> dict[str, EncoderOutput]:
        """Each encoder's output; a frozen encoder's cached output when one is attached and still valid.

        The cache holds outputs for the dataset's unmodified inputs, looked up by ``batch.index``; a modality
        in ``batch.modified`` (removed or corrupted inputs) is always encoded again.
        """
        features = {}
        for modality in self.encoders:
            cache = self.feature_caches.get(modality)
            if cache is not None and modality not in batch.modified and batch.index is not None:
                features[modality] = cache.lookup(batch.index)
            else:
                features[modality] = self.encode_modality(modality, batch)
        return features

    def encode_modality(self, modality: str, batch: Batch) -> EncoderOutput:
        """Run one encoder on its inputs in ``batch``; the feature cache computes through here too."""
        return cast(Encoder, self.encoders[modality]).encode(batch)

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.fuse(self.encode(batch))

    def fuse(self, features: dict[str, EncoderOutput]) -> torch.Tensor:
        """Logits from the encoders' outputs: what the model does after its encoders (costed on its own)."""
        return self.head(self.fusion(self.normalize(features)))

    def normalize(self, features: dict[str, EncoderOutput]) -> dict[str, EncoderOutput]:
        """Each pooled vector through its modality's LayerNorm: the fusion's inputs."""
        return {m: out._replace(pooled=self.feature_norms[m](out.pooled)) for m, out in features.items()}

    def _step(self, batch: Batch, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(batch)
        if stage == "val":
            self._log_modality_weights(batch)
        loss = self.loss(logits, batch.label)
        self.log(
            f"{stage}/loss",
            loss,
            on_step=stage == "train",
            on_epoch=True,
            prog_bar=stage != "test",
            batch_size=len(logits),
            sync_dist=stage != "train",
        )  # eval losses: mean over all ranks
        return loss, logits.detach()

    def _log_modality_weights(self, batch: Batch) -> None:
        """A fusion that weighs modalities per row (``modality_weights``) shows what it learned: ``val/attn_weight_<m>``
        (mean weight of each modality) and ``val/attn_entropy`` (mean per-row entropy over log(M): 1 = equal
        weights, 0 = one modality only). Collapse onto one modality reads as entropy near 0."""
        weigh = getattr(self.fusion, "modality_weights", None)
        if weigh is None:
            return
        with torch.no_grad():
            weights = weigh(self.normalize(self.encode(batch)))  # (B, M), rows sum to 1
            entropy = -(weights * weights.clamp_min(1e-12).log()).sum(-1) / math.log(weights.shape[-1])
        logged = {f"val/attn_weight_{m}": weights[:, i].mean() for i, m in enumerate(self.fusion.modalities)}
        logged["val/attn_entropy"] = entropy.mean()
        self.log_dict(logged, on_step=False, on_epoch=True, batch_size=len(weights), sync_dist=True)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        if self.augment is not None:  # training only; augmented images are encoded anew (no cached features)
            batch = batch.replace(image=self.augment(batch.image)).marked_modified("image")
        if self.modality_dropout:  # teaches the model to survive a missing input at serving time
            batch = modality_dropout(batch, self.modality_dropout)
        loss, logits = self._step(batch, "train")
        self.epoch_predictions["train"].add(self.objective.probabilities(logits), batch.label)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        _, logits = self._step(batch, "val")
        self.epoch_predictions["val"].add(self.objective.probabilities(logits), batch.label)

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train", self.train_metrics)

    def on_validation_epoch_end(self) -> None:
        epoch = self.epoch_predictions["val"].flush()
        if epoch is None:
            return
        probs, targets = epoch
        if self.task.tuned and not self.trainer.sanity_checking:  # each checkpoint keeps its own epoch's cut
            every_rank = cast(tuple[torch.Tensor, torch.Tensor], self.all_gather((probs, targets)))  # same on all ranks
            tuned = self.objective.tune(*_flat_ranks(every_rank, probs.dim()))
            assert self.thresholds is not None
            self.thresholds.copy_(tuned)  # in place: validation may run in inference mode, the buffer must not
        self._log_metrics(self.val_metrics, probs, targets)

    def _log_epoch(self, stage: str, metrics: TaskMetrics) -> None:
        epoch = self.epoch_predictions[stage].flush()
        if epoch is not None:  # no per-step metric work
            self._log_metrics(metrics, *epoch)

    def _log_metrics(self, metrics: TaskMetrics, probs: torch.Tensor, targets: torch.Tensor) -> None:
        metrics.update(probs, targets, self.thresholds)
        self.log_dict(metrics.compute(), on_step=False, on_epoch=True, sync_dist=True)
        metrics.reset()

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        _, logits = self._step(batch, "test")
        probs = self.objective.probabilities(logits)
        self.test_metrics.update(probs, batch.label, self.thresholds)
        self.test_per_class.update(probs, batch.label, self.thresholds)
        self.test_rows.add(batch.index, probs, batch.label)

    def on_test_epoch_start(self) -> None:
        self.test_rows, self.test_scored = RowCollector(), None

    def on_test_epoch_end(self) -> None:
        self.test_scored = self.test_rows.flush(self)
        self.log_dict(self.test_metrics.compute(), on_step=False, on_epoch=True, sync_dist=True)
        self.test_metrics.reset()
        self.test_details = {name: value.tolist() for name, value in self.test_per_class.compute().items()}
        self.test_per_class.reset()

    def decision_thresholds(self, labels: Sequence[str]) -> dict[str, float] | None:
        """The thresholds in use, by class: each class (multilabel) or the positive class (binary)."""
        if self.thresholds is None:
            return None
        named = labels if self.objective.positive is None else [labels[self.objective.positive]]
        return dict(zip(named, self.thresholds.tolist(), strict=True))

    def configure_optimizers(self) -> Any:
        groups = parameter_groups(
            self,
            self.encoders.values(),
            backbone_lr=self.backbone_lr,
            backbone_weight_decay=self.backbone_weight_decay,
            layer_lr_decay=self.layer_lr_decay,
            base_lr=getattr(self.optimizer_factory, "keywords", {}).get("lr"),  # a functools.partial from Hydra
        )
        optimizer = self.optimizer_factory(params=groups)
        if self.scheduler_factory is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer), "interval": "epoch"},
        }


def _flat_ranks(gathered: tuple[torch.Tensor, torch.Tensor], probs_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``all_gather``'s output as one set of rows: it adds a leading world dimension only when distributed."""
    probs, targets = gathered
    if probs.dim() > probs_dim:
        probs, targets = probs.flatten(0, 1), targets.flatten(0, 1)
    return probs, targets


def _check_weights(task: Task, class_weights: object, pos_weights: object) -> None:
    """Which weighting each task takes: class weights for one-label tasks, pos_weight for binary/multilabel."""
    if task.multilabel and class_weights is not None:
        raise ConfigError(
            "model.class_weights weighs one class per row; for task=multilabel use model.pos_weight "
            "(balanced, or one weight per class) instead"
        )
    if task.name == "multiclass" and pos_weights is not None:
        raise ConfigError("model.pos_weight applies to task=binary and task=multilabel; use model.class_weights")
    if class_weights is not None and pos_weights is not None:
        raise ConfigError("set model.class_weights or model.pos_weight, not both (binary: pos_weight=w is [1, w])")
