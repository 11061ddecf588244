"""The paper's per-source treatments, implemented: CulturaX's OSCAR filter, FanFics' perplexity
selection, and Restruct-v1's task templates.

* **CulturaX** (§2.2): the mC4 part is dropped for its HTML boilerplate; only documents whose
  ``source`` field names an OSCAR release are kept (:func:`keep_oscar`).
* **FanFics** (§2.2): 50k fanfiction.net documents chosen by *lowest perplexity* under a KenLM
  model. KenLM does not install here, so :class:`NGramLM` is an equivalent word-level n-gram model
  (interpolated Kneser–Ney, the smoothing KenLM uses) and :func:`lowest_perplexity` keeps the
  ``keep`` documents it finds most fluent.
* **Restruct-v1** (§2.2, Yuan & Liu 2022): raw task records (QA, summarisation, sentiment, NLI,
  translation, …) rendered into fixed-form text by templates (:func:`restructure`); the template is
  picked from a hash of the record, so the same record always gives the same text.

>>> from stablelm2.data import treatments as t
>>> t.keep_oscar({"text": "…", "source": "OSCAR-2301"}), t.keep_oscar({"text": "…", "source": "mC4"})
(True, False)
>>> print(t.restructure({"task": "sentiment", "text": "Great!", "label": "positive"}).splitlines()[-1])
Sentiment: positive
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any


class TreatmentError(ValueError):
    """A record lacks the field a treatment needs, or names an unknown task."""


# ------------------------------------------------------------------------------ CulturaX


def keep_oscar(record: dict[str, Any], field: str = "source") -> bool:
    """True for CulturaX documents from OSCAR (``OSCAR-2019`` … ``OSCAR-2301``), False for mC4 (§2.2).

    ``field`` is the record's provenance column; any value starting with ``oscar`` (any case) is kept.

    Raises:
        TreatmentError: the record has no ``field``.
    """
    if field not in record:
        raise TreatmentError(f"CulturaX record has no {field!r} field (fields: {', '.join(record)}); "
                             "the OSCAR filter needs CulturaX's 'source' column")
    return str(record[field]).lower().startswith("oscar")


# ------------------------------------------------------------------------------ FanFics

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-cased word tokens of ``text``: runs of word characters, and each punctuation mark on its own."""
    return _WORD.findall(text.lower())


UNK = "<unk>"
"""The one token every unseen word maps to (``words()`` never yields it: ``<``, ``unk``, ``>`` split)."""


class NGramLM:
    """Word n-gram language model with interpolated Kneser–Ney smoothing (discount 0.75).

    The stand-in for the KenLM model of the FanFics selection (§2.2): ``order`` is the n of the n-grams
    (``order − 1`` words of context), ``discount`` the absolute discount ``d``. Raises
    :class:`TreatmentError` for ``order < 1`` or a ``discount`` outside ``(0, 1]``.

    A proper distribution over a closed vocabulary: every word of the fitted texts, ``</s>``, and
    :data:`UNK` (any word not seen in fitting). For every context ``ctx`` (tuple of ``order - 1``
    words or fewer), ``sum(lm.prob(w, ctx) for w in lm.vocabulary) == 1`` up to floating-point error:

    * unigram (``order ≥ 2``, KN continuation counts with an add-one floor):
      ``P(w) = (N1+(•w) + 1) / (N_bigram_types + |V|)``; at ``order = 1``: ``(c(w) + 1) / (N + |V|)``;
    * higher orders: ``P(w | ctx) = max(c(ctx w) − d, 0) / c(ctx) + d · N1+(ctx •) / c(ctx) · P(w | ctx[1:])``,
      which sums to one because every seen count is ≥ 1 ≥ ``d``.

    >>> lm = NGramLM(order=3).fit(["the cat sat on the mat", "the dog sat on the log"])
    >>> lm.perplexity("the cat sat on the log") < lm.perplexity("log the on sat cat the")
    True
    >>> abs(sum(lm.prob(w, ("on", "the")) for w in lm.vocabulary) - 1) < 1e-12
    True
    """

    def __init__(self, order: int = 3, discount: float = 0.75):
        if order < 1:
            raise TreatmentError(f"order = {order} must be at least 1")
        if not 0 < discount <= 1:
            raise TreatmentError(f"discount = {discount} must be in (0, 1] for the model to stay normalised")
        self.order, self.d = order, discount
        self.counts: list[Counter] = [Counter() for _ in range(order + 1)]
        self.context: list[Counter] = [Counter() for _ in range(order + 1)]
        self.followers: list[defaultdict] = [defaultdict(set) for _ in range(order + 1)]
        self.continuation: Counter = Counter()
        self.vocab: set[str] = set()
        """Every token seen in fitting (``<s>`` included, :data:`UNK` not)."""

    @property
    def vocabulary(self) -> list[str]:
        """The words the model predicts: seen words and ``</s>`` (not ``<s>``), plus :data:`UNK`; sorted."""
        return sorted((self.vocab - {"<s>"}) | {UNK})

    def fit(self, texts: Iterable[str]) -> NGramLM:
        """Count the n-grams of ``texts`` (each padded with ``<s>`` and ended by ``</s>``); returns ``self``.

        Calls add to the counts already there.
        """
        n = self.order
        for text in texts:
            toks = ["<s>"] * (n - 1) + words(text) + ["</s>"]
            self.vocab.update(toks)
            for k in range(1, n + 1):
                for i in range(len(toks) - k + 1):
                    gram = tuple(toks[i:i + k])
                    if gram[-1] == "<s>":
                        continue
                    if self.counts[k][gram] == 0 and k == 2:
                        self.continuation[gram[-1]] += 1
                    self.counts[k][gram] += 1
                    self.context[k][gram[:-1]] += 1
                    self.followers[k][gram[:-1]].add(gram[-1])
        self.n_bigram_types = len(self.counts[2]) if n >= 2 else 0
        self.n_tokens = sum(self.counts[1].values())
        self.n_vocab = len(self.vocabulary)
        return self

    def prob(self, word: str, ctx: tuple[str, ...] = ()) -> float:
        """P(word | ctx); a word outside :attr:`vocabulary` is scored as :data:`UNK`.

        Only the last ``order − 1`` words of ``ctx`` are used.

        Raises:
            TreatmentError: the model has not been fitted.
        """
        if not self.vocab:
            raise TreatmentError("the n-gram model is empty; call fit() on a reference corpus first")
        if word not in self.vocab or word == "<s>":
            word = UNK
        return self._prob(word, tuple(ctx)[len(ctx) - self.order + 1:] if self.order > 1 else ())

    def _prob(self, word: str, ctx: tuple[str, ...]) -> float:
        if not ctx:  # continuation unigram (KN), with an add-one floor over the closed vocabulary
            if self.order >= 2:
                return (self.continuation[word] + 1) / (self.n_bigram_types + self.n_vocab)
            return (self.counts[1][(word,)] + 1) / (self.n_tokens + self.n_vocab)
        k = len(ctx) + 1
        lower = self._prob(word, ctx[1:])
        c_ctx = self.context[k][ctx]
        if c_ctx == 0:
            return lower
        c = self.counts[k][ctx + (word,)]
        lam = self.d * len(self.followers[k][ctx]) / c_ctx
        return max(c - self.d, 0.0) / c_ctx + lam * lower

    def perplexity(self, text: str) -> float:
        """exp of the mean negative log-probability (nats) per word of ``text`` (``</s>`` included).

        Raises:
            TreatmentError: the model has not been fitted.
        """
        if not self.vocab:
            raise TreatmentError("the n-gram model is empty; call fit() on a reference corpus first")
        n = self.order
        toks = ["<s>"] * (n - 1) + words(text) + ["</s>"]
        nll = [-math.log(self.prob(toks[i], tuple(toks[i - n + 1:i]))) for i in range(n - 1, len(toks))]
        return math.exp(sum(nll) / len(nll))


def lowest_perplexity(docs: list[str], keep: int, lm: NGramLM) -> list[int]:
    """Indices of the ``keep`` documents with the lowest perplexity (ties broken by index), ascending.

    The FanFics selection of §2.2 (50k documents by lowest KenLM perplexity), with ``lm`` as the model.

    Raises:
        TreatmentError: ``keep`` is negative, or ``lm`` is not fitted.
    """
    if keep < 0:
        raise TreatmentError(f"keep = {keep} must not be negative")
    scored = sorted((lm.perplexity(d), i) for i, d in enumerate(docs))
    return sorted(i for _, i in scored[:keep])


# ------------------------------------------------------------------------------ Restruct-v1

TEMPLATES: dict[str, tuple[str, ...]] = {
    "qa": ("Read the passage and answer the question.\n\nPassage: {context}\nQuestion: {question}\nAnswer: {answer}",
           "{context}\n\nQ: {question}\nA: {answer}"),
    "summarization": ("Summarize the following text.\n\n{document}\n\nSummary: {summary}",
                      "Article: {document}\n\nTL;DR: {summary}"),
    "sentiment": ("Classify the sentiment of this review.\n\nReview: {text}\nSentiment: {label}",
                  "Text: {text}\nSentiment: {label}"),
    "topic": ("What is the topic of this sentence? Options: {options}.\n\n{text}\nTopic: {label}",
              "Sentence: {text}\nWhich topic fits best ({options})?\nTopic: {label}"),
    "nli": ("Premise: {premise}\nHypothesis: {hypothesis}\nDoes the premise entail the hypothesis? "
            "Answer entailment, neutral or contradiction.\nAnswer: {label}",
            "{premise}\nQuestion: does it follow that \"{hypothesis}\"?\nAnswer: {label}"),
    "translation": ("Translate from {source_lang} to {target_lang}.\n\n{source_lang}: {source}\n{target_lang}: {target}",
                    "{source}\n\nIn {target_lang}: {target}"),
    "instruction": ("Instruction: {instruction}\n\nResponse: {response}",
                    "### Instruction:\n{instruction}\n\n### Response:\n{response}"),
}
"""Task → templates; each record is rendered with one of them (chosen by a hash of the record)."""


def restructure(record: dict[str, Any]) -> str:
    """Render a raw task record (``{"task": ..., fields...}``) into pre-training text (Restruct-v1, §2.2).

    The template of :data:`TEMPLATES` is picked by a hash of the record (None fields ignored); list
    fields are joined with ``", "``.

    Raises:
        TreatmentError: the record's task has no templates, or it lacks a field its template needs.
    """
    task = record.get("task")
    if task not in TEMPLATES:
        raise TreatmentError(f"record has task {task!r}; Restruct templates exist for: {', '.join(TEMPLATES)}")
    # None fields are absent fields (a JSON-lines loader fills every column of the file): not in the hash
    key = hashlib.sha256(repr(sorted((k, str(v)) for k, v in record.items() if v is not None)).encode()).digest()[0]
    template = TEMPLATES[task][key % len(TEMPLATES[task])]
    fields = {k: (", ".join(v) if isinstance(v, list) else v) for k, v in record.items() if v is not None}
    missing = [f for f in re.findall(r"{(\w+)}", template) if f not in fields]
    if missing:
        raise TreatmentError(f"{task} record lacks field(s) {', '.join(missing)} needed by its template")
    return template.format(**fields)
