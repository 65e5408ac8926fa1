"""The Effect protocol and the streaming Chain that drives effects block by block."""

from collections.abc import Callable, Iterator, Sequence
from time import perf_counter
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray


class Stopped(Exception):
    """Raised by Chain.run when should_stop() returned True between blocks."""


class Effect(Protocol):
    """A streaming processor: configure once per stream, then process blocks, then flush."""

    def configure(self, sample_rate: int, channels: int) -> tuple[int, int]:
        """Reset state for a new stream; return the (sample_rate, channels) it outputs."""
        ...

    def process(self, block: NDArray[np.float32]) -> NDArray[np.float32]:
        """(channels, n) float32 C-contiguous in -> (out_channels, m) out; m may differ from n."""
        ...

    def flush(self) -> NDArray[np.float32]:
        """End of stream: return what is still held (tails, lookahead); may be (ch, 0)."""
        ...


@runtime_checkable
class Analyzer(Protocol):
    """An effect that must see the whole signal arriving at it before processing (Normalize).

    Chain runs the effects in front of it once as an analysis pass, feeding their output to
    ``analyze``; ``finish_analysis`` then fixes the effect's parameters for the real pass.
    ``begin_analysis`` receives the stream format at the analyser's input.
    """

    needs_analysis: bool

    def begin_analysis(self, sample_rate: int, channels: int) -> None: ...

    def analyze(self, block: NDArray[np.float32]) -> None: ...

    def finish_analysis(self) -> None: ...


@runtime_checkable
class Retimer(Protocol):
    """An effect whose output time is not its input time (Silence, Trim)."""

    def input_time(self, t: float) -> float:
        """The time (s) of this effect's input that its output time `t` came from."""
        ...


@runtime_checkable
class Cutter(Retimer, Protocol):
    """An effect that removes parts of its stream (Silence). ``cuts`` lists them as
    (start_s, end_s) of the effect's own input, in order; configure() empties it."""

    cuts: list[tuple[float, float]]


def uncut_time(cuts: Sequence[tuple[float, float]], t: float) -> float:
    """Output time `t` of a cutter as its input time, given its (sorted) `cuts`.

    >>> uncut_time([(1.0, 3.0), (4.0, 5.0)], 2.5)
    5.5
    """
    for start, end in cuts:
        if start <= t:
            t += end - start
    return t


@runtime_checkable
class Draining(Protocol):
    """An effect whose tail can be long (a delay's echoes, up to a minute): Chain takes it in
    pieces of at most one block through ``drain`` instead of one ``flush``, so memory stays
    bounded by the block size. ``drain`` returns (channels, 0) once the tail is over."""

    def drain(self, max_frames: int) -> NDArray[np.float32]: ...


@runtime_checkable
class InPlace(Protocol):
    """An effect whose output is its input's shape, frame for frame, with nothing held back (no
    latency, tail or analysis pass): EQ, Gain. ``Chain.process_array`` has a chain of these
    write straight into the output array, taking views of the input's blocks, without a copy.

    ``block`` and ``out`` have the same shape and may be strided views of longer arrays (a
    block of frames of a (channels, n) array); ``out`` may be ``block`` itself.
    """

    def process_into(self, block: NDArray[np.float32], out: NDArray[np.float32]) -> None: ...


@runtime_checkable
class Lengthening(Protocol):
    """An effect that knows in advance how many frames it gives for a stream (a reverb's tail),
    so ``Chain.process_array`` allocates its output once at the right length."""

    def output_frames(self, input_frames: int) -> int:
        """Frames out, in all, for a stream of ``input_frames`` (after ``configure``)."""
        ...


DRAIN_FRAMES = 4096
"""Smallest piece a tail is drained in (tiny blocks would cost a Python call per frame of a
minute-long tail); pieces are otherwise as large as the largest block read."""


def _tail(
    effect: Effect, block_frames: int, seconds: list[float] | None = None, index: int = 0
) -> Iterator[NDArray[np.float32]]:
    """What ``effect`` still holds at the end of the stream, in pieces; the time taken is
    added to ``seconds[index]`` when ``seconds`` is given."""
    drain = effect.drain if isinstance(effect, Draining) else None
    while True:
        started = perf_counter()
        piece = drain(block_frames) if drain is not None else effect.flush()
        if seconds is not None:
            seconds[index] += perf_counter() - started
        if drain is None:
            yield piece
            return
        if piece.shape[1] == 0:
            return
        yield piece


class Chain:
    """Effects applied in order to a stream of (channels, n) float32 blocks.

    Memory is bounded by the block size plus what each effect holds (delay lines, IR spectra,
    lookahead), never by the stream length. Effects that need analysis (see ``Analyzer``) cost
    one extra read of the source each: the prefix of the chain in front of the analyser is run,
    its output (including tails from flush) is measured, then the next pass starts over.
    """

    def __init__(self, effects: Sequence[Effect]) -> None:
        self.effects: list[Effect] = list(effects)
        self.seconds: list[float] | None = None
        """Set to a list of zeros, one per effect, to have ``run`` add each effect's time
        (its ``process``, ``flush`` and ``drain`` calls, over every pass) to its entry."""

    def _configure_all(self, sample_rate: int, channels: int) -> list[tuple[int, int]]:
        """Configure every effect; return the format arriving at each one, then the output."""
        formats = [(sample_rate, channels)]
        for effect in self.effects:
            formats.append(effect.configure(*formats[-1]))
        return formats

    def configure(self, sample_rate: int, channels: int) -> tuple[int, int]:
        """Configure every effect for a new stream and return the output (sample_rate, channels)."""
        return self._configure_all(sample_rate, channels)[-1]

    def cuts(self) -> list[tuple[float, float]]:
        """What the cutters of the last run removed, as (start_s, end_s) of the chain's input:
        each cut is taken back through the effects in front of it that move time."""
        found: list[tuple[float, float]] = []
        for index, effect in enumerate(self.effects):
            if not isinstance(effect, Cutter):
                continue
            earlier = [e for e in self.effects[:index] if isinstance(e, Retimer)]
            for start, end in effect.cuts:
                for before in reversed(earlier):
                    start, end = before.input_time(start), before.input_time(end)
                found.append((start, end))
        return sorted(found)

    def _analysers(self) -> list[int]:
        return [
            i
            for i, e in enumerate(self.effects)
            if isinstance(e, Analyzer) and getattr(e, "needs_analysis", False)
        ]

    def run(
        self,
        source: Callable[[], Iterator[NDArray[np.float32]]],
        sink: Callable[[NDArray[np.float32]], None],
        sample_rate: int,
        channels: int,
        total_frames: int,
        progress: Callable[[float], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> tuple[int, int]:
        """Stream every block from source() through the effects into sink, then flush.

        Returns the output (sample_rate, channels). ``progress`` gets the fraction of input frames
        read over all passes (analysis passes + the final one), at least once per block and 1.0
        at the end. ``should_stop`` is polled between blocks; if it returns True, Stopped is raised.
        """
        analysers = self._analysers()
        passes = len(analysers) + 1
        block_frames = 0
        total = max(int(total_frames), 1) * passes
        done = 0

        def report() -> None:
            if progress is not None:
                progress(min(done / total, 1.0))

        def check() -> None:
            if should_stop is not None and should_stop():
                raise Stopped("processing stopped on request")

        for index in analysers:
            formats = self._configure_all(sample_rate, channels)
            analyser = self.effects[index]
            assert isinstance(analyser, Analyzer)
            analyser.begin_analysis(*formats[index])
            prefix = self.effects[:index]
            for block in source():
                check()
                block_frames = max(block_frames, block.shape[1])
                out = self._push_timed(prefix, 0, block)
                if out is not None:
                    analyser.analyze(out)
                done += block.shape[1]
                report()
            for k, effect in enumerate(prefix):
                for piece in _tail(effect, max(block_frames, DRAIN_FRAMES), self.seconds, k):
                    out = self._push_timed(prefix, k + 1, piece)
                    if out is not None:
                        analyser.analyze(out)
            analyser.finish_analysis()
            done = max(done, (analysers.index(index) + 1) * max(int(total_frames), 1))

        formats = self._configure_all(sample_rate, channels)
        for block in source():
            check()
            block_frames = max(block_frames, block.shape[1])
            out = self._push_timed(self.effects, 0, block)
            if out is not None:
                sink(out)
            done += block.shape[1]
            report()
        for k, effect in enumerate(self.effects):
            for piece in _tail(effect, max(block_frames, DRAIN_FRAMES), self.seconds, k):
                check()
                out = self._push_timed(self.effects, k + 1, piece)
                if out is not None:
                    sink(out)
        done = total
        report()
        return formats[-1]

    def _push_timed(
        self, effects: Sequence[Effect], start: int, block: NDArray[np.float32]
    ) -> NDArray[np.float32] | None:
        """``_push``, adding each effect's time to ``seconds`` when it is set (``effects`` is
        ``self.effects`` or a prefix of it, so indices match)."""
        seconds = self.seconds
        if seconds is None:
            return self._push(effects, start, block)
        block = np.ascontiguousarray(block, dtype=np.float32)
        if block.shape[1] == 0:
            return None
        for index in range(start, len(effects)):
            started = perf_counter()
            block = np.ascontiguousarray(effects[index].process(block), dtype=np.float32)
            seconds[index] += perf_counter() - started
            if block.shape[1] == 0:
                return None
        return block

    @staticmethod
    def _push(
        effects: Sequence[Effect], start: int, block: NDArray[np.float32]
    ) -> NDArray[np.float32] | None:
        """Run ``block`` through effects[start:]; None when a stage produced no frames."""
        block = np.ascontiguousarray(block, dtype=np.float32)
        if block.shape[1] == 0:
            return None
        for effect in effects[start:]:
            block = np.ascontiguousarray(effect.process(block), dtype=np.float32)
            if block.shape[1] == 0:
                return None
        return block

    def process_array(
        self, x: NDArray[np.float32], sample_rate: int, block_frames: int = 65536
    ) -> tuple[NDArray[np.float32], int]:
        """Whole (channels, n) array in, whole array and output sample rate out.

        A chain of ``InPlace`` effects writes each block straight into the output; any other
        chain streams through ``run`` into one output array, allocated at the length the
        effects announce (see ``Lengthening``; others are taken to keep the duration), grown
        when more frames come (a delay's echoes) and cut when fewer do.
        """
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"expected a (channels, frames) array, got shape {x.shape}")
        if block_frames < 1:
            raise ValueError(f"block_frames must be >= 1, got {block_frames}")
        n = x.shape[1]
        if self.effects and all(isinstance(e, InPlace) for e in self.effects):
            formats = self._configure_all(sample_rate, x.shape[0])
            if all(f == formats[0] for f in formats):
                return self._process_in_place(x, block_frames), sample_rate

        formats = self._configure_all(sample_rate, x.shape[0])
        expected = n
        for effect, (rate_in, _), (rate_out, _) in zip(
            self.effects, formats[:-1], formats[1:], strict=True
        ):
            if isinstance(effect, Lengthening):
                expected = effect.output_frames(expected)
            else:
                expected = round(expected * rate_out / rate_in)
        out_sr, out_ch = formats[-1]

        def source() -> Iterator[NDArray[np.float32]]:
            for start in range(0, n, block_frames):
                yield x[:, start : start + block_frames]

        out = _Output(out_ch, expected)
        self.run(source, out.write, sample_rate, x.shape[0], n)
        return out.array(), out_sr

    def _process_in_place(self, x: NDArray[np.float32], block_frames: int) -> NDArray[np.float32]:
        """Every effect (all ``InPlace``, configured) over views of ``x``'s blocks, into one
        output array: the first effect reads ``x``, the others rewrite the output's block."""
        y = np.empty_like(x)
        for start in range(0, x.shape[1], block_frames):
            block = x[:, start : start + block_frames]
            out = y[:, start : start + block_frames]
            for effect in self.effects:
                assert isinstance(effect, InPlace)
                effect.process_into(block, out)
                block = out
        return y


class _Output:
    """The blocks of a stream written one after another into one (channels, n) array. Its
    capacity is first the expected length and grows by half when the stream is longer (tails);
    ``array`` cuts it to what was written."""

    def __init__(self, channels: int, expected_frames: int) -> None:
        self._buffer = np.empty((channels, max(expected_frames, 1)), dtype=np.float32)
        self._frames = 0

    def write(self, block: NDArray[np.float32]) -> None:
        m = block.shape[1]
        if self._frames + m > self._buffer.shape[1]:
            grown = max(self._frames + m, self._buffer.shape[1] * 3 // 2)
            buffer = np.empty((self._buffer.shape[0], grown), dtype=np.float32)
            buffer[:, : self._frames] = self._buffer[:, : self._frames]
            self._buffer = buffer
        self._buffer[:, self._frames : self._frames + m] = block
        self._frames += m

    def array(self) -> NDArray[np.float32]:
        if self._frames == self._buffer.shape[1]:
            return self._buffer
        return np.ascontiguousarray(self._buffer[:, : self._frames])
