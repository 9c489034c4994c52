"""Which candidate mapping wins: the objectives and the per-layer choice among candidates.

Candidates arrive grouped by layer (one array entry per candidate, ``layer`` naming its layer);
``select`` returns each layer's winner for an objective. The single objectives take the least
value with the other two as tie-breaks; ``balanced`` (the default) balances latency and DRAM
bytes over the whole network (README: objectives).
"""

import numpy as np

DEFAULT_OBJECTIVE = "balanced"
OBJECTIVES = ("balanced", "dram_bytes", "energy_pj", "latency_cycles")
# balanced: the DRAM-byte weights lambda tried against latency (README: objectives).
BALANCE_WEIGHTS = tuple(2.0 ** np.arange(-6, 7))
BALANCE_SLACK = 0.03
# The cost columns ``select`` reads (a search hands it these of the candidates that fit).
SELECTION_COLUMNS = ("latency_cycles", "dram_bytes", "energy_pj", "compute_cycles",
                     "dram_transactions")
_TIE_BREAK = {"dram_bytes": ("latency_cycles", "energy_pj"),
              "energy_pj": ("latency_cycles", "dram_bytes"),
              "latency_cycles": ("dram_bytes", "energy_pj")}


def layer_starts(layer: np.ndarray) -> np.ndarray:
    """Index of each layer's first candidate (candidates grouped by layer)."""
    head = np.ones(len(layer), dtype=bool)
    head[1:] = layer[1:] != layer[:-1]
    return np.flatnonzero(head)


def per_layer_min(layer: np.ndarray, values: np.ndarray, starts=None) -> np.ndarray:
    """Each candidate's layer minimum of ``values`` (candidates grouped by layer along the
    last axis; leading axes are rows reduced independently)."""
    starts = layer_starts(layer) if starts is None else starts
    return np.repeat(np.minimum.reduceat(values, starts, axis=-1),
                     np.diff(starts, append=len(layer)), axis=-1)


def pareto_front(layer: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Indices of each layer's candidates that no other candidate of the layer beats on both
    ``first`` and ``second`` (with ties on ``first``, possibly a few more), grouped by layer."""
    order = np.lexsort((first, layer))
    lay, value = layer[order], second[order]
    # Running minimum of ``second`` within each layer: offsetting later layers far below lets
    # one accumulate run over all layers without carrying across them.
    shifted = value - lay * (2 * np.ptp(value) + 2.0)
    prev = np.empty_like(shifted)
    prev[0] = np.inf
    prev[1:] = np.minimum.accumulate(shifted)[:-1]
    keep = shifted < prev
    keep[layer_starts(lay)] = True
    return np.sort(order[keep])


def choose(layer: np.ndarray, keys: list[np.ndarray], starts=None) -> np.ndarray:
    """Index of the best candidate of each layer: lexicographic over ``keys``, then first.

    Candidates must be grouped by layer; ties on every key go to the earliest candidate, so
    the choice is deterministic. Keys may carry leading rows (broadcast against each other):
    then each row gets its own choice, one row of indices per row.
    """
    starts = layer_starts(layer) if starts is None else starts
    alive = np.ones(np.broadcast_shapes(*(np.shape(key) for key in keys)), dtype=bool)
    for key in keys:
        masked = np.where(alive, key, np.inf)
        alive &= masked == per_layer_min(layer, masked, starts)
    index = np.arange(len(layer))
    return np.minimum.reduceat(np.where(alive, index, len(layer)), starts, axis=-1)


def check_objective(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")


def _slack_step(layer: np.ndarray, costs: dict, picked: np.ndarray) -> np.ndarray:
    """``balanced``'s last step on each row of ``picked`` (one candidate per layer): per layer,
    the fewest array cycles among the candidates with no more DRAM bytes and at most
    BALANCE_SLACK more latency than the pick, then the least energy, latency and DRAM
    transactions. A fill saved is worth more than a sliver of overlap the latency model
    credits to smaller first tiles."""
    latency, dram = costs["latency_cycles"], costs["dram_bytes"]
    lat_cap, dram_cap = latency[picked] * (1 + BALANCE_SLACK), dram[picked]
    # Only candidates inside some row's window can win: the rows are built over those alone.
    counts = np.diff(layer_starts(layer), append=len(layer))
    inside = np.flatnonzero((latency <= np.repeat(lat_cap.max(axis=0), counts))
                            & (dram <= np.repeat(dram_cap.max(axis=0), counts)))
    starts = layer_starts(layer[inside])
    counts = np.diff(starts, append=len(inside))
    near = ((latency[inside] <= np.repeat(lat_cap, counts, axis=-1))
            & (dram[inside] <= np.repeat(dram_cap, counts, axis=-1)))
    keys = [np.where(near, costs["compute_cycles"][inside], np.inf)]
    keys += [costs[k][inside] for k in ("energy_pj", "latency_cycles", "dram_transactions")]
    return inside[choose(layer[inside], keys, starts)]


def select(layer: np.ndarray, costs: dict, objective: str,
           weight: np.ndarray | None = None) -> np.ndarray:
    """Index of each layer's best candidate for ``objective`` (candidates grouped by layer).

    ``balanced`` balances the whole network (``weight``: how often each layer occurs): with
    L0 and D0 the network's latency and DRAM bytes when every layer takes its own optimum of
    each, every layer minimizes latency / L0 + lambda * DRAM / D0 (ties: the least energy),
    then takes ``_slack_step``; lambda is the one of ``BALANCE_WEIGHTS`` whose network totals
    after that step keep the larger of latency / L0 and DRAM / D0 smallest (then their sum).
    A weighted sum of network totals splits into one term per layer, so the per-layer choices
    are exact for each lambda; only the (latency, DRAM) Pareto front of each layer is scored.

    Last, every objective breaks ties by the fewest DRAM transactions (``balanced`` first by
    the least latency): a pool or add split into tiles smaller than a burst moves the same
    bytes in more bursts.
    """
    if objective != "balanced":
        keys = [costs[objective]] + [costs[k] for k in _TIE_BREAK[objective]]
        return choose(layer, keys + [costs["dram_transactions"]])
    latency, dram = costs["latency_cycles"], costs["dram_bytes"]
    front = pareto_front(layer, latency, dram)
    starts = layer_starts(layer[front])
    weight = np.ones(len(starts)) if weight is None else weight
    lat0 = float(weight @ np.minimum.reduceat(latency[front], starts))
    dram0 = float(weight @ np.minimum.reduceat(dram[front], starts))
    # All lambdas at once: row i holds every front candidate's score for BALANCE_WEIGHTS[i].
    lam = np.array(BALANCE_WEIGHTS)[:, None]
    score = latency[front] / lat0 + lam * dram[front] / dram0
    picked = front[choose(layer[front], [score, costs["energy_pj"][front]], starts)]
    final = _slack_step(layer, costs, picked)
    lat_ratio, dram_ratio = latency[final] @ weight / lat0, dram[final] @ weight / dram0
    # lambda by the network totals after the slack step: the larger ratio smallest, then
    # their sum.
    key = np.lexsort((np.round(lat_ratio + dram_ratio, 12),
                      np.round(np.maximum(lat_ratio, dram_ratio), 12)))
    return final[key[0]]


__all__ = [
    "BALANCE_SLACK",
    "BALANCE_WEIGHTS",
    "DEFAULT_OBJECTIVE",
    "OBJECTIVES",
    "SELECTION_COLUMNS",
    "check_objective",
    "choose",
    "layer_starts",
    "pareto_front",
    "per_layer_min",
    "select",
]
