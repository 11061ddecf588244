"""Document streams: split, resume, epochs, bad input, and the Hub path (faked: tests stay offline)."""

from __future__ import annotations

import json

import datasets
import pytest

from stablelm2 import config
from stablelm2.data import mixture, sources
from stablelm2.data.sources import SourceError, StreamSpec


@pytest.fixture(scope="module")
def cfg():
    return config.load("smoke", **{"data.max_docs_per_source": 0})


def test_train_and_val_are_disjoint_and_cover_the_source(cfg):
    spec = sources.sample_specs()["wiki_en"]
    train = list(mixture.DocumentStream(spec, cfg, "train", cycle=False))
    val = list(mixture.DocumentStream(spec, cfg, "val", cycle=False))
    assert val and train and not set(train) & set(val)
    assert len(train) + len(val) == 11


def test_resume_and_epochs(cfg):
    spec = sources.sample_specs()["math_problems_en"]
    s = mixture.DocumentStream(spec, cfg, "train")
    first = [next(s) for _ in range(5)]
    state = s.state()
    rest = [next(s) for _ in range(40)]  # runs past the end: a new epoch begins
    assert s.epoch >= 1 and rest[-1] in first + rest[:-1]
    again = mixture.DocumentStream(spec, cfg, "train")
    again.restore(state)
    assert [next(again) for _ in range(40)] == rest


def test_restruct_source_yields_task_text(cfg):
    s = mixture.DocumentStream(sources.sample_specs()["instruct_en"], cfg, "train", cycle=False)
    texts = list(s)
    assert any(x.startswith(("Read the passage", "Instruction:", "### Instruction")) for x in texts)


def test_bad_input(tmp_path, cfg):
    f = tmp_path / "x.jsonl"
    f.write_text("\n".join(json.dumps({"content": f"doc {i} " * 20}) for i in range(10)) + "\n")
    spec = StreamSpec("x", "x", "web", "en", data_files=str(f))
    with pytest.raises(SourceError, match="no field 'text'.*content"):
        mixture.DocumentStream(spec, cfg, "train")
    with pytest.raises(SourceError, match="split = 'test'"):
        mixture.DocumentStream(sources.sample_specs()["wiki_en"], cfg, "test")
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps({"text": "alone"}) + "\n")
    with pytest.raises(SourceError, match="at least 2"):
        mixture.DocumentStream(StreamSpec("one", "x", "web", "en", data_files=str(one)), cfg, "train")
    with pytest.raises(SourceError, match="run is offline"):
        mixture.DocumentStream(sources.PAPER_SOURCES["c4"], cfg, "train").__next__()


def test_hub_streaming_is_the_same_code_path(monkeypatch):
    """At preset paper a CulturaX source goes through load_dataset(..., streaming=True) and the OSCAR filter."""
    calls = []
    records = [{"text": f"Ein Satz Nummer {i} über die Stadt.", "source": "mC4" if i % 3 == 0 else "OSCAR-2301"}
               for i in range(60)]

    def fake_load(path, name=None, data_files=None, split=None, streaming=False):
        calls.append((path, name, split, streaming))
        return datasets.IterableDataset.from_generator(lambda: iter(records))

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    cfg = config.load("paper", **{"data.val_fraction": 0.0})
    stream = mixture.DocumentStream(sources.PAPER_SOURCES["culturax_de"], cfg, "train", cycle=False)
    got = list(stream)
    assert calls[0] == ("uonlp/CulturaX", "de", "train", True)
    assert len(got) == 40 and all(int(t.split()[3]) % 3 for t in got)
    assert stream.state() == {"epoch": 0, "index": 60}
