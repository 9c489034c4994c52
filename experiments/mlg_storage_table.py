"""MLG storage ratios (paper Table 2 and the held-out rows), read from the hwsim tracer.

Usage: ``python experiments/mlg_storage_table.py [--out table.csv]``. Prints one row per model,
setting and dataset with the parameter and memory ratios (whole model, BN γ/β and the 8-bit FC
included, everything against fp32; docs/methods.md, MLG: storage) next to the paper's value
where it has one.
"""

import argparse

import pandas as pd

from hwsim.trace import trace
from models import create_model

KEYS = ("base_in", "base_out", "basis_bit", "coeff_in_bit", "coeff_out_bit")
# (model, setting, classes, paper param ratio, paper memory ratio); None: held out / not given.
ROWS = [
    ("mlg_resnet18", "2-44-32-32-32", 10, 0.0497, 0.0497),
    ("mlg_resnet18", "2-44-8-8-8", 10, 0.0497, 0.0131),
    ("mlg_resnet18", "2-44-3-6-3", 10, 0.0497, 0.0080),
    ("mlg_resnet18", "2-44-32-32-32", 100, 0.0536, 0.0536),
    ("mlg_resnet18", "2-44-8-8-8", 100, 0.0536, 0.0140),
    ("mlg_resnet18", "2-44-3-6-3", 100, 0.0536, 0.0090),
    ("mlg_densenet121", "1-25-32-32-32", 10, None, None),
    ("mlg_densenet121", "1-25-8-8-8", 10, None, None),
    ("mlg_densenet121", "1-25-4-6-6", 10, None, None),
    ("mlg_densenet121", "1-25-32-32-32", 100, None, None),
    ("mlg_densenet121", "1-25-8-8-8", 100, None, None),
    ("mlg_densenet121", "1-25-4-6-6", 100, None, None),
    ("mlg_mobilenetv2", "5-40-4-4-4", 10, None, None),
    ("mlg_mobilenetv2", "5-40-4-4-4", 100, None, None),
]


def table() -> pd.DataFrame:
    rows = []
    for name, setting, classes, paper_param, paper_memory in ROWS:
        mlg = dict(zip(KEYS, (int(v) for v in setting.split("-"))))
        storage = trace(create_model(name, num_classes=classes, mlg=mlg), (3, 32, 32)).storage
        rows.append({"model": name, "setting": setting, "classes": classes,
                     "stored_params": storage["params"], "dense_params": storage["dense_params"],
                     "param_ratio": round(storage["param_ratio"], 4),
                     "memory_ratio": round(storage["memory_ratio"], 4),
                     "paper_param_ratio": paper_param, "paper_memory_ratio": paper_memory})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the table as CSV here")
    args = parser.parse_args()
    result = table()
    print(result.to_string(index=False))
    if args.out:
        result.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
