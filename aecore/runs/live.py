"""What the live view of a run shows, as plain data: the shared job panel of the
dashboard draws a :class:`LiveView` and knows nothing of losses, snapshots or
projections. Built from a :class:`aecore.runs.jobs.JobView` copy, so it is safe
to compute while the run goes on."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aecore.explore.figures import enlarge, recon_grid
from aecore.explore.latent import project_2d
from aecore.runs.jobs import JobView

ICONS = {
    "queued": "⏳",
    "preparing": "⏳",
    "running": "🔄",
    "paused": "⏸️",
    "saving": "💾",
    "done": "✅",
    "stopped": "⏹️",
    "early_stopped": "✅",
    "diverged": "⚠️",
    "failed": "❌",
}
RECON_CAPTION = "validation originals (top) over reconstructions (bottom)"
LAYOUT = dict(template="plotly_dark", margin=dict(l=10, r=10, t=30, b=10))
RATE_LABELS = {"image": "Images/s", "sequence": "Sequences/s", "vector": "Points/s"}


@dataclass
class Series:
    """One curve of the loss chart, x in epochs (steps are fractions of an epoch)."""

    name: str
    x: np.ndarray
    y: np.ndarray
    per_step: bool  # a step curve (thin, translucent) or an epoch curve (lines and markers)


@dataclass
class LiveView:
    title: str
    progress: float  # 0..1
    progress_text: str  # "running: epoch 3/10, step 12/40": tests and users read it
    level: str  # how to show ``message``: "error", "warning" or "caption"
    message: str
    metrics: list[tuple[str, str]]  # (label, formatted value)
    loss: list[Series]
    recon_image: np.ndarray | None = None  # images: originals over reconstructions, uint8, enlarged
    recon_points: tuple[np.ndarray, np.ndarray] | None = None  # vectors: (data, reconstruction), (N, 2) each
    recon_text: str | None = None  # sequences: "input -> prediction" lines
    codes_xy: np.ndarray | None = None  # (N, 2): the validation codes as drawn
    code_labels: np.ndarray | None = None
    codes_title: str = ""
    notes: list[str] = field(default_factory=list)


def format_duration(s: float | None) -> str:
    """Seconds as m:ss or h:mm:ss; "-" when unknown."""
    if s is None:
        return "-"
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def loss_series(v: JobView) -> list[Series]:
    """Every loss term by step, and the train and validation loss by epoch, on one epoch axis."""
    out = []
    if v.steps:
        x = np.array([s["step"] for s in v.steps], float) / max(v.steps_per_epoch, 1)  # steps -> epochs
        terms = [k for k in dict.fromkeys(k for s in v.steps for k in s) if k not in ("step", "epoch")]
        for k in terms:
            out.append(Series(f"train {k} (step)", x, np.array([s.get(k, np.nan) for s in v.steps], float), True))
    if v.history:
        epochs = np.array([h["epoch"] for h in v.history], float)
        out.append(Series("train loss (epoch)", epochs, np.array([h["train_loss"] for h in v.history], float), False))
        val = np.array([np.nan if h["val_loss"] is None else h["val_loss"] for h in v.history], float)
        if np.isfinite(val).any():
            out.append(Series("validation loss", epochs, val, False))
    return out


def live_view(v: JobView, kind: str) -> LiveView:
    """The panel's content for a run on ``kind`` data (image, vector or sequence)."""
    step = f", step {v.step}/{v.steps_per_epoch}" if v.status in ("running", "paused") and v.steps_per_epoch else ""
    level = "error" if v.status in ("diverged", "failed") else "warning" if v.status == "queued" else "caption"
    last = v.steps[-1]["loss"] if v.steps else None
    val = v.history[-1]["val_loss"] if v.history else None
    metrics = [
        (RATE_LABELS.get(kind, "Items/s"), f"{v.images_per_s:,.0f}"),
        ("Elapsed", format_duration(v.elapsed_s)),
        ("Time left", format_duration(v.eta_s) if v.active else "-"),
        ("Train loss", "-" if last is None else f"{last:.4g}"),
        ("Validation loss", "-" if val is None else f"{val:.4g}"),
    ]
    out = LiveView(
        f"{ICONS.get(v.status, '')} {v.name}",
        v.progress,
        f"{v.status}: epoch {v.epoch}/{v.epochs}{step}",
        level,
        v.message,
        metrics,
        loss_series(v),
    )
    snap = v.snapshot
    if snap is None:
        return out
    if kind == "image":
        out.recon_image = enlarge(recon_grid(snap.originals, snap.reconstructions, n=10))
    elif kind == "vector":
        o, r = (a.reshape(len(a), -1)[:, :2] for a in (snap.originals, snap.reconstructions))  # (N, ...) -> (N, 2)
        out.recon_points = (o, r)
    else:
        out.recon_text = "\n".join(
            f"{' '.join(map(str, a.astype(int)))} -> {' '.join(map(str, b.astype(int)))}"
            for a, b in zip(snap.originals[:5], snap.reconstructions[:5])
        )
    codes = snap.codes.reshape(len(snap.codes), -1)  # (N, ...) -> (N, latent_dim)
    if len(codes) > 1:
        out.codes_xy, out.code_labels = project_2d(codes, "pca"), snap.labels
        how = "as is" if codes.shape[1] <= 2 else f"PCA of {codes.shape[1]}-D codes"
        out.codes_title = f"codes of validation items ({how}), coloured by label"
    return out


def runs_rows(views: list[JobView]) -> list[dict]:
    """One row per run for the table of every run on the server."""
    return [
        {
            "run": v.id,
            "model": v.name,
            "preset": v.preset,
            "dataset": v.dataset,
            "status": v.status,
            "epoch": f"{v.epoch}/{v.epochs}",
            "device": v.device,
        }
        for v in views
    ]


# --- the panel's charts (plotly figures; imported when drawn, so the CLI never loads plotly) ---
def loss_figure(lv: LiveView):
    """Every loss term by step (thin) and the train and validation loss by epoch."""
    import plotly.graph_objects as go

    traces = [
        go.Scatter(
            x=s.x,
            y=s.y,
            name=s.name,
            mode="lines" if s.per_step else "lines+markers",
            opacity=0.6 if s.per_step else 1.0,
        )
        for s in lv.loss
    ]
    fig = go.Figure(traces)
    return fig.update_layout(
        **LAYOUT,
        height=320,
        xaxis_title="epoch",
        yaxis_title="loss",
        title="Loss, every term",
        legend=dict(orientation="h", y=-0.25),
    )


def points_figure(lv: LiveView):
    """Vector data: the first two coordinates of items and of their reconstructions."""
    import plotly.graph_objects as go

    names = ("data", "reconstruction")
    fig = go.Figure(
        [
            go.Scatter(x=p[:, 0], y=p[:, 1], mode="markers", name=n, marker=dict(size=4))
            for n, p in zip(names, lv.recon_points)
        ]
    )
    return fig.update_layout(**LAYOUT, height=300, title="data and reconstructions (first two coordinates)")


def codes_figure(lv: LiveView):
    """The validation codes in 2-D, coloured by label."""
    import plotly.graph_objects as go

    marker = dict(size=4, color=lv.code_labels, colorscale="Turbo", showscale=False)
    fig = go.Figure(go.Scattergl(x=lv.codes_xy[:, 0], y=lv.codes_xy[:, 1], mode="markers", marker=marker))
    return fig.update_layout(**LAYOUT, height=300, title=lv.codes_title)


__all__ = [
    "LiveView",
    "Series",
    "codes_figure",
    "format_duration",
    "live_view",
    "loss_figure",
    "loss_series",
    "points_figure",
    "runs_rows",
]
