"""The README's metrics table is common.metrics.METRICS, row for row."""

from pathlib import Path

from replog.common.metrics import METRICS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_metric_has_its_readme_row():
    text = README.read_text()
    for name, (kind, labels, roles, meaning) in METRICS.items():
        label_cell = ", ".join(f"`{label}`" for label in labels) or "-"
        row = f"| `{name}` | {kind} | {label_cell} | {', '.join(roles)} | {meaning} |"
        assert row in text, f"README lacks the row of {name}: {row}"
