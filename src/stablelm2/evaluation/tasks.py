"""The paper's benchmark suites as lm-evaluation-harness tasks, the offline tasks, and the harness run.

Every evaluation goes through lm-evaluation-harness (``lm_eval.simple_evaluate`` with ``HFLM``);
this module only decides *which* tasks, with how many shots, and checks the request first.

* **Paper suites** (today's lm-eval names; :data:`SUITES`): ``table4`` — the Open LLM tasks of
  Table 4 with the shot counts parsed from fact ``eval.tab4.metrics``; ``multilingual`` — 0-shot
  ARC-c, HellaSwag, TruthfulQA (mc2) and MMLU in English and the translated Okapi sets for DE, ES,
  FR, IT, NL, PT; ``lambada_paper`` — LAMBADA in the paper's own translations; ``s7`` — every task
  of the published raw files, for a like-for-like regression with :mod:`.compare`.
* **Offline tasks** (``smoke``/``cpu``), defined the harness's own way — task YAML over local JSONL
  written from text shipped in ``data/texts/``: ``slm2_cloze_mc`` (multiple-choice log-likelihood:
  the true next sentence of an essay against three from other essays, acc/acc_norm),
  ``slm2_lastword`` (LAMBADA-style: the last word of a passage, acc/perplexity) and ``slm2_qa``
  (generation, 3-shot questions in seven languages, exact match).

:func:`evaluate` refuses an unknown task, a model path that is not there, or requests longer than
the model's context *before* any model is loaded.

>>> from stablelm2 import config
>>> from stablelm2.evaluation import tasks
>>> [(s.name, s.num_fewshot) for s in tasks.suite("table4")][:2]
[('arc_challenge', 25), ('hellaswag', 10)]
>>> [s.name for s in tasks.default_tasks(config.load("smoke"))]
['slm2_cloze_mc', 'slm2_lastword', 'slm2_qa']
"""

from __future__ import annotations

import difflib
import json
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import yaml

from .. import facts as F
from ..config import Config
from ..files import atomic_write_json, atomic_write_jsonl, atomic_write_text, sha256_file
from .results import TaskResults, TaskSummaryRow

TEXTS_DIR = Path(__file__).with_name("data") / "texts"
"""Text shipped with the package: ``essays.txt`` (haystack and cloze source) and ``qa.txt``."""

NON_EN = tuple(code.lower() for code in F.value("data.languages_non_english"))


class EvalError(ValueError):
    """An evaluation request that cannot run: unknown task, missing model, context too long."""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    """Task name in lm-eval 0.4 (or one of the offline tasks)."""
    num_fewshot: int
    """Shots in the prompt."""
    metric: str
    """Result key the report reads (``acc_norm``, ``acc``, ``exact_match,strip`` …)."""
    folder: str
    """Where the YAML lives: a folder under ``lm_eval/tasks`` or ``local`` for the offline tasks."""
    what: str = ""
    """Human description (benchmark, language)."""


# ------------------------------------------------------------------------------ paper suites

_TABLE4_NAMES = {  # card abbreviation → (lm-eval task, folder, today's metric for the card's metric)
    "ARC": ("arc_challenge", "arc", {"acc_norm": "acc_norm"}),
    "HS": ("hellaswag", "hellaswag", {"acc_norm": "acc_norm"}),
    "MMLU": ("mmlu", "mmlu/default", {"acc_norm": "acc", "acc": "acc"}),  # 0.4's MMLU has only acc
    "TQA": ("truthfulqa_mc2", "truthfulqa", {"mc2": "acc"}),
    "Wino": ("winogrande", "winogrande", {"acc": "acc"}),
    "GSM8K": ("gsm8k", "gsm8k", {"acc": "exact_match,strict-match"}),
}


def table4_suite() -> tuple[TaskSpec, ...]:
    """Table 4's six tasks with the shots and metrics of fact ``eval.tab4.metrics`` (parsed, not typed).

    Raises:
        EvalError: the fact does not parse into the six tasks.
    """
    text = F.value("eval.tab4.metrics")
    specs = []
    for abbr, metric, shots in re.findall(r"(\w+) (\w+) \((\d+)-shot\)", text):
        task, folder, metric_map = _TABLE4_NAMES[abbr]
        specs.append(TaskSpec(task, int(shots), metric_map[metric], folder, f"{abbr} ({metric} on the card)"))
    if len(specs) != len(_TABLE4_NAMES):
        raise EvalError(f"fact eval.tab4.metrics = {text!r} did not parse into the six Table 4 tasks")
    return tuple(specs)


def multilingual_suite() -> tuple[TaskSpec, ...]:
    """0-shot ARC-c, HellaSwag, TruthfulQA mc2, MMLU: English, then the six Okapi translations (Table 5)."""
    specs = [
        TaskSpec("arc_challenge", 0, "acc_norm", "arc", "ARC-c en"),
        TaskSpec("hellaswag", 0, "acc_norm", "hellaswag", "HellaSwag en"),
        TaskSpec("truthfulqa_mc2", 0, "acc", "truthfulqa", "TruthfulQA mc2 en"),
        TaskSpec("mmlu", 0, "acc", "mmlu/default", "MMLU en"),
    ]
    for lang in NON_EN:
        specs += [
            TaskSpec(f"arc_{lang}", 0, "acc_norm", "okapi/arc_multilingual", f"ARC-c {lang}"),
            TaskSpec(f"hellaswag_{lang}", 0, "acc_norm", "okapi/hellaswag_multilingual", f"HellaSwag {lang}"),
            TaskSpec(f"truthfulqa_{lang}_mc2", 0, "acc", "okapi/truthfulqa_multilingual", f"TruthfulQA mc2 {lang}"),
            TaskSpec(f"m_mmlu_{lang}", 0, "acc", "okapi/mmlu_multilingual", f"MMLU {lang}"),
        ]
    return tuple(specs)


def lambada_paper_suite() -> tuple[TaskSpec, ...]:
    """LAMBADA in the paper's own translations (languages of fact ``eval.lambada_deepl.languages``)."""
    return tuple(TaskSpec(f"lambada_openai_mt_stablelm_{lang}", 0, "acc", "lambada_multilingual_stablelm",
                          f"LAMBADA (paper translation) {lang}") for lang in F.value("eval.lambada_deepl.languages"))


def s7_suite() -> tuple[TaskSpec, ...]:
    """Every task of the published raw files under today's names (0-shot), for :func:`.compare.compare`."""
    from . import published

    subjects = [s.removeprefix("hendrycksTest-") for s in
                published.mmlu_subjects(published.load("stabilityai/stablelm-2-1_6b")["results"])]
    specs = [s for s in multilingual_suite() if s.name != "mmlu"]
    specs += [TaskSpec(f"mmlu_{s}", 0, "acc", "mmlu/default", f"MMLU {s}") for s in subjects]
    specs += [TaskSpec("arc_easy", 0, "acc_norm", "arc", "ARC-e"), TaskSpec("piqa", 0, "acc", "piqa", "PIQA"),
              TaskSpec("sciq", 0, "acc", "sciq", "SciQ"), TaskSpec("winogrande", 0, "acc", "winogrande", "WinoGrande"),
              TaskSpec("lambada_openai", 0, "acc", "lambada", "LAMBADA en")]
    specs += [TaskSpec(f"lambada_openai_mt_{lang}", 0, "acc", "lambada_multilingual", f"LAMBADA (EleutherAI) {lang}")
              for lang in ("de", "es", "fr", "it")]
    return tuple(specs)


TARGET_DELIMITER = " "
"""What the harness puts between context and continuation (lm-eval's default ``target_delimiter``);
the offline tasks' contexts and choices carry no boundary whitespace of their own."""

LOCAL: tuple[TaskSpec, ...] = (
    TaskSpec("slm2_cloze_mc", 0, "acc_norm", "local", "next sentence of an essay among 4 (log-likelihood)"),
    TaskSpec("slm2_lastword", 0, "acc", "local", "last word of an essay passage (LAMBADA-style)"),
    TaskSpec("slm2_qa", 3, "exact_match,strip", "local", "one-word answers in 7 languages (generation, exact match)"),
)

SUITES = {"table4": table4_suite, "multilingual": multilingual_suite, "lambada_paper": lambada_paper_suite,
          "s7": s7_suite, "local": lambda: LOCAL}
"""Suite name → function giving its task specs."""


def suite(name: str) -> tuple[TaskSpec, ...]:
    """The task specs of one suite (see :data:`SUITES`).

    Raises:
        EvalError: ``name`` is not a suite (or, for ``table4``, as :func:`table4_suite`).
    """
    if name not in SUITES:
        raise EvalError(f"unknown suite {name!r}; suites are: {', '.join(SUITES)}")
    return SUITES[name]()


def suites_table(names: tuple[str, ...] = ("table4", "multilingual", "lambada_paper")) -> list[dict[str, Any]]:
    """Rows (suite, task, shots, metric, folder, what) of the named suites."""
    return [{"suite": name, **asdict(s)} for name in names for s in suite(name)]


def default_tasks(cfg: Config) -> list[TaskSpec]:
    """What a chapter run evaluates: the paper's suites at ``paper``, the offline tasks otherwise."""
    if cfg.run.preset == "paper":
        return [*table4_suite(), *multilingual_suite(), *lambada_paper_suite()]
    return list(LOCAL)


def resolve(tasks: list[str | TaskSpec]) -> list[TaskSpec]:
    """Specs for task names (a name of any suite; its first spec wins) or specs passed through.

    Raises:
        EvalError: a name no suite holds (the message suggests close matches).
    """
    known: dict[str, TaskSpec] = {}
    for name in SUITES:
        for s in suite(name):
            known.setdefault(s.name, s)
    out = []
    for t in tasks:
        if isinstance(t, TaskSpec):
            out.append(t)
        elif t in known:
            out.append(known[t])
        else:
            hint = difflib.get_close_matches(str(t), list(known), n=3)
            raise EvalError(f"unknown task {t!r}" + (f"; did you mean {', '.join(hint)}?" if hint else
                            f"; tasks are those of the suites {', '.join(SUITES)}"))
    return out


# ------------------------------------------------------------------------------ offline tasks


def essays() -> list[tuple[str, list[str]]]:
    """``[(title, paragraphs)]`` of the shipped essays (``data/texts/essays.txt``)."""
    out: list[tuple[str, list[str]]] = []
    for block in re.split(r"^# ", (TEXTS_DIR / "essays.txt").read_text(encoding="utf-8"), flags=re.M):
        if block.strip():
            title, _, body = block.partition("\n")
            out.append((title.strip(), [p.strip() for p in body.split("\n\n") if p.strip()]))
    return out


def sentences(paragraph: str) -> list[str]:
    """The paragraph's sentences: split after ``.``, ``!`` or ``?`` followed by whitespace."""
    return [s for s in re.split(r"(?<=[.!?])\s+", paragraph.strip()) if s]


def cloze_docs(seed: int) -> list[dict[str, Any]]:
    """Each adjacent sentence pair of a paragraph: the true next sentence among three from other essays.

    Context and choices carry no boundary whitespace: the harness joins them with the task's
    ``target_delimiter`` (one space), as in its own multiple-choice tasks (ARC, HellaSwag)."""
    rng = random.Random(seed)
    pool = [(i, s) for i, (_, paras) in enumerate(essays()) for p in paras for s in sentences(p)]
    docs = []
    for i, (_, paras) in enumerate(essays()):
        others = [s for j, s in pool if j != i]
        for p in paras:
            sents = sentences(p)
            for a, b in zip(sents, sents[1:], strict=False):
                choices = [b, *rng.sample(others, 3)]
                rng.shuffle(choices)
                docs.append({"context": a, "choices": choices, "label": choices.index(b)})
    return docs


def lastword_docs() -> list[dict[str, Any]]:
    """Passages of up to four sentences ending at each sentence of a paragraph, final punctuation removed."""
    docs = []
    for _, paras in essays():
        for p in paras:
            sents = sentences(p)
            for k in range(1, len(sents)):
                text = " ".join(sents[max(0, k - 3): k + 1]).rstrip(".!?")
                last = text.split(" ")[-1]
                if last.isalpha() and len(last) > 2:
                    docs.append({"text": text})
    return docs


def qa_docs() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(few-shot pool: the first question of each language, test: the rest) from ``data/texts/qa.txt``."""
    rows = [line.split("\t") for line in (TEXTS_DIR / "qa.txt").read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]
    seen: set[str] = set()
    train: list[dict[str, str]] = []
    test: list[dict[str, str]] = []
    for lang, q, a in rows:
        (test if lang in seen else train).append({"lang": lang, "question": q, "answer": a})
        seen.add(lang)
    return train, test


_METRICS_MC = [{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
               {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}]


def write_local_tasks(out_dir: Path, seed: int) -> Path:
    """Write the offline tasks' JSONL and task YAML under ``out_dir``; returns it (an ``include_path``)."""
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)

    def jsonl(name: str, docs: list[dict[str, Any]]) -> str:
        path = out_dir / f"{name}.jsonl"
        atomic_write_jsonl(path, docs)
        return str(path)

    train, test = qa_docs()
    configs = {
        "slm2_cloze_mc": {
            "dataset_kwargs": {"data_files": {"test": jsonl("slm2_cloze_mc", cloze_docs(seed))}},
            "output_type": "multiple_choice", "test_split": "test", "target_delimiter": TARGET_DELIMITER,
            "doc_to_text": "context", "doc_to_choice": "choices", "doc_to_target": "label",
            "metric_list": _METRICS_MC,
        },
        "slm2_lastword": {
            "dataset_kwargs": {"data_files": {"test": jsonl("slm2_lastword", lastword_docs())}},
            "output_type": "loglikelihood", "test_split": "test",
            "doc_to_text": "{{text.split(' ')[:-1]|join(' ')}}", "doc_to_target": "{{' '+text.split(' ')[-1]}}",
            "metric_list": [{"metric": "perplexity", "aggregation": "perplexity", "higher_is_better": False},
                            {"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        },
        "slm2_qa": {
            "dataset_kwargs": {"data_files": {"train": jsonl("slm2_qa_train", train),
                                              "test": jsonl("slm2_qa_test", test)}},
            "output_type": "generate_until", "training_split": "train", "fewshot_split": "train",
            "test_split": "test", "fewshot_config": {"sampler": "first_n"},
            "doc_to_text": "Question: {{question}}\nAnswer:", "doc_to_target": "{{answer}}",
            "generation_kwargs": {"until": ["\n", "Question:"], "do_sample": False, "max_gen_toks": 16},
            "filter_list": [{"name": "strip", "filter": [{"function": "remove_whitespace"},
                                                         {"function": "take_first"}]}],
            "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True,
                             "ignore_case": True, "ignore_punctuation": True}],
        },
    }
    for spec in LOCAL:
        body = {"task": spec.name, "dataset_path": "json", **configs[spec.name],
                "num_fewshot": spec.num_fewshot, "metadata": {"version": 1.0, "what": spec.what}}
        atomic_write_text(out_dir / f"{spec.name}.yaml", yaml.safe_dump(body, sort_keys=False, allow_unicode=True))
    return out_dir


# ------------------------------------------------------------------------------ checks


def task_manager(specs: list[TaskSpec], local_dir: Path | None = None) -> Any:
    """A ``TaskManager`` that indexes only the folders these tasks live in (no 30 s full index).

    ``local_dir``: the folder :func:`write_local_tasks` wrote (needed when an offline task is asked for).

    Raises:
        EvalError: an offline task is asked for without ``local_dir``.
    """
    import lm_eval.tasks
    from lm_eval.tasks import TaskManager

    root = Path(lm_eval.tasks.__file__).parent
    paths: list[str] = []
    for s in specs:
        p = str(local_dir) if s.folder == "local" else str(root / s.folder)
        if s.folder == "local" and local_dir is None:
            raise EvalError(f"task {s.name} is an offline task; write it first with write_local_tasks()")
        if p not in paths:
            paths.append(p)
    return TaskManager(include_path=paths, include_defaults=False)


def check_tasks(specs: list[TaskSpec], tm: Any) -> None:
    """Every task must be in the manager's index; otherwise an error naming the close matches.

    Raises:
        EvalError: a task the manager ``tm`` does not index.
    """
    missing = [s.name for s in specs if s.name not in tm.all_tasks]
    if missing:
        hints = {m: difflib.get_close_matches(m, tm.all_tasks, n=2) for m in missing}
        raise EvalError("unknown task(s) for lm-eval: " + "; ".join(
            f"{m}" + (f" (did you mean {', '.join(h)}?)" if h else "") for m, h in hints.items()))


def model_context(model_dir: str | Path, *, offline: bool) -> int | None:
    """The model's context length from its ``config.json``; None for a Hub id when online.

    A local path that is not a model directory, or any non-existent path while offline, is refused.
    Also None when ``config.json`` holds none of ``max_position_embeddings``/``n_positions``/``n_ctx``/
    ``seq_length``. The length is in the model's tokens.

    Raises:
        EvalError: a local path (any path while ``offline``) with no ``config.json``.
    """
    path = Path(model_dir).expanduser()
    looks_local = path.is_absolute() or str(model_dir).startswith(".") or path.exists() or offline \
        or str(model_dir).count("/") != 1
    if not looks_local:
        return None
    if not (path / "config.json").is_file():
        raise EvalError(
            f"model path {model_dir} is not a model directory (no config.json there)"
            + (" and the run is offline, so it cannot be a Hub id" if offline else "")
            + "; build it first (training.pretrained(cfg) / alignment.aligned(cfg, stage)) or pass a Hub id at paper")
    conf = json.loads((path / "config.json").read_text(encoding="utf-8"))
    for key in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
        if isinstance(conf.get(key), int):
            return int(conf[key])
    return None


def build_requests(tm: Any, specs: list[TaskSpec], limit: int | None, seed: int) -> dict[str, list[Any]]:
    """The harness's own requests (``Instance`` objects) of each task, built exactly as
    ``simple_evaluate`` builds them: ``(context, continuation)`` for log-likelihood and multiple choice,
    ``(context, generation kwargs)`` for generation."""
    loaded = tm.load([s.name for s in specs])["tasks"]
    shots = {s.name: s.num_fewshot for s in specs}
    out = {}
    for name, task in loaded.items():
        task.set_config(key="num_fewshot", value=shots.get(name, task.get_config("num_fewshot") or 0))
        task.set_fewshot_seed(seed=seed)
        task.build_all_requests(limit=limit, rank=0, world_size=1)
        out[name] = list(task.instances)
    return out


def boundary_problems(instances: list[Any]) -> list[str]:
    """What is wrong at the context/continuation boundary of built requests (empty: nothing).

    The harness's convention: the context ends on a non-space character and the continuation starts
    with exactly one delimiter (a space) before its first word, as lm-eval's ``target_delimiter`` and
    LAMBADA's ``' ' + word`` give. A doubled space (a choice that already starts with one, behind the
    delimiter), a space on both sides of the boundary, or a generation prompt ending in a space (the
    model would have to generate a word without its leading space) scores an extra lone-space token.
    """
    problems = []
    for inst in instances:
        ctx, second = inst.args[0], inst.args[1]
        where = f"doc {inst.doc_id} ({inst.request_type})"
        if isinstance(second, str):
            if not second.strip():
                problems.append(f"{where}: empty continuation {second!r}")
            elif second[:2].isspace() and len(second) > 1:
                problems.append(f"{where}: continuation starts with doubled whitespace {second[:12]!r}")
            elif ctx and ctx[-1].isspace() and second[0].isspace():
                problems.append(f"{where}: whitespace on both sides of the boundary ({ctx[-8:]!r} | {second[:8]!r})")
        elif ctx.endswith(" "):
            problems.append(f"{where}: generation prompt ends with a space ({ctx[-12:]!r})")
    return problems


def check_requests(requests: dict[str, list[Any]]) -> None:
    """Raise :class:`EvalError` naming every task whose built requests break the boundary convention."""
    bad = {name: boundary_problems(inst) for name, inst in requests.items()}
    bad = {k: v for k, v in bad.items() if v}
    if bad:
        raise EvalError("requests with whitespace at the context/continuation boundary: " + "; ".join(
            f"{k}: {len(v)} requests, e.g. {v[0]}" for k, v in bad.items())
            + "; fix: leave boundary whitespace to the task's target_delimiter (choices and contexts bare)")


def longest_request(tm: Any, specs: list[TaskSpec], tokenizer: Any, limit: int | None, seed: int,
                    requests: dict[str, list[Any]] | None = None) -> dict[str, int]:
    """Tokens of the longest request per task (context + continuation, + generation budget), via lm-eval."""
    requests = requests if requests is not None else build_requests(tm, specs, limit, seed)
    out = {}
    for name, instances in requests.items():
        longest = 0
        for inst in instances:
            ctx, second = inst.args[0], inst.args[1]
            extra = len(tokenizer(second, add_special_tokens=False)["input_ids"]) if isinstance(second, str) \
                else int(second.get("max_gen_toks", 256))
            longest = max(longest, len(tokenizer(ctx, add_special_tokens=False)["input_ids"]) + extra)
        out[name] = longest
    return out


# ------------------------------------------------------------------------------ running


def data_tokenizer(model_dir: str | Path) -> Any:
    """The model's tokenizer, set to encode special-token text in documents as plain text.

    The harness tokenizes plain strings (no chat template); a document that happens to contain
    ``<|endoftext|>`` or ``<|im_end|>`` must be scored as the text it is, as pre-training saw it
    (:func:`stablelm2.tokenizer.encode`), not as a control token (``split_special_tokens``).
    """
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir), split_special_tokens=True)


@dataclass
class Prepared:
    """Tasks written, indexed and checked once, for every model evaluated on them (:func:`prepare`)."""

    specs: list[TaskSpec]
    tm: Any
    """The ``TaskManager`` indexing only these tasks' folders."""
    requests: dict[str, list[Any]]
    """The offline tasks' built requests (checked by :func:`check_requests`)."""
    limit: int | None
    seed: int
    longest: dict[str, dict[str, int]]
    """Longest request per task, per tokenizer (keyed by the sha256 of its ``tokenizer.json``)."""

    def longest_for(self, model_dir: str | Path, tok: Any) -> dict[str, int]:
        """:func:`longest_request` for ``tok``, tokenised once per distinct tokenizer file."""
        local = [s for s in self.specs if s.folder == "local"]
        if not local:
            return {}
        file = Path(model_dir) / "tokenizer.json"
        key = sha256_file(file) if file.is_file() else str(model_dir)
        if key not in self.longest:
            self.longest[key] = longest_request(self.tm, local, tok, self.limit, self.seed, self.requests)
        return self.longest[key]


def prepare(tasks: Sequence[str | TaskSpec], cfg: Config) -> Prepared:
    """Resolve ``tasks``, write the offline ones, index them and check their requests (no model needed).

    :class:`EvalError` for an unknown task or requests that break the boundary convention. Pass the
    result to :func:`evaluate` for each model of a comparison: the tasks are written and checked once.
    """
    specs = resolve(list(tasks))
    if not specs:
        raise EvalError("no tasks given; pass task names or a suite, e.g. tasks.suite('local')")
    local_dir = write_local_tasks(cfg.chapter_dir("07_evaluation") / "tasks", cfg.run.seed) \
        if any(s.folder == "local" for s in specs) else None
    tm = task_manager(specs, local_dir)
    check_tasks(specs, tm)
    limit = cfg.eval.limit or None
    local = [s for s in specs if s.folder == "local"]
    requests = build_requests(tm, local, limit, cfg.run.seed) if local else {}
    check_requests(requests)
    return Prepared(specs, tm, requests, limit, cfg.run.seed, {})


def evaluate(model_dir: str | Path, tasks: Sequence[str | TaskSpec], cfg: Config, *,
             out: Path | None = None, prepared: Prepared | None = None) -> TaskResults:
    """Run ``lm_eval.simple_evaluate`` with ``HFLM`` on a model directory (or Hub id at ``paper``).

    Checks first (no model loaded yet): the tasks exist, the model directory exists, the offline
    tasks' built requests follow the harness's boundary convention (:func:`check_requests`), and every
    request fits the model's context. Special-token text in documents is scored as text
    (:func:`data_tokenizer`). Tasks are grouped by shot count, one ``simple_evaluate`` per
    group over the same loaded model (the offline tasks in one call: their shots are in their YAML).
    The merged results (lm-eval 0.4 shape, no per-sample logs) are returned and, with ``out``,
    written atomically as JSON — the file :func:`.compare.compare` reads. ``prepared`` (from
    :func:`prepare` with the same ``tasks`` and ``cfg``) skips writing and checking the tasks again.

    Raises:
        EvalError: no tasks; ``prepared`` made for other tasks, limit or seed; a request longer than the
            model's context; and as :func:`resolve`, :func:`model_context` and :func:`prepare`.
    """
    wanted = resolve(list(tasks))
    if not wanted:
        raise EvalError("no tasks given; pass task names or a suite, e.g. tasks.suite('local')")
    ctx_len = model_context(model_dir, offline=cfg.run.offline)
    if prepared is None:
        prepared = prepare(wanted, cfg)
    elif [s.name for s in prepared.specs] != [s.name for s in wanted] or prepared.limit != (cfg.eval.limit or None) \
            or prepared.seed != cfg.run.seed:
        raise EvalError("evaluate(prepared=...) was prepared for other tasks, limit or seed; "
                        "call tasks.prepare(tasks, cfg) with this call's tasks and cfg")
    specs, tm, limit = prepared.specs, prepared.tm, prepared.limit
    tok = data_tokenizer(model_dir)
    if ctx_len is not None:
        need = prepared.longest_for(model_dir, tok)
        too_long = {k: v for k, v in need.items() if v > ctx_len}
        if too_long:
            raise EvalError(f"requests longer than the model's context of {ctx_len} tokens: {too_long}; "
                            "use a model with a longer context or fewer shots")

    import lm_eval
    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.utils import handle_non_serializable

    device = cfg.run.device if cfg.run.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    lm = HFLM(pretrained=str(model_dir), tokenizer=tok, device=device, batch_size=cfg.eval.batch_size,
              dtype="float32" if device == "cpu" else "auto")
    groups: dict[int | None, list[str]] = defaultdict(list)
    for s in specs:  # offline tasks carry their shots in their YAML: one call for all of them
        groups[None if s.folder == "local" else s.num_fewshot].append(s.name)
    keys = ("results", "versions", "n-shot", "configs", "n-samples", "higher_is_better", "group_subtasks")
    merged: dict[str, Any] = {k: {} for k in keys}
    for shots, names in sorted(groups.items(), key=lambda kv: -1 if kv[0] is None else kv[0]):
        res = lm_eval.simple_evaluate(
            model=lm, tasks=names, num_fewshot=shots, task_manager=tm, limit=limit,
            bootstrap_iters=cfg.eval.bootstrap_iters, log_samples=False, random_seed=cfg.run.seed,
            numpy_random_seed=cfg.run.seed, torch_random_seed=cfg.run.seed, fewshot_random_seed=cfg.run.seed)
        for key in keys:
            merged[key].update(res.get(key) or {})
        merged["config"] = {**(res.get("config") or {}), "model_args": {"pretrained": str(model_dir)}}
        merged["lm_eval_version"] = res.get("lm_eval_version")
    merged["specs"] = [asdict(s) for s in specs]
    merged = json.loads(json.dumps(merged, default=handle_non_serializable))
    if out is not None:
        atomic_write_json(Path(out), merged)
    return cast(TaskResults, merged)


def summary(results: TaskResults) -> list[TaskSummaryRow]:
    """One row per evaluated task: the report metric with its standard error (from ``evaluate``'s output)."""
    rows: list[TaskSummaryRow] = []
    for spec in results["specs"]:
        s = TaskSpec(**spec)
        row = results["results"].get(s.name, {})
        metric, _, filt = s.metric.partition(",")
        filt = filt or "none"
        value = row.get(f"{metric},{filt}")
        se = row.get(f"{metric}_stderr,{filt}")
        rows.append({"task": s.name, "shots": s.num_fewshot, "metric": s.metric, "value": value,
                     "stderr": se if isinstance(se, (int, float)) else None, "what": s.what,
                     "n": (results.get("n-samples", {}).get(s.name) or {}).get("effective")})
    return rows


def plan(cfg: Config, models: dict[str, str]) -> list[dict[str, Any]]:
    """The harness runs of the paper preset, one per model and shot group, as ``lm_eval`` command lines."""
    rows = []
    for label, model in models.items():
        groups: dict[int, list[str]] = defaultdict(list)
        for s in default_tasks(cfg):
            groups[s.num_fewshot].append(s.name)
        for shots, names in sorted(groups.items()):
            rows.append({
                "model": label, "shots": shots, "tasks": len(names),
                "command": (f"lm_eval --model hf --model_args pretrained={model},dtype=bfloat16 "
                            f"--tasks {','.join(names)} --num_fewshot {shots} --batch_size {cfg.eval.batch_size} "
                            f"--seed {cfg.run.seed} --output_path results/{model.split('/')[-1]}"),
            })
    return rows
