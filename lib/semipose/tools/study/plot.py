"""The study's pictures, drawn with OpenCV."""

import math
from pathlib import Path

from .stats import mean_std, run_minutes, seed_curves


def _panel_axes(img, box, title, y_max, x_max):
    """Draws one panel's frame, grid, tick labels and title; returns its ``px(epoch, value)`` ->
    pixel mapping. ``box``: (x0, top, right, bottom), the frame from x0 + 56 to right."""
    import cv2

    font = cv2.FONT_HERSHEY_SIMPLEX
    x0, top, right, bottom = box
    left = x0 + 56

    def px(ep, value):
        return (int(left + (right - left) * ep / x_max),
                int(bottom - (bottom - top) * min(max(value, 0.0), y_max) / y_max))

    grey = (120, 120, 120)
    for i in range(6):
        value = y_max * i / 5
        y = px(0, value)[1]
        cv2.line(img, (left, y), (right, y), (232, 232, 232), 1)
        cv2.putText(img, f"{value:.2f}" if y_max <= 1 else f"{value:.0f}", (x0 + 8, y + 4),
                    font, 0.4, grey, 1, cv2.LINE_AA)
        ep = x_max * i / 5
        cv2.putText(img, f"{ep:.0f}", (px(ep, 0)[0] - 8, bottom + 16), font, 0.4, grey, 1,
                    cv2.LINE_AA)
    cv2.rectangle(img, (left, top), (right, bottom), (0, 0, 0), 1)
    cv2.putText(img, title, (left, 20), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "epoch", ((left + right) // 2 - 20, bottom + 32), font, 0.45, (0, 0, 0), 1,
                cv2.LINE_AA)
    return px


def write_spread_plot(study, runs, path, size=(1500, 440), head="net1"):
    """Three panels drawn with OpenCV: AP of ``head``, net 1's background share and its mean
    teacher peak against the epoch; per row the mean over the seeds as a line and mean ± std as a
    band.

    Returns:
        ``path``.
    """
    import cv2
    import numpy as np

    width, height = size
    img = np.full((height, width, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    rows = list(dict.fromkeys(r.row.name for r in runs))
    curves = {name: seed_curves(runs, name, head) for name in rows}
    names = [name for name, curve in curves.items() if curve]
    x_max = math.ceil((max([ep for c in curves.values() for ep, _ in c] + [1]) + 1) / 10) * 10
    ap_max = max([st["ap"][0] + st["ap"][1] for c in curves.values() for _, st in c
                  if st["ap"][2]] + [0.1])
    ap_max = min(1.0, math.ceil(ap_max * 10) / 10)
    palette = [(200, 120, 30), (40, 160, 40), (30, 30, 210), (160, 60, 160), (20, 140, 200),
               (90, 90, 90), (0, 180, 180), (140, 100, 60), (60, 60, 160), (120, 180, 60),
               (180, 40, 120), (0, 100, 200)]
    third = width // 3
    panels = [(0, f"AP {head} (mean, band: +- std over seeds)", ap_max, "ap", 1.0),
              (third, "background share of net 1 (%)", 100.0, "share", 100.0),
              (2 * third, "mean teacher peak of net 1", 1.0, "peak", 1.0)]
    for x0, title, y_max, key, scale in panels:
        left, top = x0 + 56, 30
        px = _panel_axes(img, (x0, top, x0 + third - 16, height - 40), title, y_max, x_max)
        for k, name in enumerate(names):
            color = palette[list(study.rows).index(name) % len(palette)]  # one colour per row
            points = [(ep, st[key][0] * scale, st[key][1] * scale)
                      for ep, st in curves[name] if st[key][2]]
            if not points:
                continue
            band = ([px(ep, m + s) for ep, m, s in points]
                    + [px(ep, m - s) for ep, m, s in reversed(points)])
            layer = img.copy()
            cv2.fillPoly(layer, [np.array(band, np.int32)], color)
            img = cv2.addWeighted(layer, 0.18, img, 0.82, 0)
            line = np.array([px(ep, m) for ep, m, _ in points], np.int32)
            cv2.polylines(img, [line], False, color, 2, cv2.LINE_AA)
            if key == "ap":
                y = top + 16 + 16 * k
                cv2.line(img, (left + 8, y - 4), (left + 30, y - 4), color, 2)
                cv2.putText(img, f"{name} {points[-1][1]:.3f}", (left + 36, y), font, 0.4,
                            (0, 0, 0), 1, cv2.LINE_AA)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"could not write {path}")
    return path


def write_cost_plot(study, runs, path, machine="", size=(900, None)):
    """A bar per row: the minutes one run of it took (mean over its finished seeds, the whisker
    ± std), from the runs' epoch records, with the machine under the title.

    Returns:
        ``path``, or None when no run has finished (nothing is written).
    """
    import cv2
    import numpy as np

    rows = list(dict.fromkeys(r.row.name for r in runs))
    stats = []
    for name in rows:
        mean, std, n = mean_std([run_minutes(r.epochs) for r in runs
                                 if r.row.name == name and r.status == "ok"])
        if n:
            stats.append((name, mean, std, n))
    if not stats:
        return None
    width = size[0]
    bar_h, top, label_w = 26, 58, 190
    height = size[1] or top + bar_h * len(stats) + 40
    img = np.full((height, width, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    x_max = max(m + s for _, m, s, _ in stats) * 1.15
    left, right = label_w, width - 90
    cv2.putText(img, f"minutes per run of study {study.name} (mean, whisker: +- std over seeds)",
                (12, 20), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, machine[:110], (12, 40), font, 0.35, (90, 90, 90), 1, cv2.LINE_AA)

    def px(value):
        return int(left + (right - left) * value / x_max)

    for k, (name, mean, std, n) in enumerate(stats):
        y = top + k * bar_h
        color = (200, 120, 30)
        cv2.rectangle(img, (left, y + 4), (px(mean), y + bar_h - 4), color, -1)
        cv2.line(img, (px(mean - std), y + bar_h // 2), (px(mean + std), y + bar_h // 2),
                 (0, 0, 0), 1)
        cv2.putText(img, name, (12, y + bar_h - 9), font, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, f"{mean:.1f} ({n})", (px(mean + std) + 6, y + bar_h - 9), font, 0.4,
                    (0, 0, 0), 1, cv2.LINE_AA)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"could not write {path}")
    return path
