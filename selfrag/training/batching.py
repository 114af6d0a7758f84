"""Batches: the length-grouped data order of each epoch, the step -> micro-batches schedule, padding into tensors.

Batches are grouped by length (sorted within shuffled mega-batches) to cut padding; the order is a pure function of
the seed and the epoch, so a resumed run sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from selfrag.io import InputError
from selfrag.training.config import TrainConfig
from selfrag.training.sft_data import IGNORE_INDEX


def plan_epoch(
    lengths: np.ndarray,
    *,
    seed: int,
    epoch: int,
    batch_size: int | None,
    max_batch_tokens: int | None,
    group_size: int,
) -> list[list[int]]:
    """The micro-batches (lists of row indices) of one epoch, a pure function of the arguments.

    Rows are shuffled, cut into mega-batches of about `group_size` micro-batches, sorted by length (longest first)
    within each, and packed greedily into micro-batches of at most `batch_size` rows and `max_batch_tokens` padded
    tokens (a single longer row forms its own batch). The micro-batches are then shuffled so consecutive steps mix
    lengths.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    rows_per_batch = batch_size or max(1, max_batch_tokens // max(1, int(np.mean(lengths))))
    mega = rows_per_batch * group_size
    batches: list[list[int]] = []
    for start in range(0, len(order), mega):
        chunk = order[start : start + mega]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        current: list[int] = []
        longest = 0
        for index in chunk.tolist():
            longest_with = max(longest, int(lengths[index]))
            full = (batch_size is not None and len(current) + 1 > batch_size) or (
                max_batch_tokens is not None and (len(current) + 1) * longest_with > max_batch_tokens
            )
            if current and full:
                batches.append(current)
                current, longest_with = [], int(lengths[index])
            current.append(index)
            longest = longest_with
        if current:
            batches.append(current)
    return [batches[k] for k in rng.permutation(len(batches)).tolist()]


class Schedule:
    """Maps a global optimizer step to its epoch and micro-batches; identical on every process."""

    def __init__(self, lengths: np.ndarray, config: TrainConfig, num_processes: int) -> None:
        self.lengths = lengths
        self.config = config
        self.num_processes = num_processes
        self.per_step = config.grad_accum * num_processes
        self._epochs: dict[int, list[list[list[int]]]] = {}

    def steps_of(self, epoch: int) -> list[list[list[int]]]:
        if epoch not in self._epochs:
            c = self.config
            micro = plan_epoch(self.lengths, seed=c.seed, epoch=epoch, batch_size=c.batch_size,
                               max_batch_tokens=c.max_batch_tokens, group_size=c.length_group_size)
            # Every process must run the same number of micro-batches per step; the few left over are skipped.
            micro = micro[: len(micro) - len(micro) % self.num_processes]
            if not micro:
                raise InputError(f"the training data ({len(self.lengths)} rows) is smaller than one micro-batch per "
                                 f"process ({self.num_processes} processes)")
            self._epochs[epoch] = [micro[i : i + self.per_step] for i in range(0, len(micro), self.per_step)]
        return self._epochs[epoch]

    def total_steps(self) -> int:
        if self.config.max_steps is not None:
            return self.config.max_steps
        return sum(len(self.steps_of(e)) for e in range(self.config.num_epochs))

    def locate(self, step: int) -> tuple[int, int]:
        """(epoch, index within the epoch) of global step `step` (0-based)."""
        epoch = 0
        while step >= len(self.steps_of(epoch)):
            step -= len(self.steps_of(epoch))
            epoch += 1
        return epoch, step


def row_stats(dataset: Any, max_length: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row length, loss-weight total and supervised count (of predicted positions, i.e. labels[1:]), for rows cut
    to `max_length` as `collate` cuts them.

    Read from the `length`/`weight_sum`/`n_supervised` columns that `load_sft_dataset` writes, else computed.
    """

    def of(row: dict[str, Any]) -> tuple[int, float, int]:
        end = len(row["input_ids"]) if max_length is None else min(len(row["input_ids"]), max_length)
        supervised = np.asarray(row["labels"][1:end]) != IGNORE_INDEX
        weight = np.asarray(row["loss_weights"][1:end])[supervised].sum() if "loss_weights" in row else supervised.sum()
        return end, float(weight), int(supervised.sum())

    if {"length", "weight_sum", "n_supervised"} <= set(dataset.column_names):
        lengths = np.asarray(dataset["length"], dtype=np.int64)
        weights = np.asarray(dataset["weight_sum"], dtype=np.float64)
        counts = np.asarray(dataset["n_supervised"], dtype=np.int64)
        # Only rows longer than the batching limit need a second look.
        for i in np.flatnonzero(lengths > max_length).tolist() if max_length is not None else []:
            lengths[i], weights[i], counts[i] = of(dataset[i])
        return lengths, weights, counts
    stats = [of(row) for row in dataset]
    return (np.asarray([s[0] for s in stats], dtype=np.int64), np.asarray([s[1] for s in stats], dtype=np.float64),
            np.asarray([s[2] for s in stats], dtype=np.int64))


def collate(rows: dict[str, list], pad_id: int, max_length: int, multiple: int, device: Any) -> dict[str, Any]:
    """Right-pad a batch (`dataset[indices]`) to its longest row (rounded up to `multiple`)."""
    sequences = [ids[:max_length] for ids in rows["input_ids"]]
    width = max(len(s) for s in sequences)
    width = min(max_length, -(-width // multiple) * multiple) if multiple > 1 else width
    n = len(sequences)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    weights = torch.zeros((n, width), dtype=torch.float32) if "loss_weights" in rows else None
    for i, ids in enumerate(sequences):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(ids)] = torch.tensor(rows["labels"][i][: len(ids)])
        attention[i, : len(ids)] = 1
        if weights is not None:
            weights[i, : len(ids)] = torch.tensor(rows["loss_weights"][i][: len(ids)])
    batch = {"input_ids": input_ids, "attention_mask": attention, "labels": labels, "loss_weights": weights}
    return {k: (v.to(device) if v is not None else None) for k, v in batch.items()}
