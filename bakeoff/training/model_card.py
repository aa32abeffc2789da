"""The ``README.md`` model card written beside a trained candidate's weights."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["fmt_loss", "model_card"]


def fmt_loss(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def model_card(summary: dict[str, Any]) -> str:
    """A Hugging Face style model card (front matter, data, results, hyper-parameters) from ``summary.json``."""
    hp = summary["hyperparameters"]
    requested = (
        f" (requested: {summary['requested_method']})"
        if summary["requested_method"] != summary["method"]
        else ""
    )
    lines = [
        "---",
        f"base_model: {summary['base_model']}",
        "library_name: peft" if summary["method"] != "full" else "library_name: transformers",
        "tags: [bakeoff, sft, trl, " + summary["method"] + "]",
        "---",
        "",
        f"# {summary['candidate']}",
        "",
        f"A {summary['method']} fine-tune of `{summary['base_model']}` trained by bakeoff with TRL's SFTTrainer"
        + requested
        + ".",
        "",
        "## Data",
        "",
        f"- kind: {summary['data']['kind']}, from {summary['data']['source']}",
        f"- examples: {summary['train_examples']} train, {summary['val_examples']} validation, "
        f"{summary['test_examples']} test",
        f"- sha256 of the rendered examples: `{summary['data']['sha256']}`",
        "",
        "## Results",
        "",
        "| | value |",
        "| --- | --- |",
        f"| validation loss at step 0 | {fmt_loss(summary['initial_val_loss'])} |",
        f"| final training loss | {fmt_loss(summary['final_train_loss'])} |",
        f"| final validation loss | {fmt_loss(summary['final_val_loss'])} |",
        f"| best validation loss | {fmt_loss(summary['best_val_loss'])} |",
        f"| selected step (`{summary['select']}`) | {summary['selected_step']} of {summary['total_steps']} |",
        f"| test loss (selected weights) | {fmt_loss(summary['test_loss'])} |",
        f"| training time | {summary['train_seconds']:.0f} s on {summary['device']} |",
        f"| throughput | {summary['tokens_per_second']:.0f} tokens/s |",
        "",
        "## Hyper-parameters",
        "",
        "```json",
        json.dumps(hp, indent=2),
        "```",
        "",
        f"Libraries: {', '.join(f'{k} {v}' for k, v in summary['versions'].items())}. Cache key `{summary['cache_key']}`.",
        "",
    ]
    return "\n".join(lines)
