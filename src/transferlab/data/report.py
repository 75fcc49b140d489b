"""The data report: what was read, what was skipped and why. Saved with every model as ``data_report.json``."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class DataReport:
    source: str
    splits: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> class -> count (usable items)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"path", "split", "reason"}
    notes: list[str] = field(default_factory=list)

    def skip(self, path: str, reason: str, split: str = "") -> None:
        self.skipped.append({"path": str(path), "split": split, "reason": reason})

    def set_counts(self, split: str, labels: list[str]) -> None:
        self.splits[split] = dict(sorted(Counter(labels).items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "splits": self.splits,
            "skipped_count": len(self.skipped),
            "skipped": self.skipped,
            "notes": self.notes,
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    def summary_lines(self, max_skipped: int = 20) -> list[str]:
        lines = []
        for split, counts in self.splits.items():
            total = sum(counts.values())
            per = ", ".join(f"{k}: {v}" for k, v in counts.items())
            lines.append(f"{split}: {total} items ({per})")
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} file(s):")
            for item in self.skipped[:max_skipped]:
                lines.append(f"  {item['path']}: {item['reason']}")
            if len(self.skipped) > max_skipped:
                lines.append(f"  ... and {len(self.skipped) - max_skipped} more (see data_report.json)")
        lines.extend(self.notes)
        return lines
