"""The paper's evaluation numbers, rendered from data: raw harness JSON and ``facts.yaml``.

Three sources, none typed by hand:

* **Raw results (S7)** — the 21 lm-evaluation-harness JSON files Stability committed "for tech
  report" (copied verbatim into ``data/published/``, hashes checked on load). The multilingual
  tables (FACTS.md §6b) and the S7 "headline average" are recomputed from them.
* **Table 4** (English Open LLM tasks, few-shot) — the ``eval.tab4.*`` facts (the zephyr model
  card's table; its match to the stripped Table 4 is unconfirmed).
* **MT-Bench** (Table 7 / Fig. 3) — the ``eval.mtbench.*`` facts, reported values only; the
  GPT-4 judge is outside this companion (:data:`MTBENCH_HOWTO` says how to run it).

>>> from stablelm2.evaluation import published
>>> t = published.multilingual_table("stabilityai/stablelm-2-1_6b")
>>> round(float(t.loc["en", "ARC-c"]), 2), round(float(t.loc["de", "HellaSwag"]), 2)
(38.91, 45.79)
>>> round(published.headline_average("stabilityai/stablelm-2-1_6b"), 2)
42.99
"""

from __future__ import annotations

import copy
import json
import math
import re
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from .. import facts as F
from ..files import sha256_bytes
from ..ledger import Claim, Ledger

DATA_DIR = Path(__file__).with_name("data") / "published"
"""Verbatim copies of ``shared/paper/evals/*.json`` with a README of their provenance and hashes."""

LANGS: tuple[str, ...] = ("en", *(code.lower() for code in F.value("data.languages_non_english")))
"""English plus the six non-English languages of the pre-training mix (fact data.languages_non_english)."""

TASKS: dict[str, tuple[str, str, str]] = {
    # column: (English v0.3 task, multilingual v0.3 task pattern, metric)  — evals/README.md
    "ARC-c": ("arc_challenge", "arc_challenge_mt_{lang}", "acc_norm"),
    "HellaSwag": ("hellaswag", "hellaswag_mt_{lang}", "acc_norm"),
    "TruthfulQA": ("truthfulqa_mc", "truthfulqa_mc_mt_{lang}", "mc2"),
    "MMLU": ("hendrycksTest-*", "hendrycksTest_mt_{lang}", "acc"),
}
"""The four multilingual columns: task names of the v0.3 fork and the metric the report uses."""

LAMBADA_LANGS = ("en", "de", "es", "fr", "it")
"""Languages of EleutherAI's machine-translated LAMBADA in the raw files (``lambada_openai_mt_*``)."""

EXTRA_EN: dict[str, str] = {"arc_easy": "acc_norm", "piqa": "acc", "sciq": "acc", "winogrande": "acc"}
"""Other English 0-shot tasks in the raw files, with the metric S7's own table shows."""


class PublishedError(ValueError):
    """A published file is missing, altered, or lacks a task the table needs."""


# ------------------------------------------------------------------------------ loading


@lru_cache(maxsize=1)
def manifest() -> dict[str, str]:
    """``{file name: sha256}`` as recorded in ``data/published/README.md``.

    Raises:
        PublishedError: the README lists no hashes.
    """
    text = (DATA_DIR / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\S+\.json) \| ([0-9a-f]{64}) \|$", text, flags=re.M)
    if not rows:
        raise PublishedError(f"{DATA_DIR / 'README.md'} lists no sha256 hashes; restore it from git")
    return dict(rows)


@lru_cache(maxsize=1)
def _index() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for name in sorted(manifest()):
        path = DATA_DIR / name
        if not path.is_file():
            raise PublishedError(f"published result {path} is missing; restore data/published/ from git")
        args = json.loads(path.read_text(encoding="utf-8"))["config"]["model_args"]
        model = dict(kv.split("=", 1) for kv in args.split(",") if "=" in kv)["pretrained"]
        out[model] = path
    return out


def model_ids() -> list[str]:
    """Hub ids of the 21 models with published raw results (e.g. ``stabilityai/stablelm-2-1_6b``)."""
    return list(_index())


def _resolve(model: str) -> str:
    idx = _index()
    if model in idx:
        return model
    by_stem = {p.stem: m for m, p in idx.items()}
    if model in by_stem:
        return by_stem[model]
    hits = [m for m in idx if m.split("/")[-1] == model]
    if len(hits) == 1:
        return hits[0]
    raise PublishedError(f"no published results for {model!r}; models are: {', '.join(idx)}")


@cache
def _load_checked(model: str) -> dict[str, Any]:
    path = _index()[model]
    raw = path.read_bytes()
    digest = sha256_bytes(raw)
    if digest != manifest()[path.name]:
        raise PublishedError(
            f"{path} has sha256 {digest[:12]}…, not the {manifest()[path.name][:12]}… recorded in README.md: "
            "the published results were altered; restore them with git checkout"
        )
    return json.loads(raw)


def load(model: str) -> dict[str, Any]:
    """The raw harness JSON of ``model`` (Hub id, short name or file stem), hash-checked; a copy."""
    return copy.deepcopy(_load_checked(_resolve(model)))


# ------------------------------------------------------------------------------ reading scores


def _get(results: dict[str, Any], task: str, metric: str) -> tuple[float, float]:
    if task not in results or metric not in results[task]:
        raise PublishedError(f"published results have no {task}/{metric}")
    return float(results[task][metric]), float(results[task].get(f"{metric}_stderr", math.nan))


def mmlu_subjects(results: dict[str, Any]) -> list[str]:
    """The English MMLU subject tasks (``hendrycksTest-*``) of a raw file."""
    return sorted(k for k in results if k.startswith("hendrycksTest-"))


def score(results: dict[str, Any], column: str, lang: str) -> tuple[float, float]:
    """(value, standard error) of one multilingual column for one language, as fractions.

    English MMLU is the unweighted mean over the 57 subjects (its error: √Σσ²/n).
    """
    en_task, mt_task, metric = TASKS[column]
    if lang == "en" and column == "MMLU":
        subjects = mmlu_subjects(results)
        vals = [_get(results, s, metric) for s in subjects]
        mean = sum(v for v, _ in vals) / len(vals)
        return mean, math.sqrt(sum(se**2 for _, se in vals)) / len(vals)
    task = en_task if lang == "en" else mt_task.format(lang=lang)
    return _get(results, task, metric)


def multilingual_table(model: str) -> pd.DataFrame:
    """Language × {ARC-c, HellaSwag, TruthfulQA, MMLU, 4-task mean} in %, from the raw JSON."""
    res = load(model)["results"]
    rows = {lang: {col: 100 * score(res, col, lang)[0] for col in TASKS} for lang in LANGS}
    df = pd.DataFrame(rows).T
    df["mean"] = df[list(TASKS)].mean(axis=1)
    df.index.name = "lang"
    return df


def multilingual_means(models: list[str] | None = None) -> pd.DataFrame:
    """Model × language 4-task means (%), plus the mean over the six non-English languages and all seven."""
    rows = {}
    for m in models or model_ids():
        t = multilingual_table(m)["mean"]
        rows[m] = {**t.to_dict(), "mean non-EN": t.drop("en").mean(), "mean all": t.mean()}
    return pd.DataFrame(rows).T


def lambada_eleuther(model: str) -> dict[str, float]:
    """EleutherAI-translation LAMBADA accuracy (%) per language (the sets the paper found too noisy)."""
    res = load(model)["results"]
    return {lang: 100 * _get(res, "lambada_openai" if lang == "en" else f"lambada_openai_mt_{lang}", "acc")[0]
            for lang in LAMBADA_LANGS}


def english_zero_shot(model: str) -> dict[str, float]:
    """The other English 0-shot numbers of S7 (ARC-e, PIQA, SciQ, WinoGrande, LAMBADA), in %."""
    res = load(model)["results"]
    out = {task: 100 * _get(res, task, metric)[0] for task, metric in EXTRA_EN.items()}
    out["lambada_openai"] = 100 * _get(res, "lambada_openai", "acc")[0]
    return out


def headline_columns(results: dict[str, Any]) -> dict[str, float]:
    """The 37 columns S7's own markdown averages into its headline number, as fractions.

    Reverse-engineered from the raw files: 7 languages × the 4 multilingual columns, LAMBADA acc in
    its 5 languages, ARC-e acc_norm, PIQA/SciQ/WinoGrande acc. This reproduces all four published
    tip averages (eval.s7_headline_avg.tip.*) to 0.01 points.
    """
    cols = {f"{c}/{lang}": score(results, c, lang)[0] for lang in LANGS for c in TASKS}
    for lang in LAMBADA_LANGS:
        task = "lambada_openai" if lang == "en" else f"lambada_openai_mt_{lang}"
        cols[f"LAMBADA/{lang}"] = _get(results, task, "acc")[0]
    for task, metric in EXTRA_EN.items():
        cols[task] = _get(results, task, metric)[0]
    return cols


def headline_average(model: str) -> float:
    """S7's headline average (%) of ``model``, recomputed from its raw file."""
    cols = headline_columns(load(model)["results"])
    return 100 * sum(cols.values()) / len(cols)


# ------------------------------------------------------------------------------ Table 4 and MT-Bench

TABLE4_COLUMNS = ("arc", "hellaswag", "mmlu", "truthfulqa", "winogrande", "gsm8k")
"""Table 4's task columns, in the paper's order (fact ids eval.tab4.<model>.<column>)."""


def table4_models() -> list[str]:
    """Fact keys of the Table 4 rows with values (``phi_2``, ``stablelm_2_1_6b``, …), in facts order."""
    keys = []
    for fid, fact in F.all_facts().items():
        m = re.fullmatch(r"eval\.tab4\.([a-z0-9_]+)\.avg", fid)
        if m and fact.known:
            keys.append(m.group(1))
    return keys


def table4() -> pd.DataFrame:
    """Table 4 from the facts (%, the card's metrics), with the average recomputed beside the card's."""
    rows = []
    for key in table4_models():
        name = F.get(f"eval.tab4.{key}.size").text.rsplit(" size", 1)[0]
        row: dict[str, Any] = {"model": name, "size": F.value(f"eval.tab4.{key}.size")}
        row.update({c: F.value(f"eval.tab4.{key}.{c}") for c in TABLE4_COLUMNS})
        row["avg (card)"] = F.value(f"eval.tab4.{key}.avg")
        row["avg (recomputed)"] = sum(row[c] for c in TABLE4_COLUMNS) / len(TABLE4_COLUMNS)
        avg = F.get(f"eval.tab4.{key}.avg")
        row["source"] = f"{', '.join(avg.source)}, {avg.confidence}"
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def mtbench() -> pd.DataFrame:
    """MT-Bench scores (Table 7) reported on the zephyr card (facts eval.mtbench.*), best first."""
    rows = []
    for fid, fact in F.all_facts().items():
        if fid.startswith("eval.mtbench.") and fact.known and isinstance(fact.value, (int, float)):
            m = re.fullmatch(r"MT-Bench (.+) \((.+)\)", fact.text)
            model, size = (m.group(1), m.group(2)) if m else (fact.text, "")
            rows.append({"model": model, "size": size, "MT-Bench": fact.value,
                         "source": f"{', '.join(fact.source)}, {fact.confidence}", "fact": fid})
    return pd.DataFrame(rows).sort_values("MT-Bench", ascending=False).set_index("model")


MTBENCH_HOWTO = """\
MT-Bench (Zheng et al., 2023) asks 80 two-turn questions and lets GPT-4 grade every answer 1-10.
It needs the chat model, a GPU and an OpenAI API key, so this companion does not run it. With
FastChat's llm_judge (github.com/lm-sys/FastChat, fastchat/llm_judge):
  python gen_model_answer.py --model-path stabilityai/stablelm-2-zephyr-1_6b --model-id stablelm-2-zephyr-1_6b
  OPENAI_API_KEY=... python gen_judgment.py --model-list stablelm-2-zephyr-1_6b --judge-model gpt-4 --parallel 2
  python show_result.py --model-list stablelm-2-zephyr-1_6b
(the chat template must be the model's own (zephyr: <|user|> … <|endoftext|>); the judge's single-answer grading gives the
1-10 score of Table 7). For our small aligned models, point --model-path at
stablelm2.alignment.aligned(cfg, "dpo")."""
"""How one would run the GPT-4 judge for Table 7 / Fig. 3."""


# ------------------------------------------------------------------------------ figures


def plot_mtbench() -> Any:
    """Fig. 3-style bars of the reported MT-Bench scores (the 1.6B model highlighted)."""
    import matplotlib.pyplot as plt

    mt = mtbench().iloc[::-1]
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    ax.barh([f"{m} ({s})" for m, s in zip(mt.index, mt["size"], strict=True)], mt["MT-Bench"],
            color=["#c44e52" if "2-zephyr-1.6b" in m else "#8c8c8c" for m in mt.index])
    ax.set_xlabel("MT-Bench score (1-10, GPT-4 judge)")
    ax.set_title("MT-Bench as reported (zephyr model card, S6)")
    fig.tight_layout()
    return fig


def plot_multilingual(models: list[str], *, title: str = "") -> Any:
    """Per-language 0-shot scores (4 tasks + mean) of ``models`` from the raw JSON: one panel per task."""
    import matplotlib.pyplot as plt
    import numpy as np

    tables = {m: multilingual_table(m) for m in models}
    cols = [*TASKS, "mean"]
    fig, axes = plt.subplots(1, len(cols), figsize=(3.2 * len(cols), 3.6), sharey=False)
    x = np.arange(len(LANGS))
    width = 0.8 / len(models)
    for ax, col in zip(axes, cols, strict=True):
        for i, m in enumerate(models):
            ax.bar(x + (i - (len(models) - 1) / 2) * width, tables[m][col].values, width, label=m.split("/")[-1])
        ax.set_xticks(x, [lang.upper() for lang in LANGS])
        ax.set_title(col if col != "mean" else "4-task mean")
        ax.set_ylabel("score (%)")
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(models), 4), fontsize=8, frameon=False)
    fig.suptitle(title or "0-shot multilingual results per language (raw harness JSON, S7)")
    fig.tight_layout(rect=(0, 0.06 * ((len(models) + 3) // 4), 1, 1))
    return fig


# ------------------------------------------------------------------------------ claims


def self_checks(ledger: Ledger, prefix: str = "evaluation") -> list[Claim]:
    """The published numbers the facts quote, checked against the raw JSON and the Table 4 cells.

    These are **consistency** checks (our transcription and the paper's own arithmetic), never findings:
    a Table 4 average against the mean of its six printed cells (each cell's interval carried through),
    and every quoted raw-file number against the file, at the printed value's interval.
    """
    out: list[Claim] = []
    for key in table4_models():
        cells = {c: f"eval.tab4.{key}.{c}" for c in TABLE4_COLUMNS}
        out.append(ledger.check(
            f"{prefix}.tab4_avg.{key}", f"Table 4 average of {key} = mean of its six task scores",
            fact=f"eval.tab4.{key}.avg", inputs=cells,
            formula=lambda **kw: sum(kw.values()) / len(kw)))
    out.append(ledger.check(
        f"{prefix}.tab4_dpo_minus_phi15", "DPO model's Table 4 average minus Phi-1.5's ('by two average points')",
        fact="eval.tab4.dpo_minus_phi_1_5_avg",
        inputs={"dpo": "eval.tab4.stablelm_2_zephyr_1_6b.avg", "phi": "eval.tab4.phi_1_5.avg"},
        formula=lambda dpo, phi: dpo - phi))
    for fid in F.all_facts():
        m = re.fullmatch(r"eval\.s7_headline_avg\.tip\.([a-z0-9_]+)", fid)
        if m:
            model = _fact_key_to_model(m.group(1))
            out.append(ledger.check(
                f"{prefix}.s7_headline.{m.group(1)}",
                f"S7 headline average of {model}: mean of its 37 columns, recomputed from the raw JSON",
                fact=fid, ours=headline_average(model)))
    for fid in F.all_facts():
        m = re.fullmatch(r"eval\.(en0shot|lambada_eleuther)\.([a-z0-9_]+)\.([a-z_]+)", fid)
        if not m:
            continue
        kind, key, col = m.groups()
        model = _fact_key_to_model(key)
        if kind == "lambada_eleuther":
            ours = lambada_eleuther(model)[col]
        else:
            col_task = {"arc_e": "arc_easy", "lambada_en": "lambada_openai"}.get(col, col)
            ours = english_zero_shot(model)[col_task]
        out.append(ledger.check(f"{prefix}.s7.{key}.{kind}.{col}", f"{model} {col} ({kind}) from the raw JSON",
                                fact=fid, ours=ours))
    return out


def _fact_key_to_model(key: str) -> str:
    """``stablelm_2_1_6b`` → ``stabilityai/stablelm-2-1_6b`` (the raw file whose name normalises alike)."""
    def norm(s: str) -> str:
        return re.sub(r"[^a-z0-9]", "", s.lower())
    hits = [m for m in model_ids() if norm(m.split("/")[-1]) == norm(key)]
    if len(hits) != 1:
        raise PublishedError(f"fact key {key!r} matches {hits or 'no'} published model")
    return hits[0]
