"""hwsim.catalog: the static model table the fast CLI reads equals the live registry."""

import pytest

from hwsim import catalog


def test_model_table_equals_the_registry():
    live = catalog.live_models()
    if catalog.MODELS != live:  # print what to paste, as the golden tests do
        pytest.fail("hwsim/catalog.py is stale; paste this over MODELS:\n"
                    + catalog._source(live))
    assert {"resrep_resnet56", "pg_resnet20", "cg_resnet20", "mlg_resnet18"} <= set(live)


def test_defaults_equal_their_homes():
    from hwsim.cost import DEFAULT_OBJECTIVE, OBJECTIVES
    from hwsim.pipeline import HARDWARE

    assert catalog.OBJECTIVES == OBJECTIVES and catalog.DEFAULT_OBJECTIVE == DEFAULT_OBJECTIVE
    assert catalog.CALIB_BATCHES == HARDWARE["calib_batches"][0]
    from models.data import DATASETS

    assert catalog.DATASETS == tuple(DATASETS)


def test_unknown_model_names_the_closest():
    with pytest.raises(KeyError, match="did you mean resnet18"):
        catalog.check_model("resnt18")


def test_summaries_are_plain_text():
    assert catalog._plain("scaled by ``width``") == "scaled by width"
    assert all("``" not in entry["summary"] for entry in catalog.MODELS.values())
