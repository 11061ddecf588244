import dataclasses

import pytest

from stablelm2 import config
from stablelm2.config import ConfigError


def test_presets_resolve_and_paper_matches_the_paper():
    paper = config.load("paper")
    assert (paper.model.n_layers, paper.model.d_model, paper.model.n_heads, paper.model.d_ff) == (24, 2048, 32, 5632)
    assert paper.train.global_batch_tokens == 8_388_608
    assert paper.train.micro_batch * paper.train.n_procs * paper.data.seq_len * 2 == paper.train.global_batch_tokens
    assert paper.schedule.warmup_steps == 9720 and paper.schedule.cooldown_steps == 80_000
    assert not paper.run.offline
    for p in ("smoke", "cpu"):
        cfg = config.load(p)
        assert cfg.run.offline and cfg.data.source == "local" and cfg.run.preset == p


def test_overrides_by_section_double_underscore_and_bare_name():
    cfg = config.load("smoke", **{"train.steps": 6}, schedule__peak_lr=1e-3, seed=9)
    assert cfg.train.steps == 6 and cfg.schedule.peak_lr == 1e-3 and cfg.run.seed == 9


def test_none_overrides_are_ignored_and_config_is_frozen():
    cfg = config.load("smoke", seed=None)
    assert cfg.run.seed == 1234
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.run.seed = 3  # type: ignore[misc]


def test_string_values_from_the_command_line_are_coerced():
    cfg = config.load("smoke", **{"train.steps": "6", "schedule.peak_lr": "0.002", "carbon.meter": "false"})
    assert cfg.train.steps == 6 and cfg.schedule.peak_lr == 0.002 and cfg.carbon.meter is False


@pytest.mark.parametrize(
    "preset, overrides, message",
    [
        ("big", {}, "unknown preset 'big'; choose one of: smoke, cpu, paper"),
        ("cpu", {"stepz": 3}, "unknown config key 'stepz'"),
        ("cpu", {"train.stepz": 3}, "section 'train' has no field 'stepz'; did you mean train.steps"),
        ("cpu", {"trian.steps": 3}, "unknown config section 'trian'"),
        ("cpu", {"train.steps": "many"}, "train.steps = 'many' has the wrong type: expected int"),
        ("cpu", {"train.steps": -5}, "train.steps = -5 must be positive"),
        ("cpu", {"model.n_heads": 5}, "model.n_heads = 5 does not divide model.d_model = 128"),
        ("cpu", {"train.micro_batch": 3}, "train.global_batch_tokens = 1024 is not a multiple of micro_batch"),
        ("cpu", {"schedule.min_lr": 1.0}, "schedule.min_lr = 1.0 is above schedule.peak_lr"),
        ("cpu", {"schedule.warmup_steps": 999}, "schedule.warmup_steps = 999 is not shorter than schedule.total_steps"),
        ("cpu", {"schedule.kind": "linear"}, "schedule.kind = 'linear' is not allowed; choose one of"),
        ("cpu", {"data.source": "hub"}, "data.source = 'hub' needs the network"),
        ("cpu", {"carbon.pue": 0.9}, "carbon.pue = 0.9 is below 1"),
        ("cpu", {"steps": 3.5}, "train.steps = 3.5 has the wrong type"),
        ("cpu", {"data.val_fraction": 1.5}, "data.val_fraction = 1.5 must be a fraction between 0 and 1"),
        ("cpu", {"model.vocab_size": 50_000}, "smaller than Arcade100k's 100,289"),
        ("cpu", {"data.seq_len": 4096}, "data.seq_len = 4096 exceeds model.max_position_embeddings"),
        ("cpu", {"train.launch": True}, "only meaningful at preset 'paper'"),
        ("cpu", {"schedule.cooldown_steps": 500}, "schedule.cooldown_steps = 500 is not shorter than train.steps"),
        ("smoke", {"run.preset": "cpu"}, "run.preset cannot be overridden"),
    ],
)
def test_bad_input_names_field_value_and_fix(preset, overrides, message):
    with pytest.raises(ConfigError) as err:
        config.load(preset, **overrides)
    assert message in str(err.value)


def test_ambiguous_bare_key_is_refused():
    # `epochs` exists only in data; `steps` only in train; but `threads` is in run and quant
    with pytest.raises(ConfigError, match="ambiguous"):
        config.load("cpu", threads=2)


def test_every_field_is_documented():
    docs = config.field_docs()
    for section, cls in config.SECTIONS.items():
        for f in dataclasses.fields(cls):
            assert docs.get(f"{section}.{f.name}"), f"{section}.{f.name} has no docstring"


def test_chapter_dir_follows_build_root(build_dir):
    cfg = config.load("smoke")
    assert cfg.chapter_dir("04_lr_schedule") == build_dir / "smoke" / "04_lr_schedule"


# ------------------------------------------------------------------ grid countries (issue 14, kind 5)


@pytest.mark.parametrize(("bad", "hint"), [
    ("US", "'USA'"),          # alpha-2: codecarbon's meter would use the world average
    ("usa", "'USA'"),         # lower case: the same
    ("Germany", "'DEU'"),     # a name
    ("France", "'FRA'"),
    ("XYZ", ""),
    ("", ""),
    (" USA", "'USA'"),
])
def test_every_country_field_is_checked_against_the_meters_table(bad, hint):
    for q in config._COUNTRY_FIELDS:
        with pytest.raises(ConfigError) as err:
            config.load("smoke", **{q: bad})
        msg = str(err.value)
        assert msg.startswith(f"{q} = {bad!r} ") and "ISO-3166 alpha-3" in msg and "world average" in msg
        assert hint in msg


def test_accepted_countries_are_the_codes_the_meter_reads_at_their_own_intensity():
    from codecarbon.core.emissions import Emissions
    from codecarbon.core.units import Energy
    from codecarbon.external.geography import GeoMetadata
    from codecarbon.input import DataSource

    from stablelm2 import carbon, grid

    emissions = Emissions(DataSource())

    def metered(code):  # kg CO2eq that codecarbon's offline path books for 1 kWh in `code`
        return emissions.get_country_emissions(Energy.from_energy(kWh=1.0), GeoMetadata(country_iso_code=code))

    world = metered("US")  # the fault: an unknown code is booked at the world average
    for code in ("USA", "FRA", "DEU", "NOR", "IND"):
        cfg = config.load("smoke", **{"carbon.country": code})
        assert cfg.carbon.country == code
        assert metered(code) == pytest.approx(grid.intensity(code), rel=1e-6) == carbon.grid_intensity(code)
        assert metered(code) != pytest.approx(world, rel=1e-3)
    for region in carbon.SENSITIVITY_REGIONS:  # every code the project itself names
        assert grid.country_code(region) == region


def test_the_meter_refuses_a_country_that_bypassed_load(tmp_path):
    from stablelm2 import record

    cfg = config.load("smoke")
    bad = dataclasses.replace(cfg, carbon=dataclasses.replace(cfg.carbon, country="US"))
    with pytest.raises(ConfigError, match=r"carbon.country = 'US' .*did you mean 'USA'"):
        record.EnergyMeter(bad, "x", tmp_path / "meter")
    assert not (tmp_path / "meter").exists()  # refused before any work


def test_the_projector_uses_the_same_table_and_names_the_accepted_form():
    from stablelm2 import carbon

    assert carbon.grid_intensity("usa") == carbon.grid_intensity("USA")  # the projector is lenient on case
    with pytest.raises(ConfigError, match=r"intensity = 'US' .*ISO-3166 alpha-3.*did you mean 'USA'"):
        carbon.project(tokens=1e9, n_params=1e9, intensity="US")
