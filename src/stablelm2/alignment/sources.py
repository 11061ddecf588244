"""Chapter 06 · The fine-tuning data: seven SFT sources and two preference sources, one loader each.

The paper fine-tunes on seven conversational datasets (UltraChat, WizardLM, SlimOrca, ShareGPT,
Capybara, Deita, MetaMathQA) and aligns on two preference datasets (UltraFeedback, Intel Orca
pairs). Each has its own schema on the Hub; :func:`load_sft` and :func:`load_dpo` read every source
through one path and normalise it into one chat schema::

    {"source": "capybara", "id": "capybara:17",
     "messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}          # SFT
    {"source": ..., "id": ..., "prompt": [messages], "chosen": [assistant message],
     "rejected": [assistant message], "score_chosen": float|None, "score_rejected": float|None}  # DPO

Rows come from the Hub (``datasets.load_dataset(..., streaming=True)``) when ``mode="hub"`` (the
``paper`` preset) and from the small samples shipped in ``alignment/samples/`` — a few dozen
hand-written rows per source *in that source's own schema*, plus a few malformed ones — when
``mode="local"`` (``smoke`` and ``cpu``). Nothing is dropped silently: every row that is not kept is
counted under the first rule it breaks (:data:`SFT_RULES`, :data:`DPO_RULES`), per source.

**What a turn is.** The paper drops "samples that exceeded eight turns". Here a turn is one
*exchange* — a user message and the assistant reply that follows it (system messages are not turns);
``turn_unit="message"`` counts every user or assistant message instead (``align.sft_turn``).

>>> from stablelm2.alignment import sources
>>> data = sources.load_sft(sources=["capybara"], mode="local", max_turns=8)
>>> data.report.rows()[0]["kept"], data.report.rows()[0]["too_many_turns"]
(18, 2)
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import facts
from .results import FilterReportDict

SAMPLES_DIR = Path(__file__).with_name("samples")
"""Local samples, one JSONL file per source, each in its source's own schema."""

ROLES = ("system", "user", "assistant")

SFT_RULES: dict[str, str] = {
    "unreadable": "the line is not a JSON object",
    "missing_field": "a required field is absent, empty as a list, or of the wrong type",
    "unknown_role": "a speaker that is not system / user / assistant in the source's vocabulary",
    "empty_content": "a message whose text is empty or only whitespace",
    "bad_order": "not [system] user, assistant, user, assistant, … ending with the assistant",
    "too_many_turns": "more turns than the paper's limit (the paper's own filter)",
}
"""Why an SFT row is dropped, in the order the rules are checked (the first failure counts)."""

DPO_RULES: dict[str, str] = {
    "unreadable": "the line is not a JSON object",
    "missing_field": "a required field (prompt, chosen or rejected) is absent or mistyped",
    "unknown_role": "a speaker that is not system / user / assistant",
    "empty_content": "an empty prompt, chosen or rejected text",
    "missing_score": "a scored source's row lacks score_chosen or score_rejected (absent or null)",
    "non_numeric_score": "a score that is not a number (text, a boolean, a list, …)",
    "non_finite_score": "a score that is NaN or infinite (every comparison with NaN is false: it would pass the filters)",
    "score_out_of_scale": "a score outside the source's scale (UltraFeedback: 1–10)",
    "broken_pair": "chosen and rejected do not share the prompt or do not end with an assistant reply",
    "inverted_ranking": "the chosen response scores below the rejected one (the labels contradict the scores)",
    "tied_ranking": "chosen and rejected have the same score (paper filter 1)",
    "duplicated_content": "chosen and rejected responses are the same text (paper filter 2)",
    "low_chosen_score": "the chosen response scores below the threshold (paper filter 3: 8 of 10)",
}
"""Why a preference pair is dropped, in the order the rules are checked (the first failure counts).

The four score rules run before the paper's filters, so a filter only ever compares finite numbers on
the source's scale (NaN would pass both ``==`` and ``<`` tests: every comparison with it is false)."""


class AlignmentDataError(ValueError):
    """An unknown source, a source with no usable rows, or a data mode that cannot be read."""


class Malformed(Exception):
    """A row breaks ``rule`` (a key of :data:`SFT_RULES` / :data:`DPO_RULES`)."""

    def __init__(self, rule: str, detail: str):
        super().__init__(f"{rule}: {detail}")
        self.rule = rule
        self.detail = detail


# ------------------------------------------------------------------------------ schemas → chat


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise Malformed("missing_field", f"{where} is {type(value).__name__}, expected text")
    if not value.strip():
        raise Malformed("empty_content", f"{where} is empty")
    return value


def _field(row: dict[str, Any], key: str, kind: type) -> Any:
    if key not in row or row[key] is None:
        raise Malformed("missing_field", f"no {key!r}")
    if not isinstance(row[key], kind):
        raise Malformed("missing_field", f"{key!r} is {type(row[key]).__name__}, expected {kind.__name__}")
    if kind is list and not row[key]:
        raise Malformed("missing_field", f"{key!r} is an empty list")
    return row[key]


def _speaker_list(row: dict[str, Any], key: str, role_key: str, text_key: str,
                  roles: dict[str, str]) -> list[dict[str, str]]:
    out = []
    for i, msg in enumerate(_field(row, key, list)):
        if not isinstance(msg, dict) or role_key not in msg or text_key not in msg:
            raise Malformed("missing_field", f"{key}[{i}] lacks {role_key!r} or {text_key!r}")
        if msg[role_key] not in roles:
            raise Malformed("unknown_role", f"{key}[{i}].{role_key} = {msg[role_key]!r}")
        out.append({"role": roles[msg[role_key]], "content": _text(msg[text_key], f"{key}[{i}].{text_key}")})
    return out


_OPENAI_ROLES = {"system": "system", "user": "user", "assistant": "assistant"}
_SHAREGPT_ROLES = {"system": "system", "human": "user", "gpt": "assistant"}


def _messages_schema(row: dict[str, Any]) -> list[dict[str, str]]:
    """UltraChat 200k: ``messages: [{content, role}]``."""
    return _speaker_list(row, "messages", "role", "content", _OPENAI_ROLES)


def _sharegpt_schema(key: str) -> Callable[[dict[str, Any]], list[dict[str, str]]]:
    """ShareGPT-style ``<key>: [{from: human|gpt|system, value}]`` (WizardLM, SlimOrca, OpenChat, Deita)."""
    def convert(row: dict[str, Any]) -> list[dict[str, str]]:
        return _speaker_list(row, key, "from", "value", _SHAREGPT_ROLES)
    return convert


def _capybara_schema(row: dict[str, Any]) -> list[dict[str, str]]:
    """Capybara: ``conversation: [{input, output}]`` — one exchange per item."""
    out = []
    for i, item in enumerate(_field(row, "conversation", list)):
        if not isinstance(item, dict) or "input" not in item or "output" not in item:
            raise Malformed("missing_field", f"conversation[{i}] lacks 'input' or 'output'")
        out.append({"role": "user", "content": _text(item["input"], f"conversation[{i}].input")})
        out.append({"role": "assistant", "content": _text(item["output"], f"conversation[{i}].output")})
    return out


def _metamath_schema(row: dict[str, Any]) -> list[dict[str, str]]:
    """MetaMathQA: ``query`` → ``response`` (single exchange)."""
    query = _text(_field(row, "query", str), "query")
    response = _text(_field(row, "response", str), "response")
    return [{"role": "user", "content": query}, {"role": "assistant", "content": response}]


@dataclass(frozen=True)
class Source:
    """One dataset: where it lives on the Hub, its local sample, and how its rows become chat."""

    name: str
    paper_name: str
    hub_id: str
    split: str
    schema: str
    sample: str
    convert: Callable[[dict[str, Any]], Any]
    data_files: str | None = None
    score_scale: tuple[float, float] | None = None
    """(lowest, highest) score of a preference source that carries scores; None for one without."""


def _hub_id(paper_name: str) -> str:
    """The Hub id listed (in the same order) next to the paper's dataset name in facts.yaml."""
    names, ids = facts.value("sft.datasets"), facts.value("sft.hf_datasets")
    return ids[names.index(paper_name)]


SFT_SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("ultrachat", "UltraChat", _hub_id("UltraChat"), "train_sft",
           "prompt, prompt_id, messages[{content, role}]", "ultrachat_200k.jsonl", _messages_schema),
    Source("wizardlm", "WizardLM", _hub_id("WizardLM"), "train",
           "idx, conversations[{from, value}]", "wizardlm_evol_instruct_v2.jsonl", _sharegpt_schema("conversations")),
    Source("slimorca", "SlimOrca", _hub_id("SlimOrca"), "train",
           "conversations[{from, value, weight}]", "slimorca.jsonl", _sharegpt_schema("conversations")),
    Source("sharegpt", "ShareGPT", _hub_id("ShareGPT"), "train",
           "items[{from, value}] (file sharegpt_gpt4.json)", "openchat_sharegpt4.jsonl", _sharegpt_schema("items"),
           data_files="sharegpt_gpt4.json"),
    Source("capybara", "Capybara", _hub_id("Capybara"), "train",
           "source, conversation[{input, output}]", "capybara.jsonl", _capybara_schema),
    Source("deita", "Deita", _hub_id("Deita"), "train",
           "id, conversations[{from, value}]", "deita_10k_v0.jsonl", _sharegpt_schema("conversations")),
    Source("metamathqa", "MetaMathQA", _hub_id("MetaMathQA"), "train",
           "query, response, type, original_question", "metamathqa.jsonl", _metamath_schema),
)}
"""The seven SFT sources of the paper, in its order (Hub ids from facts ``sft.hf_datasets``)."""


ULTRAFEEDBACK_SCALE = (1.0, 10.0)
"""UltraFeedback's GPT-4 overall rating runs from 1 to 10 (the paper's threshold is 8/10)."""


def check_score(value: Any, scale: tuple[float, float], where: str = "score") -> float:
    """``value`` as a float if it is a finite number inside ``scale`` (inclusive); :class:`Malformed` otherwise.

    Raises ``Malformed`` with rule ``missing_score`` (None), ``non_numeric_score`` (not an int or
    float: text, a boolean, …), ``non_finite_score`` (NaN, ±inf) or ``score_out_of_scale``.
    """
    if value is None:
        raise Malformed("missing_score", f"{where} is missing")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Malformed("non_numeric_score", f"{where} is {value!r} ({type(value).__name__}), expected a number")
    x = float(value)
    if not math.isfinite(x):
        raise Malformed("non_finite_score", f"{where} is {x!r}")
    lo, hi = scale
    if not lo <= x <= hi:
        raise Malformed("score_out_of_scale", f"{where} = {x:g} is outside the scale [{lo:g}, {hi:g}]")
    return x


def _pair_ultrafeedback(row: dict[str, Any]) -> dict[str, Any]:
    """UltraFeedback binarized: chosen/rejected are whole conversations; scores on a 1–10 scale."""
    chosen = _speaker_list(row, "chosen", "role", "content", _OPENAI_ROLES)
    rejected = _speaker_list(row, "rejected", "role", "content", _OPENAI_ROLES)
    sc, sr = (check_score(row.get(k), ULTRAFEEDBACK_SCALE, k) for k in ("score_chosen", "score_rejected"))
    if chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant":
        raise Malformed("broken_pair", "chosen or rejected does not end with an assistant reply")
    if chosen[:-1] != rejected[:-1] or not chosen[:-1]:
        raise Malformed("broken_pair", "chosen and rejected do not share one non-empty prompt")
    return {"prompt": chosen[:-1], "chosen": chosen[-1:], "rejected": rejected[-1:],
            "score_chosen": sc, "score_rejected": sr}


def _pair_orca(row: dict[str, Any]) -> dict[str, Any]:
    """Intel Orca DPO pairs: system, question, chosen (GPT-4), rejected (Llama-2-13b-chat); no scores."""
    question = _text(_field(row, "question", str), "question")
    chosen = _text(_field(row, "chosen", str), "chosen")
    rejected = _text(_field(row, "rejected", str), "rejected")
    system = row.get("system")
    if system is not None and not isinstance(system, str):
        raise Malformed("missing_field", f"system is {type(system).__name__}, expected text")
    prompt = ([{"role": "system", "content": system}] if system and system.strip() else [])
    prompt.append({"role": "user", "content": question})
    return {"prompt": prompt, "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}], "score_chosen": None, "score_rejected": None}


DPO_SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("ultrafeedback", "UltraFeedback", facts.value("dpo.hf_datasets_card_text")[0], "train_prefs",
           "prompt, prompt_id, chosen[{content, role}], rejected[…], messages, score_chosen, score_rejected",
           "ultrafeedback_binarized.jsonl", _pair_ultrafeedback, score_scale=ULTRAFEEDBACK_SCALE),
    Source("orca_pairs", "Intel Orca Pairs", facts.value("dpo.hf_datasets_card_text")[1], "train",
           "system, question, chosen, rejected", "orca_dpo_pairs.jsonl", _pair_orca),
)}
"""The two preference sources (Hub ids from facts ``dpo.hf_datasets_card_text``)."""


# ------------------------------------------------------------------------------ reading


def raw_rows(source: Source, mode: str, sample_dir: Path | None = None) -> Iterator[tuple[int, Any]]:
    """``(row number, raw row)`` of a source: streamed from the Hub or read from its local sample.

    A local line that is not JSON is yielded as ``None`` so it is counted (``unreadable``), not lost;
    blank lines are skipped (row numbers are line numbers from 0).

    Raises:
        AlignmentDataError: ``mode`` is neither ``hub`` nor ``local``, or the local sample file is missing
            (a generator: raised when iteration starts, before any row).
    """
    if mode == "hub":
        from datasets import load_dataset

        kwargs = {"data_files": source.data_files} if source.data_files else {}
        stream = load_dataset(source.hub_id, split=source.split, streaming=True, **kwargs)
        yield from enumerate(stream)
    elif mode == "local":
        path = (sample_dir or SAMPLES_DIR) / source.sample
        if not path.is_file():
            raise AlignmentDataError(f"local sample of source {source.name!r} not found at {path}; "
                                     "fix: restore the file from the repository or point sample_dir at it")
        with path.open(encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    row = None
                yield i, row if isinstance(row, dict) else None
    else:
        raise AlignmentDataError(f"data mode {mode!r} is not 'hub' or 'local' (config field data.source)")


def count_turns(messages: list[dict[str, str]], unit: str = "exchange") -> int:
    """Turns of a conversation: exchanges (assistant replies) or user + assistant messages.

    Raises:
        AlignmentDataError: ``unit`` is neither ``exchange`` nor ``message`` (config ``align.sft_turn``).
    """
    if unit == "exchange":
        return sum(m["role"] == "assistant" for m in messages)
    if unit == "message":
        return sum(m["role"] in ("user", "assistant") for m in messages)
    raise AlignmentDataError(f"turn unit {unit!r} is not 'exchange' or 'message' (config field align.sft_turn)")


def _check_order(messages: list[dict[str, str]]) -> None:
    body = messages[1:] if messages and messages[0]["role"] == "system" else messages
    if not body:
        raise Malformed("bad_order", "no user or assistant message")
    for i, m in enumerate(body):
        want = "user" if i % 2 == 0 else "assistant"
        if m["role"] != want:
            raise Malformed("bad_order", f"message {i} is {m['role']!r} where {want!r} belongs")
    if body[-1]["role"] != "assistant":
        raise Malformed("bad_order", "the conversation ends without an assistant reply")


# ------------------------------------------------------------------------------ reports


@dataclass
class FilterReport:
    """Rows read, kept and dropped per rule, per source — nothing dropped goes uncounted."""

    rules: tuple[str, ...]
    read: Counter = field(default_factory=Counter)
    kept: Counter = field(default_factory=Counter)
    dropped: dict[str, Counter] = field(default_factory=dict)
    examples: dict[tuple[str, str], str] = field(default_factory=dict)

    def drop(self, source: str, rule: str, detail: str, row_id: str) -> None:
        """Count one row of ``source`` dropped by ``rule``; the first such row is the rule's example."""
        self.dropped.setdefault(source, Counter())[rule] += 1
        self.examples.setdefault((source, rule), f"{row_id}: {detail}")

    def rows(self) -> list[dict[str, Any]]:
        """One row per source: read, kept and one column per rule (for a table)."""
        out = []
        for src in self.read:
            row: dict[str, Any] = {"source": src, "read": self.read[src], "kept": self.kept[src]}
            row.update({r: self.dropped.get(src, Counter())[r] for r in self.rules})
            out.append(row)
        return out

    def totals(self) -> dict[str, int]:
        """Rows read, kept and dropped per rule, summed over the sources (``read``, ``kept``, rule → n)."""
        tot: dict[str, int] = {"read": sum(self.read.values()), "kept": sum(self.kept.values())}
        for r in self.rules:
            tot[r] = sum(c[r] for c in self.dropped.values())
        return tot

    def to_dict(self) -> FilterReportDict:
        """The report as JSON-ready data: :meth:`rows`, :meth:`totals`, ``"source/rule"`` → first example."""
        return {"rows": self.rows(), "totals": self.totals(),
                "examples": {f"{s}/{r}": d for (s, r), d in self.examples.items()}}


@dataclass
class Loaded:
    """Normalised rows and the report of what was dropped."""

    rows: list[dict[str, Any]]
    report: FilterReport


def _pick(names: Iterable[str] | None, known: dict[str, Source], kind: str) -> list[Source]:
    names = list(known) if names is None else list(names)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise AlignmentDataError(f"unknown {kind} source(s) {', '.join(map(repr, unknown))}; "
                                 f"known: {', '.join(known)}")
    if not names:
        raise AlignmentDataError(f"no {kind} source selected; choose among: {', '.join(known)}")
    return [known[n] for n in names]


def _no_usable(src: Source, report: FilterReport, mode: str) -> AlignmentDataError:
    why = ", ".join(f"{r} {n}" for r, n in report.dropped.get(src.name, Counter()).items() if n)
    return AlignmentDataError(
        f"source {src.name!r} ({src.hub_id}, {mode}) gave no usable rows: read {report.read[src.name]}"
        + (f", dropped {why}" if why else "")
        + f"; fix: check that its rows follow the schema '{src.schema}', or leave the source out")


def load_sft(sources: Iterable[str] | None = None, *, mode: str = "local", max_turns: int = 8,
             turn_unit: str = "exchange", max_samples: int = 0, sample_dir: Path | None = None) -> Loaded:
    """Read, normalise and filter the SFT sources (all seven by default; Sec. 3.1).

    ``max_samples`` caps the rows *kept* per source (0 = all; the rest are not read).
    """
    count_turns([], turn_unit)  # validates the unit before reading anything

    def accept(src: Source, raw: dict[str, Any]) -> dict[str, Any]:
        messages = src.convert(raw)
        _check_order(messages)
        turns = count_turns(messages, turn_unit)
        if turns > max_turns:
            raise Malformed("too_many_turns", f"{turns} {turn_unit} turns > {max_turns}")
        return {"messages": messages}

    return _read(_pick(sources, SFT_SOURCES, "SFT"), SFT_RULES, accept, mode=mode, max_samples=max_samples,
                 sample_dir=sample_dir)


def _read(chosen: list[Source], rules: Iterable[str], accept: Callable[[Source, dict[str, Any]], dict[str, Any]],
          *, mode: str, max_samples: int, sample_dir: Path | None) -> Loaded:
    """Every raw row of every chosen source through ``accept`` (which raises :class:`Malformed` to drop
    it); each drop counted under its rule, at most ``max_samples`` rows kept per source (0 = all)."""
    report = FilterReport(rules=tuple(rules))
    rows: list[dict[str, Any]] = []
    for src in chosen:
        report.read[src.name] += 0
        for i, raw in raw_rows(src, mode, sample_dir):
            row_id = f"{src.name}:{i}"
            report.read[src.name] += 1
            try:
                if raw is None:
                    raise Malformed("unreadable", "not a JSON object")
                row = accept(src, raw)
            except Malformed as bad:
                report.drop(src.name, bad.rule, bad.detail, row_id)
                continue
            rows.append({"source": src.name, "id": row_id, **row})
            report.kept[src.name] += 1
            if max_samples and report.kept[src.name] >= max_samples:
                break
        if not report.kept[src.name]:
            raise _no_usable(src, report, mode)
    return Loaded(rows, report)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def load_dpo(sources: Iterable[str] | None = None, *, mode: str = "local", min_chosen_score: float = 8.0,
             max_samples: int = 0, sample_dir: Path | None = None) -> Loaded:
    """Read the preference sources and apply the paper's three filters (Sec. 3.2; after the malformed rules).

    Tied ranking and the chosen-score threshold need scores; a source without them (Intel Orca
    pairs) passes those two rules untouched — :func:`unscored` tells how many pairs that concerns.
    A scored source's scores are checked first (:func:`check_score`: missing, non-numeric,
    non-finite, off the scale) and a pair whose chosen scores below its rejected is dropped.

    Raises :class:`AlignmentDataError` before reading anything when ``min_chosen_score`` is not a
    finite number inside the scale of every selected scored source (e.g. NaN, which would keep all).
    """
    picked = _pick(sources, DPO_SOURCES, "preference")
    for src in picked:
        if src.score_scale is None:
            continue
        try:
            check_score(min_chosen_score, src.score_scale, "min_chosen_score")
        except Malformed as bad:
            raise AlignmentDataError(
                f"{bad.detail} for source {src.name!r}; fix: give a finite threshold on its scale "
                f"[{src.score_scale[0]:g}, {src.score_scale[1]:g}] (config field align.dpo_min_chosen_score; "
                "the paper: 8)") from None

    def accept(src: Source, raw: dict[str, Any]) -> dict[str, Any]:
        pair = src.convert(raw)
        sc, sr = pair["score_chosen"], pair["score_rejected"]
        if src.score_scale is not None and (sc is None or sr is None):
            raise Malformed("missing_score", "a scored source's pair came without its scores")
        if sc is not None and sc < sr:
            raise Malformed("inverted_ranking", f"chosen scored {sc:g} < rejected {sr:g}")
        if sc is not None and sc == sr:
            raise Malformed("tied_ranking", f"both scored {sc:g}")
        if _norm(pair["chosen"][-1]["content"]) == _norm(pair["rejected"][-1]["content"]):
            raise Malformed("duplicated_content", "chosen and rejected responses are identical")
        if sc is not None and sc < min_chosen_score:
            raise Malformed("low_chosen_score", f"chosen scored {sc:g} < {min_chosen_score:g}")
        return pair

    return _read(picked, DPO_RULES, accept, mode=mode, max_samples=max_samples, sample_dir=sample_dir)


def unscored(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Kept pairs per source that carried no scores (the score-based filters could not apply)."""
    return dict(Counter(r["source"] for r in rows if r["score_chosen"] is None))


def describe_sources() -> list[dict[str, str]]:
    """Every source with its paper name, Hub id, split and raw schema (for a table)."""
    out = []
    for stage, table in (("SFT", SFT_SOURCES), ("DPO", DPO_SOURCES)):
        for s in table.values():
            out.append({"stage": stage, "source": s.name, "paper name": s.paper_name, "hub id": s.hub_id,
                        "split": s.split, "schema": s.schema, "local sample": s.sample})
    return out
