"""Helpers shared by the compare reporters (compare.py, store_compare.py,
tasks_compare.py): reading numbers out of the result documents, medians over
repetitions and number formatting."""
import math


def num(x):
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) and not math.isnan(x) else None


def get(obj, path):
    """The number at a dotted path, or None."""
    for p in path.split("."):
        if not isinstance(obj, dict) or p not in obj:
            return None
        obj = obj[p]
    return num(obj)


def median(values):
    v = sorted(x for x in values if num(x) is not None)
    if not v:
        return None
    m = len(v) // 2
    return v[m] if len(v) % 2 else (v[m - 1] + v[m]) / 2


def med(reps, path, scale=1.0):
    """Median over repetitions of a dotted path, or of a function of one repetition."""
    f = path if callable(path) else (lambda r: get(r, path))
    m = median(f(r) for r in reps)
    return None if m is None else m * scale


def fmt(x):
    if x is None:
        return "n/a"
    a = abs(x)
    if a >= 100:
        return f"{x:,.0f}"
    if a >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"
