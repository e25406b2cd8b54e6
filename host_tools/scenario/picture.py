"""The report's timeline picture: what the phone and its two links did while the lab broke
things, with the measured failover and re-home times (docs/reports.md, "The picture").

    draw(result_or_report_dict, Path("out/reports/wan-blackhole.png"))   # or .svg

The interval computation is pure (`intervals`, `markers`: report dict in, spans out) and
tested on its own; drawing uses matplotlib's Agg canvas (no display, no pyplot state).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from host_tools.lab.names import SCCP_SERVERS
from host_tools.scenario.metrics import CUT_ACTIONS

# Lanes, top to bottom. "fault" spans are shaded across all lanes; "action" spans are
# instants (start == end) drawn as a line: reboots, Reset, replaced files.
LANES = ("state", "primary", "srst")
LANE_TITLES = {"state": "phone state", "primary": "primary link\n(call manager)",
               "srst": "SRST link\n(standby)"}
STATE_COLOURS = {"BOOT": "#9e9e9e", "PROVISION": "#90caf9", "PRIMARY": "#66bb6a",
                 "FALLBACK": "#ffa726", "REHOME": "#ab47bc", "TRYING": "#ef5350"}
LINK_COLOURS = {"registered": "#2e7d32", "standby": "#1e88e5", "reachable": "#fdd835",
                "down": "#e57373"}
FAULT_COLOUR = "#b71c1c"
ACTION_COLOUR = "#455a64"
FIGURE_COLOURS = {"failover": "#e65100", "rehome": "#6a1b9a"}
WIDTH_IN, HEIGHT_IN, DPI = 16.0, 5.6, 100          # 1600 x 560 px


@dataclass(frozen=True)
class Span:
    lane: str        # "state" | "primary" | "srst" | "fault" | "action"
    start: float     # seconds since the board started
    end: float
    label: str


@dataclass(frozen=True)
class Marker:
    """A measured figure: an arrow from the lab's action to the phone's answer."""
    kind: str        # "failover" | "rehome"
    start: float
    end: float
    ms: int
    after: str       # the action, as metrics names it: "wan_cut", "kill:callmanager", ...


# -- input ---------------------------------------------------------------------------------

def as_report(result_or_report: Any) -> dict[str, Any]:
    """A report dict (report.py's JSON shape) from itself or a runner.Result."""
    if isinstance(result_or_report, dict):
        return result_or_report
    from host_tools.scenario import report  # imports the runner: only when given a Result
    return report.to_dict(result_or_report)


def _sec(item: dict[str, Any]) -> float:
    return float(item.get("host_ms") or 0) / 1000.0


def _is(e: dict[str, Any], ev: str, link: str | None = None) -> bool:
    return e.get("ev") == ev and (link is None or e.get("link") == link)


def timeline_end(events: list[dict], actions: list[dict], ended_ms: float | None = None) -> float:
    """Right edge of the picture (s): the run's end if the report has it, else the last
    thing that happened plus a little room."""
    if ended_ms is not None:
        return float(ended_ms) / 1000.0
    last = max([_sec(x) for x in [*events, *actions]] or [0.0])
    return last + max(0.5, 0.04 * last)


# -- lanes ---------------------------------------------------------------------------------

class _Track:
    """One lane's current value; a change closes the running span."""

    def __init__(self, lane: str) -> None:
        self.lane = lane
        self.spans: list[Span] = []
        self._cur: tuple[str, float] | None = None

    def set(self, t: float, label: str | None) -> None:
        if self._cur is not None and self._cur[0] == label:
            return
        self.close(t)
        if label is not None:
            self._cur = (label, t)

    def close(self, t: float) -> None:
        if self._cur is not None:
            label, start = self._cur
            if t > start:
                self.spans.append(Span(self.lane, start, t, label))
            self._cur = None


KEEP = "(no change)"               # an event that says nothing about a lane


def _primary_value(e: dict[str, Any]) -> str | None:
    """The primary lane's new value for an event (None: no link); KEEP if it says nothing."""
    if _is(e, "registered", "primary"):
        return "registered"
    if _is(e, "primary_reachable"):
        return "reachable"          # probe session up, waiting out connectionMonitorDuration
    if (_is(e, "link_down", "primary") or _is(e, "link_down", "probe") or _is(e, "primary_lost")
            or _is(e, "primary_unstable") or _is(e, "probe_failed")
            or _is(e, "register_failed", "primary")):
        return "down"
    return KEEP


def _srst_value(e: dict[str, Any]) -> str | None:
    if _is(e, "standby_up"):
        return "standby"
    if _is(e, "registered", "srst"):
        return "registered"
    if (_is(e, "link_down", "srst") or _is(e, "standby_failed") or _is(e, "srst_lost")
            or _is(e, "register_failed", "srst")):
        return "down"
    if _is(e, "rehomed") or _is(e, "standby_disabled"):
        return None                 # unregistered and closed on purpose / never wanted
    return KEEP


def lane_spans(events: list[dict], end: float) -> list[Span]:
    """Phone state, primary link and SRST link spans from the board's events."""
    tracks = {lane: _Track(lane) for lane in LANES}
    for e in events:
        t = _sec(e)
        if _is(e, "state"):
            tracks["state"].set(t, str(e.get("state")))
            if e.get("state") == "BOOT":            # a (re)boot drops both links
                tracks["primary"].set(t, None)
                tracks["srst"].set(t, None)
            continue
        for lane, value in (("primary", _primary_value(e)), ("srst", _srst_value(e))):
            if value != KEEP:
                tracks[lane].set(t, value)
    out: list[Span] = []
    for tr in tracks.values():
        tr.close(end)
        out.extend(tr.spans)
    return out


# -- faults --------------------------------------------------------------------------------

def _flap_spans(a: dict[str, Any], end: float) -> list[Span]:
    """`count` cycles of cut for period/2, restored for period/2 (topology.flap)."""
    t0, period = _sec(a), float(a.get("period", 2.0))
    count, kind = int(a.get("count", 3)), a.get("kind", "blackhole")
    out = []
    for i in range(count):
        start = t0 + i * period
        if start >= end:
            break
        label = f"flap {i + 1}/{count} {kind}, {period:g} s" if i == 0 else f"{i + 1}/{count}"
        out.append(Span("fault", start, min(end, start + period / 2), label))
    return out


def _instant_label(a: dict[str, Any]) -> str | None:
    act = a.get("action")
    if act == "reboot_phone":
        return "phone rebooted"
    if act == "send_reset":
        return f"Reset sent (kind {a.get('kind', 2)})"
    if act == "replace_file":
        return f"{a.get('file')} {a.get('with')}"
    if act == "tftp_fault":
        return "TFTP fault"
    if act in ("hang", "kill", "restart") and a.get("server") not in SCCP_SERVERS:
        return f"{a.get('server')} {act}" + ("" if a.get("on", True) else " off")
    return None


def fault_spans(actions: list[dict], end: float) -> list[Span]:
    """Fault windows (lane "fault") and instant actions (lane "action") from the lab's
    actions: wan_cut..wan_restore, each flap cut, kill..restart, hang on..off."""
    out: list[Span] = []
    opened: dict[str, tuple[float, str]] = {}     # window key -> (start, label)

    def close(key: str, t: float) -> None:
        if key in opened:
            start, label = opened.pop(key)
            out.append(Span("fault", start, max(start, t), label))

    for a in actions:
        t, act, server = _sec(a), a.get("action"), a.get("server")
        if act == "wan_cut":
            label = f"WAN {a.get('kind', 'blackhole')}"
            if opened.get("wan", (0.0, label))[1] != label:
                close("wan", t)
            opened.setdefault("wan", (t, label))
        elif act == "wan_restore":
            close("wan", t)
        elif act == "flap":
            close("wan", t)                    # the flap takes the WAN over, ends restored
            out.extend(_flap_spans(a, end))
        elif act == "kill" and server in SCCP_SERVERS:
            opened.setdefault(f"kill:{server}", (t, f"{server} killed"))
        elif act == "restart" and server in SCCP_SERVERS:
            close(f"kill:{server}", t)
        elif act == "hang" and server in SCCP_SERVERS and a.get("on", True):
            opened.setdefault(f"hang:{server}", (t, f"{server} hung"))
        elif act == "hang" and server in SCCP_SERVERS:
            close(f"hang:{server}", t)
        elif (label := _instant_label(a)) is not None:
            out.append(Span("action", t, t, label))
    for key in list(opened):
        close(key, end)
    return sorted(out, key=lambda s: (s.start, s.end))


def intervals(events: list[dict], actions: list[dict], end: float | None = None) -> list[Span]:
    """Everything the picture shades: lane spans, then fault windows and instant actions."""
    end = timeline_end(events, actions) if end is None else end
    return lane_spans(events, end) + fault_spans(actions, end)


# -- measured figures ----------------------------------------------------------------------

def _key(a: dict[str, Any]) -> str:
    return f"{a['action']}:{a['server']}" if a.get("server") else str(a.get("action"))


def _first_after(events: list[dict], t: float, ev: str, link: str | None = None) -> dict | None:
    return next((e for e in events if _sec(e) >= t and _is(e, ev, link)), None)


def markers(report: dict[str, Any]) -> list[Marker]:
    """Failover (cut -> registered:srst) and re-home (restore -> rehomed) arrows, paired
    like metrics.compute pairs them, labelled with the report's own figures."""
    events, actions = report.get("events", []), report.get("actions", [])
    metrics = report.get("metrics") or {}
    found: dict[str, list[Marker]] = {"failover": [], "rehome": []}
    for a in actions:
        key, t = _key(a), _sec(a)
        if key in CUT_ACTIONS:
            hit, kind = _first_after(events, t, "registered", "srst"), "failover"
        elif a.get("action") in ("wan_restore", "restart") and key != "restart:srst":
            hit, kind = _first_after(events, t, "rehomed"), "rehome"
        else:
            continue
        if hit is not None:
            found[kind].append(Marker(kind, t, _sec(hit), round((_sec(hit) - t) * 1000), key))
    out: list[Marker] = []
    for kind, listed in (("failover", "failovers"), ("rehome", "rehomes")):
        measured = metrics.get(listed) or []
        seen: set[float] = set()
        for i, f in enumerate(found[kind]):
            same = i < len(measured) and measured[i].get("after") == f.after
            ms = measured[i]["ms"] if same else f.ms
            if f.end not in seen:                  # two actions answered by the same event
                seen.add(f.end)
                out.append(Marker(f.kind, f.start, f.end, int(ms), f.after))
    return out


# -- drawing -------------------------------------------------------------------------------

def draw(result_or_report: Any, path: Path) -> Path:
    """Draw the timeline picture of a run (runner.Result or report dict) into `path`:
    PNG or SVG by its suffix. Returns the path."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise ValueError(f"{path}: the picture is PNG or SVG (by the file's suffix)")
    rep = as_report(result_or_report)
    fig = _figure(rep)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=fmt, dpi=DPI)
    return path


def _figure(rep: dict[str, Any]) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.085, right=0.985, top=0.80, bottom=0.20)
    ax = fig.add_subplot()
    events, actions = rep.get("events", []), rep.get("actions", [])
    end = timeline_end(events, actions, rep.get("ended_ms"))
    spans = intervals(events, actions, end)
    _axes(ax, end)
    rows = _faults(ax, [s for s in spans if s.lane in ("fault", "action")])
    ax.set_ylim(-0.55, max(rows, default=3.5) + 0.25)
    _lanes(ax, [s for s in spans if s.lane in LANES])
    marks = markers(rep)
    _figures(ax, marks)
    _title(fig, rep)
    _legend(fig, spans, marks)
    return fig


# y layout (data units): the figures row at 0, lanes at 1..3, fault labels above 3.5
_LANE_Y = {"srst": 1.0, "primary": 2.0, "state": 3.0}
_BAND_H = 0.62
_FAULT_ROWS = tuple(3.62 + 0.28 * i for i in range(6))   # label rows, used bottom up
_FIGURE_ROWS = (0.05, -0.3)
_SHADE = (0.55, 3.45)                 # fault windows cover the three lanes
_MIN_BAND_PX = 4


def _axes(ax: Any, end: float) -> None:
    ax.set_xlim(0, end)
    ax.set_ylim(-0.55, 4.45)
    ax.set_yticks([0.0, *_LANE_Y.values()])
    ax.set_yticklabels(["measured", *(LANE_TITLES[k] for k in _LANE_Y)], fontsize=10)
    ax.set_xlabel("seconds since the board started", fontsize=10)
    ax.tick_params(axis="x", labelsize=9)
    ax.tick_params(axis="y", length=0)
    ax.grid(axis="x", color="#e0e0e0", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _text_fits(ax: Any, text: Any, start: float, end: float) -> bool:
    r = ax.figure.canvas.get_renderer()
    width_px = text.get_window_extent(r).width
    x0, x1 = ax.transData.transform([(start, 0), (end, 0)])[:, 0]
    return width_px + 6 <= (x1 - x0)


def _lanes(ax: Any, spans: list[Span]) -> None:
    # a few milliseconds (REHOME, a probe's blip) still get a visible sliver
    min_w = _MIN_BAND_PX * (ax.get_xlim()[1] - ax.get_xlim()[0]) / ax.bbox.width
    for s in spans:
        colours = STATE_COLOURS if s.lane == "state" else LINK_COLOURS
        y = _LANE_Y[s.lane]
        tiny = s.end - s.start < min_w
        ax.broken_barh([(s.start, max(s.end - s.start, min_w))], (y - _BAND_H / 2, _BAND_H),
                       facecolors=colours.get(s.label, "#bdbdbd"), edgecolor="white",
                       linewidth=0 if tiny else 0.8, zorder=2.5 if tiny else 2)
        dark = s.label in ("registered", "standby", "REHOME")
        txt = ax.text((s.start + s.end) / 2, y, s.label, ha="center", va="center", fontsize=9,
                      color="white" if dark else "#212121", zorder=3, clip_on=True)
        if not _text_fits(ax, txt, s.start, s.end):
            txt.remove()


def _place(ax: Any, x: float, rows: Iterable[float], label: str, placed: dict[float, list],
           **kw: Any) -> Any:
    """Put `label` at x in the first row where it overlaps no earlier label."""
    r = ax.figure.canvas.get_renderer()
    rows = list(rows)
    for y in rows:
        txt = ax.text(x, y, label, **kw)
        box = txt.get_window_extent(r).expanded(1.0, 1.0).padded(4)
        if not any(box.overlaps(b) for b in placed.setdefault(y, [])):
            placed[y].append(box)
            return txt
        txt.remove()
    # no room anywhere: the last row, right of its last label
    right = max(b.x1 for b in placed[rows[-1]]) + 6
    x = ax.transData.inverted().transform((right, 0))[0]
    txt = ax.text(x, rows[-1], label, **{**kw, "ha": "left"})
    placed[rows[-1]].append(txt.get_window_extent(r))
    return txt


def _faults(ax: Any, spans: list[Span]) -> list[float]:
    """Fault windows and instant actions with their labels; returns the label rows used."""
    from matplotlib.patches import Rectangle

    placed: dict[float, list] = {}
    lo, hi = _SHADE
    for s in spans:
        if s.lane == "fault":
            ax.add_patch(Rectangle((s.start, lo), s.end - s.start, hi - lo, facecolor=FAULT_COLOUR,
                                   alpha=0.13, edgecolor=FAULT_COLOUR, hatch="//", linewidth=0,
                                   zorder=1))
            ax.plot([s.start, s.start], [lo, _FAULT_ROWS[0]], color=FAULT_COLOUR, linewidth=1,
                    zorder=4)
            colour = FAULT_COLOUR
        else:
            ax.plot([s.start, s.start], [lo, _FAULT_ROWS[0]], color=ACTION_COLOUR,
                    linewidth=1.4, linestyle="--", zorder=4)
            colour = ACTION_COLOUR
        _place(ax, s.start, _FAULT_ROWS, s.label, placed, ha="left", va="center", fontsize=9,
               color=colour, fontweight="bold", zorder=5,
               bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none",
                     "alpha": 0.85})
    return [y for y, boxes in placed.items() if boxes]


def _fmt_ms(ms: int) -> str:
    return f"{ms:,} ms" if ms < 10000 else f"{ms / 1000:.1f} s"


def _figures(ax: Any, marks: list[Marker]) -> None:
    placed: dict[float, list] = {}
    if not marks:
        ax.text(0.005, 0.0, "no failover or rehome measured in this run", fontsize=9,
                style="italic", color="#757575", va="center", ha="left",
                transform=ax.get_yaxis_transform())
    for m in marks:
        colour = FIGURE_COLOURS[m.kind]
        label = f"{m.kind} {_fmt_ms(m.ms)}"
        txt = _place(ax, (m.start + m.end) / 2, _FIGURE_ROWS, label, placed, ha="center",
                     va="bottom", fontsize=9, color=colour, fontweight="bold", zorder=6)
        y = txt.get_position()[1] - 0.06
        ax.annotate("", xy=(m.end, y), xytext=(m.start, y), zorder=6,
                    arrowprops={"arrowstyle": "-|>", "color": colour, "linewidth": 1.8,
                                "shrinkA": 0, "shrinkB": 0})
        ax.plot([m.start, m.start], [y, 3.5], color=colour, linewidth=0.9, linestyle=":",
                zorder=4)
        ax.plot([m.end, m.end], [y, 3.5], color=colour, linewidth=0.9, linestyle=":", zorder=4)


def _figures_line(metrics: dict[str, Any]) -> str:
    parts = []
    for key, name in (("boot_to_registered_ms", "boot to registered"),
                      ("standby_up_ms", "standby up"), ("failover_ms", "failover"),
                      ("rehome_ms", "rehome")):
        if isinstance(metrics.get(key), (int, float)):
            parts.append(f"{name} {_fmt_ms(int(metrics[key]))}")
    if isinstance(metrics.get("peak_heap_bytes"), int):
        parts.append(f"peak heap {metrics['peak_heap_bytes'] / 1024:.1f} KiB")
    if metrics.get("final_state"):
        parts.append(f"final state {metrics['final_state']}")
    return "   ·   ".join(parts)


def _why_failed(rep: dict[str, Any]) -> str:
    reasons = [rep["error"]] if rep.get("error") else []
    reasons += [f"{e.get('name')}: {e.get('message')}" for e in rep.get("expectations", [])
                if not e.get("passed")]
    text = "; ".join(str(r) for r in reasons)
    return text if len(text) <= 190 else text[:187] + "..."


def _title(fig: Any, rep: dict[str, Any]) -> None:
    passed = bool(rep.get("passed"))
    verdict = "PASSED" if passed else "FAILED"
    fig.text(0.085, 0.955, str(rep.get("scenario", "?")), fontsize=15, fontweight="bold",
             va="center", ha="left")
    name_w = fig.texts[-1].get_window_extent(fig.canvas.get_renderer()).width / fig.bbox.width
    fig.text(0.085 + name_w + 0.008, 0.955, verdict, fontsize=15, fontweight="bold",
             va="center", ha="left", color="#2e7d32" if passed else "#c62828")
    fig.text(0.985, 0.955, f"board {rep.get('board', '?')}  ·  {rep.get('mode', '?')} lab",
             fontsize=11, va="center", ha="right", color="#424242")
    fig.text(0.085, 0.895, _figures_line(rep.get("metrics") or {}), fontsize=10.5,
             va="center", ha="left", color="#212121")
    if not passed:
        fig.text(0.085, 0.848, _why_failed(rep), fontsize=9.5, va="center", ha="left",
                 color="#c62828")


def _legend(fig: Any, spans: list[Span], marks: list[Marker]) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = []
    states = [s for s in STATE_COLOURS if any(x.lane == "state" and x.label == s for x in spans)]
    links = [k for k in LINK_COLOURS if any(x.lane in ("primary", "srst") and x.label == k
                                            for x in spans)]
    handles += [Patch(facecolor=STATE_COLOURS[s], label=s) for s in states]
    handles += [Patch(facecolor=LINK_COLOURS[k], label=f"link {k}") for k in links]
    if any(x.lane == "fault" for x in spans):
        handles.append(Patch(facecolor=FAULT_COLOUR, alpha=0.25, hatch="//",
                             edgecolor=FAULT_COLOUR, label="fault window"))
    if any(x.lane == "action" for x in spans):
        handles.append(Line2D([], [], color=ACTION_COLOUR, linestyle="--", label="lab action"))
    for kind in ("failover", "rehome"):
        if any(m.kind == kind for m in marks):
            handles.append(Line2D([], [], color=FIGURE_COLOURS[kind], linewidth=1.8,
                                  marker=">", label=f"{kind} time"))
    if not handles:
        return
    leg = _legend_row(fig, handles, len(handles))          # one row if it fits, else two
    if leg.get_window_extent(fig.canvas.get_renderer()).width > 0.97 * fig.bbox.width:
        leg.remove()
        _legend_row(fig, handles, (len(handles) + 1) // 2)


def _legend_row(fig: Any, handles: list[Any], ncol: int) -> Any:
    return fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=9.5,
                      frameon=False, bbox_to_anchor=(0.5, 0.0), handlelength=1.6,
                      columnspacing=1.3)
