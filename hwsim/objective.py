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
    """Each candidate's layer minimum of ``values`` (candidates grouped by layer)."""
    starts = layer_starts(layer) if starts is None else starts
    return np.repeat(np.minimum.reduceat(values, starts), np.diff(starts, append=len(layer)))


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
    the choice is deterministic.
    """
    starts = layer_starts(layer) if starts is None else starts
    alive = np.ones(len(layer), dtype=bool)
    for key in keys:
        masked = np.where(alive, key, np.inf)
        alive &= masked == per_layer_min(layer, masked, starts)
    index = np.arange(len(layer))
    return np.minimum.reduceat(np.where(alive, index, len(layer)), starts)


def check_objective(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")


def select(layer: np.ndarray, costs: dict, objective: str,
           weight: np.ndarray | None = None) -> np.ndarray:
    """Index of each layer's best candidate for ``objective`` (candidates grouped by layer).

    ``balanced`` balances the whole network (``weight``: how often each layer occurs): with
    L0 and D0 the network's latency and DRAM bytes when every layer takes its own optimum of
    each, every layer minimizes latency / L0 + lambda * DRAM / D0, and lambda is the one of
    ``BALANCE_WEIGHTS`` whose network totals keep the larger of latency / L0 and DRAM / D0
    smallest (then their sum). A weighted sum of network totals splits into one term per
    layer, so the per-layer choices are exact for each lambda; only the (latency, DRAM) Pareto
    front of each layer is scored. Ties go to the least energy.

    Last, every objective breaks ties by the fewest DRAM transactions (``balanced`` first by
    the least latency): a pool or add split into tiles smaller than a burst moves the same
    bytes in more bursts.
    """
    if objective != "balanced":
        keys = [costs[objective]] + [costs[k] for k in _TIE_BREAK[objective]]
        return choose(layer, keys + [costs["dram_transactions"]])
    all_layers, all_starts = layer, layer_starts(layer)
    latency, dram, energy = costs["latency_cycles"], costs["dram_bytes"], costs["energy_pj"]
    front = pareto_front(layer, latency, dram)
    layer, latency, dram, energy = layer[front], latency[front], dram[front], energy[front]
    starts = layer_starts(layer)
    weight = np.ones(len(starts)) if weight is None else weight
    lat0 = float(weight @ np.minimum.reduceat(latency, starts))
    dram0 = float(weight @ np.minimum.reduceat(dram, starts))
    # All lambdas at once: row i holds every candidate's score for BALANCE_WEIGHTS[i].
    lam = np.array(BALANCE_WEIGHTS)[:, None]
    counts = np.diff(starts, append=len(layer))
    score = latency / lat0 + lam * dram / dram0
    alive = score == np.repeat(np.minimum.reduceat(score, starts, axis=1), counts, axis=1)
    cost_e = np.where(alive, energy, np.inf)
    alive &= cost_e == np.repeat(np.minimum.reduceat(cost_e, starts, axis=1), counts, axis=1)
    chosen = np.minimum.reduceat(np.where(alive, np.arange(len(layer)), len(layer)), starts,
                                 axis=1)
    lat_ratio, dram_ratio = latency[chosen] @ weight / lat0, dram[chosen] @ weight / dram0
    key = np.lexsort((np.round(lat_ratio + dram_ratio, 12),
                      np.round(np.maximum(lat_ratio, dram_ratio), 12)))
    best = chosen[key[0]]
    # Then the fewest array cycles among the layer's candidates with no more DRAM bytes and at
    # most BALANCE_SLACK more latency: a fill saved is worth more than a sliver of overlap
    # the latency model credits to smaller first tiles.
    picked = np.repeat(front[best], np.diff(all_starts, append=len(all_layers)))
    near = ((costs["latency_cycles"] <= costs["latency_cycles"][picked] * (1 + BALANCE_SLACK))
            & (costs["dram_bytes"] <= costs["dram_bytes"][picked]))
    return choose(all_layers, [np.where(near, costs["compute_cycles"], np.inf),
                               costs["energy_pj"], costs["latency_cycles"],
                               costs["dram_transactions"]], all_starts)


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
