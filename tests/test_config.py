import dataclasses

import pytest
import torch

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
        ("cpu", {"train.micro_batch": 3}, "train.global_batch_tokens = 2048 is not a multiple of micro_batch"),
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
        ("cpu", {"align.dpo_min_chosen_score": 11}, "align.dpo_min_chosen_score = 11.0 is outside UltraFeedback's 1–10"),
        ("cpu", {"align.dpo_min_chosen_score": 0.5}, "align.dpo_min_chosen_score = 0.5 is outside UltraFeedback's 1–10"),
        ("cpu", {"align.dpo_min_chosen_score": "nan"}, "align.dpo_min_chosen_score = nan must be a finite number"),
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


# ------------------------------------------------------------------ values the pipeline cannot honour (kind 10)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "nan", "-inf"])
def test_non_finite_numbers_are_refused_in_every_float_field(value):
    floats = [f"{s}.{f.name}" for s, cls in config.SECTIONS.items() for f in dataclasses.fields(cls)
              if f.type in (float, "float")]
    assert "align.dpo_min_chosen_score" in floats and "carbon.pue" in floats
    for q in floats:
        with pytest.raises(ConfigError, match=rf"{q} = .* must be a finite number"):
            config.load("smoke", **{q: value})


def _lr_path(cfg):
    from stablelm2 import schedule

    lrs = [schedule.learning_rate(t, cfg) for t in range(cfg.train.steps + 1)]
    assert all(0.0 <= lr <= cfg.schedule.peak_lr for lr in lrs) and max(lrs) > 0


def _model_path(cfg):
    from stablelm2 import model

    net = model.build(cfg)
    assert model.counted_params(net)["total"] == model.param_counts(cfg)["total"]
    with torch.no_grad():
        assert torch.isfinite(net(input_ids=torch.zeros(1, 4, dtype=torch.long)).logits).all()


def _backend_path(cfg):
    from stablelm2.training import backends, engine

    assert backends.resolve(cfg, engine._device(cfg)) in ("torch", "deepspeed")


def _sft_turn_path(cfg):
    from stablelm2.alignment import sources

    data = sources.load_sft(["capybara"], mode="local", max_turns=cfg.align.sft_max_turns, turn_unit=cfg.align.sft_turn)
    assert data.report.totals()["kept"] > 0


def _plan_path(cfg):
    from stablelm2.training import plan

    assert plan.build(cfg)["gpu"] == cfg.train.gpu


def _tracker_path(cfg):
    import importlib.util

    from stablelm2.training import metrics

    name = cfg.train.trackers
    if name != "none" and importlib.util.find_spec(metrics.TRACKER_PACKAGES[name]) is None:
        with pytest.raises(ConfigError, match=f"needs the '{name}' package"):  # refused before the engine starts
            metrics.check_tracker(cfg)
    else:
        assert metrics.check_tracker(cfg) == (None if name == "none" else name)


def _load_only(cfg):
    assert config.describe(cfg)


# Every choice field and every switch, the preset it is tried at, and the cheapest path its value changes.
PATHS = {
    "run.preset": ("smoke", _load_only), "run.device": ("smoke", _backend_path), "data.source": ("paper", _load_only),
    "schedule.kind": ("smoke", _lr_path), "schedule.t_origin": ("smoke", _lr_path),
    "schedule.rsqrt_min": ("smoke", _lr_path), "schedule.horizon_excludes_warmup": ("smoke", _lr_path),
    "train.precision": ("smoke", _backend_path), "align.sft_turn": ("smoke", _sft_turn_path),
    "train.gpu": ("paper", _plan_path), "train.backend": ("smoke", _backend_path),
    "model.tie_embeddings": ("smoke", _model_path), "model.qkv_bias": ("smoke", _model_path),
    "run.offline": ("smoke", _load_only), "train.launch": ("smoke", _load_only), "eval.launch": ("smoke", _load_only),
    "quant.speed_study_1p6b": ("smoke", _load_only), "carbon.meter": ("smoke", _load_only),
    "train.trackers": ("smoke", _tracker_path),
}
# The values refused, each with what its message must say (everything else must load and run its path).
REFUSED = {
    ("model.tie_embeddings", True): "model.tie_embeddings = True is not supported",
    ("train.precision", "bf16"): "train.precision = 'bf16' on CPU needs a CPU that computes bf16",
    ("train.backend", "deepspeed"): "train.backend = 'deepspeed' needs CUDA GPUs",
    ("train.gpu", "cpu"): "train.gpu = 'cpu' at preset 'paper'",
    ("run.offline", False): "run.offline = False is not allowed at preset 'smoke'",
    ("train.launch", True): "train.launch = True is only meaningful at preset 'paper'",
    ("eval.launch", True): "eval.launch = True is only meaningful at preset 'paper'",
}


def _switches():
    return [f"{s}.{f.name}" for s, cls in config.SECTIONS.items() for f in dataclasses.fields(cls)
            if f.type in (bool, "bool")]


def _every_value():
    for q in sorted(set(config.choices()) | set(_switches())):
        for v in config.choices().get(q, (False, True)):
            yield q, v


def test_every_choice_field_and_switch_has_a_path_here():
    assert set(PATHS) == set(config.choices()) | set(_switches())


@pytest.mark.parametrize(("field", "value"), list(_every_value()))
def test_every_allowed_value_is_honoured_or_refused_at_load(field, value, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the CPU machine the tests run on
    monkeypatch.setattr(config.hardware, "cpu_bf16_flags", lambda flags=None: ())  # … without native bf16
    preset, path = PATHS[field]
    if field == "run.preset":
        preset, overrides = value, {}
    else:
        overrides = {field: value}
    if field == "run.device" and value == "cuda":
        with pytest.raises(ConfigError, match="run.device = 'cuda' but torch sees no CUDA device"):
            config.load(preset, **overrides)
        return
    if (field, value) in REFUSED:
        with pytest.raises(ConfigError) as err:
            config.load(preset, **overrides)
        assert REFUSED[(field, value)] in str(err.value)
        return
    path(config.load(preset, **overrides))


# ------------------------------------------------------------------ validation beside the fields (issue 18 item 4)


def test_every_number_declares_its_range_and_every_choice_is_a_literal():
    for section, cls in config.SECTIONS.items():
        for f in dataclasses.fields(cls):
            if f.type in ("int", "float"):
                assert f.metadata.get("range") in config.RANGE_RULES, f"{section}.{f.name}"
    assert config.choices()["schedule.kind"] == ("hybrid", "hybrid2", "cosine", "rsqrt", "constant")
    assert config.choices()["train.gpu"][-1] == "cpu"


def test_a_section_checks_its_fields_when_built():
    with pytest.raises(ConfigError, match="train.steps = -1 must be positive"):
        config.TrainConfig(steps=-1)
    with pytest.raises(ConfigError, match="schedule.kind = 'linear' is not allowed; choose one of: hybrid"):
        config.ScheduleConfig(kind="linear")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="data.val_fraction = 1.5 must be a fraction between 0 and 1"):
        config.DataConfig(val_fraction=1.5)
    with pytest.raises(ConfigError, match="run.threads = -1 must not be negative"):
        config.RunConfig(threads=-1)
    with pytest.raises(TypeError, match="stepz"):  # a misspelt field in a preset fails where it is written
        config.TrainConfig(stepz=40)  # type: ignore[call-arg]
    assert config.ScheduleConfig(peak_lr=1).peak_lr == 1.0 and isinstance(config.ScheduleConfig(peak_lr=1).peak_lr,
                                                                           float)


def test_section_rules_run_in_validate_and_cross_rules_in_check_across():
    s = config.ScheduleConfig(min_lr=0.5, peak_lr=0.1)  # each field is fine on its own
    with pytest.raises(ConfigError, match="schedule.min_lr = 0.5 is above schedule.peak_lr"):
        s.validate()
    cfg = config.load("cpu")
    bad = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, seq_len=1024))
    with pytest.raises(ConfigError, match="data.seq_len = 1024 exceeds model.max_position_embeddings = 512"):
        config.check_across(bad)


def test_presets_are_built_from_section_instances():
    assert set(config.PRESET_CONFIGS) == set(config.PRESETS)
    for name, preset in config.PRESET_CONFIGS.items():
        assert isinstance(preset.train, config.TrainConfig) and preset.run.preset == name
        assert config.load(name) == preset


@pytest.mark.parametrize("overrides, message", [  # chapters 05, 06 and 08's rules on their sections, at load
    ({"quant.formats": "F16,Q3_K"}, "quant.formats = F16,Q3_K: unknown quantization type 'Q3_K'"),
    ({"quant.formats": "F16,F16"}, "quant.formats: quantization type(s) F16 listed twice"),
    ({"quant.formats": "FP32,Q4_0"}, "fp32 reference is always measured"),
    ({"quant.arch_formats": "F16,OV_FP32"}, "traces in fp16"),
    ({"quant.models": "stabilityai/stablelm-2-1_6b"}, "is a Hub model but run.offline is True"),
    ({"quant.models": "mystery"}, "quant.models entry 'mystery' is neither one of"),
    ({"quant.ppl_window": 512}, "quant.ppl_window = 512 must be ≥ 2 and ≤ quant.ppl_tokens = 256"),
    ({"quant.prompt_tokens": 300}, "exceeds model.max_position_embeddings = 256"),
    ({"align.sk_batch": 3}, "align.sk_batch = 3 is not a multiple of align.micro_batch × align.n_gpus = 2 × 1"),
    ({"align.dpo_global_batch": 5}, "align.dpo_global_batch = 5 is not a multiple of"),
    ({"train.ablation_batch_tokens": 100}, "train.ablation_batch_tokens = 100 is not a multiple of train.micro_batch"),
    ({"train.ablation_d_model": 30}, "train.ablation_d_model = 30 gives the ablations' proxy a width of 30"),
])
def test_chapter_rules_fail_in_load_before_any_work(overrides, message):
    with pytest.raises(ConfigError) as err:
        config.load("smoke", **overrides)
    assert message in str(err.value)
    assert config.load("smoke", **{"train.ablation_steps": 0, "train.ablation_d_model": 30}).train.ablation_steps == 0


# ------------------------------------------------------------------ the `overrides` mapping (issue 18 item 7)


def test_overrides_mapping_sets_any_field_and_is_checked_like_every_other_override():
    cfg = config.load("smoke", {"train.steps": "6", "quant.formats": "F16,Q4_0", "schedule__peak_lr": 2e-3}, seed=5)
    assert (cfg.train.steps, cfg.quant.formats, cfg.schedule.peak_lr, cfg.run.seed) == (6, ("F16", "Q4_0"), 2e-3, 5)
    assert config.load("smoke", {"train.steps": 6}, steps=6).train.steps == 6  # the same value twice is fine
    for overrides, message in [
        ({"train.stepz": 3}, "section 'train' has no field 'stepz'; did you mean train.steps"),
        ({"train.steps": "many"}, "train.steps = 'many' has the wrong type: expected int"),
        ({"train.steps": 0}, "train.steps = 0 must be positive"),
        ({"run.preset": "cpu"}, "run.preset cannot be overridden"),
        ("train.steps=3", "overrides = 'train.steps=3' must be a mapping of 'section.field' to value"),
    ]:
        with pytest.raises(ConfigError) as err:
            config.load("smoke", overrides)
        assert message in str(err.value)
    with pytest.raises(ConfigError, match="train.steps is set twice: 6 by the notebook's parameter 'steps' and 5"):
        config.load("smoke", {"train.steps": 5}, steps=6)
