"""Chapter 02 · The transformers tokenizer class of the Arcade100k export, with the data-as-text chat policy.

``apply_chat_template`` of any transformers tokenizer renders the conversation to one string and
tokenizes that string, so a message containing ``<|im_end|>`` or ``<|endoftext|>`` yields the control
token — nothing in a string says which ``<|endoftext|>`` the template wrote. TRL tokenizes SFT, DPO
and self-knowledge data exactly that way. :class:`Arcade100kTokenizerFast` is the export's fast
tokenizer with one change: for the chat formats of :mod:`stablelm2.chat_formats` it tokenizes with
:func:`stablelm2.chat_formats.encode` (text in messages is text, only the format's markers are
control tokens; the assistant mask included), and for any other template or option it asks
transformers to do the same (``sanitize_control_tokens``) wherever transformers can. Everything
else — ids, decoding, saving — is :class:`transformers.PreTrainedTokenizerFast`'s.

Why not ``sanitize_control_tokens`` everywhere: transformers 5.24 refuses it together with the
assistant mask TRL's SFT needs, and it encodes each sanitised span on its own, so a space before
special-token text becomes its own token (``" <|endoftext|>"`` → ``' '``, ``'<'``, ``'|'``, …) where
pre-training (and :func:`stablelm2.chat_formats.encode`) merges it (``' <|'``, …). It is the fallback only.

>>> from stablelm2 import tokenizer                                     # doctest: +SKIP
>>> tok = tokenizer.load_transformers(tokenizer.save_transformers(d))  # doctest: +SKIP
>>> tok.apply_chat_template([{"role": "user", "content": "<|endoftext|>"}])["input_ids"].count(100257)  # doctest: +SKIP
1
"""

from __future__ import annotations

from typing import Any

from transformers import BatchEncoding, PreTrainedTokenizerFast

from . import chat_formats


class Arcade100kTokenizerFast(PreTrainedTokenizerFast):
    """Arcade100k's fast tokenizer whose chat templating keeps special-token text in messages as text."""

    def apply_chat_template(self, conversation: Any, tools: Any = None, documents: Any = None,
                            chat_template: str | None = None, add_generation_prompt: bool = False,
                            continue_final_message: bool | str = False, tokenize: bool = True,
                            sanitize_control_tokens: bool = False, padding: Any = False, truncation: bool = False,
                            max_length: int | None = None, return_tensors: Any = None, return_dict: bool = True,
                            return_assistant_tokens_mask: bool = False, tokenizer_kwargs: dict | None = None,
                            **kwargs: Any) -> Any:
        """transformers' ``apply_chat_template``, but special-token text inside messages stays text.

        For a template of :mod:`stablelm2.chat_formats` with ``tokenize`` and none of tools, documents,
        ``continue_final_message``, padding, truncation, ``max_length``, ``tokenizer_kwargs`` or extra
        keywords: the ids (and with ``return_assistant_tokens_mask``, ``assistant_masks``) of
        :func:`stablelm2.chat_formats.encode`, one conversation or a batch, as a ``BatchEncoding``
        (``return_dict``) or bare ids. Otherwise transformers' own, with ``sanitize_control_tokens`` on
        when tokenizing without the assistant mask (the same policy where transformers offers it).

        Raises:
            ValueError: ``conversation`` is empty (on our path; transformers' path raises its own errors).
        """
        known = chat_formats.identify(self.get_chat_template(chat_template, tools))
        ours = (known is not None and tokenize and not tools and not documents and not continue_final_message
                and not padding and not truncation and max_length is None and not tokenizer_kwargs and not kwargs)
        if not ours:
            if tokenize and not return_assistant_tokens_mask:
                sanitize_control_tokens = True  # the same policy, where transformers offers it
            return super().apply_chat_template(
                conversation, tools=tools, documents=documents, chat_template=chat_template,
                add_generation_prompt=add_generation_prompt, continue_final_message=continue_final_message,
                tokenize=tokenize, sanitize_control_tokens=sanitize_control_tokens, padding=padding,
                truncation=truncation, max_length=max_length, return_tensors=return_tensors, return_dict=return_dict,
                return_assistant_tokens_mask=return_assistant_tokens_mask, tokenizer_kwargs=tokenizer_kwargs, **kwargs)
        fmt, with_negative = known  # type: ignore[misc]  # not None when `ours`
        if isinstance(conversation, (list, tuple)) and not conversation:
            raise ValueError("Cannot apply chat template to an empty conversation. Provide at least one message.")
        batched = isinstance(conversation[0], (list, tuple))
        convs = list(conversation) if batched else [conversation]
        ids, masks = [], []
        for conv in convs:
            msgs = [{k: v for k, v in dict(m).items() if v is not None} for m in conv]
            i, m = chat_formats.encode(fmt, msgs, add_generation_prompt=add_generation_prompt,
                                       with_negative=with_negative)
            ids.append(i)
            masks.append(m)
        if not return_dict:
            return ids if batched else ids[0]
        single = not batched and return_tensors is None
        data = {"input_ids": ids[0] if single else ids,
                "attention_mask": [1] * len(ids[0]) if single else [[1] * len(x) for x in ids]}
        if return_assistant_tokens_mask:
            data["assistant_masks"] = masks[0] if single else masks
        return BatchEncoding(data, tensor_type=return_tensors)
