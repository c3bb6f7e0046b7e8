import pytest
from hydra.errors import ConfigCompositionException

from reasonbridge.config import ConfigError, validate
from tests.conftest import compose_config


def test_default_config_composes_and_validates():
    cfg = compose_config()
    validate(cfg)
    assert cfg.model.source == "tiny" and cfg.adapters.name == "lora" and cfg.data.name == "full"
    assert cfg.tracking.row == "default"


def test_row_presets_override_groups():
    assert compose_config(["row=base"]).adapters.name == "none"
    cfg = compose_config(["row=reasonbridge"])
    assert cfg.tracking.row == "reasonbridge" and cfg.adapters.name == "full" and cfg.inference.name == "gii" and cfg.data.name == "curated"


def test_demo_experiment_sweeps_base_reasonbridge_with_and_without_gii_and_lora_on_600_curated_traces():
    from omegaconf import OmegaConf

    from tests.conftest import CONF
    sweep = OmegaConf.load(CONF / "experiment" / "demo.yaml").hydra.sweeper.params.row
    assert sweep.split(",") == ["base", "reasonbridge", "reasonbridge_no_gii", "lora"]
    base, rb, no_gii, lora = (compose_config(["experiment=demo", f"row={r}"]) for r in sweep.split(","))
    for cfg, row in ((base, "base"), (rb, "reasonbridge"), (no_gii, "reasonbridge_no_gii"), (lora, "lora")):
        assert (cfg.tracking.experiment, cfg.tracking.table, cfg.tracking.row) == ("demo", "demo", row)
        assert cfg.model.name == "tiny" and cfg.pool.suite == "organism"
    assert base.adapters.name == "none" and base.inference.name == "none"  # trains on nothing
    assert rb.data.size == 600
    assert (rb.data.name, rb.adapters.name, rb.inference.name) == ("curated", "full", "gii")
    assert (lora.data.name, lora.adapters.name) == ("curated", "lora")
    assert OmegaConf.to_container(rb.data) == {**OmegaConf.to_container(lora.data)}  # same training data
    # without GII: the same trained student (data, adapters, training), only the inference differs
    for group in ("data", "adapters", "train", "model"):
        assert OmegaConf.to_container(no_gii[group]) == OmegaConf.to_container(rb[group])
    assert no_gii.inference.name == "none" and no_gii.inference.budget_end == rb.inference.budget_end


def test_smollm2_demo_puts_the_reasonbridge_row_on_smollm2():
    cfg = compose_config(["experiment=demo_smollm2", "row=reasonbridge"])
    assert cfg.model.name == "smollm2_135m" and cfg.tracking.experiment == "demo_smollm2"
    assert cfg.data.name == "curated" and cfg.data.size == 600 and cfg.adapters.name == "full"
    assert cfg.train.lr == 1e-3 and cfg.inference.name == "gii"


def test_unknown_key_fails_naming_it():
    with pytest.raises(ConfigCompositionException) as e:
        compose_config(["adapters.rank=8"])
    assert "rank" in str(e.value.__cause__) and "AdaptersConfig" in str(e.value.__cause__)


def test_wrong_type_fails_naming_the_field():
    with pytest.raises(ConfigCompositionException) as e:
        compose_config(["train.lr=fast"])
    assert "train.lr" in str(e.value.__cause__)


def test_unknown_group_option_lists_the_available_ones():
    with pytest.raises(ConfigCompositionException) as e:
        compose_config(["adapters=bogus"])
    assert "adapters/bogus" in str(e.value) and "lora" in str(e.value)


@pytest.mark.parametrize("override, field", [
    ("teacher.defect_rate=1.5", "teacher.defect_rate"),
    ("pool.difficulties=[4,2]", "pool.difficulties"),
    ("stop_after=nowhere", "stop_after"),
    ("train.batch_size=0", "train.batch_size"),
    ("adapters.name=qlora", "adapters.name"),
    ("data=random", None),
])
def test_invalid_values_fail_before_work_naming_the_field(override, field):
    cfg = compose_config([override])
    if field is None:  # data=random with its default size is valid
        validate(cfg)
        return
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        validate(cfg)
