"""What the AppTests of the pages share: reading what a page shows, and a private workspace copy."""

import json
import shutil
from pathlib import Path

from core.store.workspace import DEFAULT_WORKSPACE_ENV

APP = Path(__file__).resolve().parent.parent / "app.py"


def no_exception(at) -> None:
    """The run showed no exception (its messages otherwise)."""
    assert not at.exception, [e.message for e in at.exception]


def metric(at, label: str) -> str:
    """The value shown by the one st.metric with this label."""
    (match,) = [m for m in at.metric if m.label == label]
    return match.value


def captions(at) -> list[str]:
    return [c.value for c in at.caption]


def figure(at, key: str) -> dict:
    """The plotly figure (as its JSON dict) of the chart with this Streamlit key."""
    (chart,) = [c for c in at.get("plotly_chart") if c.key == key]
    return json.loads(chart.proto.spec)


def private_workspace(template: Path, tmp_path: Path, monkeypatch) -> Path:
    """A copy of a workspace ``template`` that the app under test opens and may write to."""
    path = shutil.copytree(template, tmp_path / "workspace")
    monkeypatch.setenv(DEFAULT_WORKSPACE_ENV, str(path))
    return path


def array_of(value) -> list:
    """A plotly trace's array as a list: plotly's JSON writes numeric arrays as {"dtype", "bdata"} (base64)."""
    if isinstance(value, dict) and "bdata" in value:
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"])).tolist()
    return list(value)
