"""A small SVG chart for the README (no plotting library: one picture, plain shapes).

curve(points, real, target, title): x = messages per phone per minute, y = failover seconds;
each point is its median (a dot) and its worst (a bar up to it), labelled; `real` draws the
real phones' range, `target` the region the defaults must fall in."""
from __future__ import annotations

from html import escape

W, H = 720, 420
LEFT, RIGHT, TOP, BOTTOM = 60, 20, 40, 50


def _ticks(top: float, step: float) -> list[float]:
    n = int(top / step)
    return [i * step for i in range(n + 1)]


def curve(points: list[tuple[float, float, float, str, bool]],
          real: tuple[float, float, float], target: tuple[float, float], title: str) -> str:
    """points: (x, median_s, worst_s, label, is_default); real: (x, low_s, high_s);
    target: (max_x, max_s)."""
    xmax = max([p[0] for p in points] + [real[0], target[0]]) * 1.15 or 1.0
    ymax = max([p[2] for p in points] + [real[2]]) * 1.12 or 1.0
    xstep = 2.0 if xmax <= 30 else 5.0
    ystep = 5.0 if ymax <= 50 else 10.0
    xmax, ymax = (int(xmax / xstep) + 1) * xstep, (int(ymax / ystep) + 1) * ystep

    def X(v: float) -> float:
        return LEFT + (W - LEFT - RIGHT) * v / xmax

    def Y(v: float) -> float:
        return H - BOTTOM - (H - TOP - BOTTOM) * v / ymax

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>']
    # the target region and the real phones' range
    out.append(f'<rect x="{X(0)}" y="{Y(target[1])}" width="{X(target[0]) - X(0)}" '
               f'height="{Y(0) - Y(target[1])}" fill="#e6f4e6" stroke="#4a4" '
               f'stroke-dasharray="5,3"/>')
    out.append(f'<text x="{X(0) + 6}" y="{Y(target[1]) + 15}" fill="#282">target: '
               f'median &#8804; {target[1]:g} s at &#8804; {target[0]:g} msgs/min</text>')
    out.append(f'<rect x="{X(real[0]) - 6}" y="{Y(real[2])}" width="12" '
               f'height="{Y(real[1]) - Y(real[2])}" fill="#f4c7c3" stroke="#c33"/>')
    out.append(f'<text x="{X(real[0]) + 10}" y="{Y(real[2]) + 10}" fill="#c33">real phones '
               f'({real[1]:g}-{real[2]:g} s)</text>')
    # axes
    for v in _ticks(xmax, xstep):
        out.append(f'<line x1="{X(v)}" y1="{Y(0)}" x2="{X(v)}" y2="{Y(0) + 5}" stroke="#333"/>')
        out.append(f'<text x="{X(v)}" y="{Y(0) + 18}" text-anchor="middle">{v:g}</text>')
    for v in _ticks(ymax, ystep):
        out.append(f'<line x1="{X(0)}" y1="{Y(v)}" x2="{X(xmax)}" y2="{Y(v)}" stroke="#eee"/>')
        out.append(f'<text x="{X(0) - 8}" y="{Y(v) + 4}" text-anchor="end">{v:g}</text>')
    out.append(f'<line x1="{X(0)}" y1="{Y(0)}" x2="{X(xmax)}" y2="{Y(0)}" stroke="#333"/>')
    out.append(f'<line x1="{X(0)}" y1="{Y(0)}" x2="{X(0)}" y2="{Y(ymax)}" stroke="#333"/>')
    out.append(f'<text x="{(X(0) + X(xmax)) / 2}" y="{H - 12}" text-anchor="middle">messages '
               f'per phone per minute received by the call manager (registered)</text>')
    out.append(f'<text x="16" y="{(Y(0) + Y(ymax)) / 2}" text-anchor="middle" '
               f'transform="rotate(-90 16 {(Y(0) + Y(ymax)) / 2})">failover after a silent '
               f'cut, s (dot: median, bar: worst)</text>')
    # the line through the medians, then each point
    line = sorted(points)
    if len(line) > 1:
        path = " ".join(f"{X(p[0]):.1f},{Y(p[1]):.1f}" for p in line)
        out.append(f'<polyline points="{path}" fill="none" stroke="#36c" stroke-width="1.5"/>')
    for x, med, worst, label, default in points:
        colour = "#c60" if default else "#36c"
        out.append(f'<line x1="{X(x)}" y1="{Y(med)}" x2="{X(x)}" y2="{Y(worst)}" '
                   f'stroke="{colour}" stroke-width="3" opacity="0.5"/>')
        out.append(f'<circle cx="{X(x)}" cy="{Y(med)}" r="{6 if default else 4}" '
                   f'fill="{colour}"/>')
        out.append(f'<text x="{X(x) + 8}" y="{Y(med) - 6}" fill="{colour}">'
                   f'{escape(label)}: {med:.1f} s</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
