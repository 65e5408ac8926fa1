"""Render one segment of a stream as the whole-stream chain would: the pure half of splitting
one long file across many actors.

A segment is a range [start, end) of the chain's input frames. Every effect that may be split
keeps time (its output frame i comes from its input frame i: a reverb's tail only adds frames
at the end), so the segment's output is the same range of the chain's output, plus the tails
after the last segment. To make those frames equal what one run over the whole stream gives,
the segment is rendered from a pre-roll before `start` and a post-roll after `end`, and only
[start, end) of the output is kept. The pre-roll is the sum of what each effect needs, each
bound argued where it is computed (`effect_needs`):

- sample-local effects (gain, channels, fade placed at its absolute position) need none and
  are bit-identical;
- linear effects are exact by superposition: what the frames before the pre-roll add to the
  segment is the previous segment's tail (overlap-add), and a pre-roll at least as long as an
  FIR's response (reverb: pre-delay + IR length) contains all of it; an IIR (eq, delay with
  feedback) is taken back until its response decays below `EPSILON`;
- stateful nonlinear effects (compressor, limiter, the loudness effect's true-peak limiter)
  converge from any start state: their smoothing is a contraction by its one-pole coefficient
  per frame, so the pre-roll is the number of frames that shrinks the largest possible state
  difference below `EPSILON`;
- two-pass effects (normalize, loudness) are split in two phases. First every segment renders
  the effects in front of the two-pass effect and measures what reaches it (`measure_segment`:
  a `dsp.normalize.Level`, sample peak or the BS.1770 100 ms step energies, counted from the
  segment's first step with the K-weighting settled on the pre-roll); the measurements merge
  in order into the whole stream's (the gating blocks over the joined steps are the unsplit
  stream's), and the effect `settle`s on it: a fixed gain, plus for loudness its true-peak
  limiter, bounded as above. Then the segments render the whole chain. A chain with several
  two-pass effects measures them one after the other, the earlier ones settled (`measures`
  phases).

Effects that move or cut time (trim, resample, silence) or whose state has no bound
(gate, denoise: see `_REFUSALS`) are not split: `plan_segments` then returns one segment and
says why.

>>> plan = plan_segments(chain, 48_000, 2, total_frames, segment_frames)   # doctest: +SKIP
>>> for k in range(plan.measures):                                        # doctest: +SKIP
...     levels = [measure_segment(chain, k, read, plan, s, ...) for s in plan.segments]
...     settle(chain, k, merged(levels))
>>> for segment in plan.segments:                                         # doctest: +SKIP
...     render_segment(chain, read, plan, segment, total_frames, sink)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dsp.chain import Chain, Effect
from dsp.channels import Channels
from dsp.convolution import Reverb
from dsp.delay import Delay
from dsp.dynamics import Compressor, Limiter
from dsp.edits import Fade
from dsp.filters import EQ
from dsp.gain import Gain
from dsp.loudness import k_weighting_sos
from dsp.normalize import Level, LoudnessNormalize, Normalize
from dsp.truepeak import TruePeakLimiter

EPSILON = 1e-12
"""Relative size a state difference is shrunk to by a pre-roll: far under the 1e-5 absolute
match the segments promise, so that rounding (float32 output) is what remains."""
LEVEL_RANGE_DB = 400.0
"""Largest difference between two compressor level states (dB): inputs are bounded by
+-1000 (60 dBFS) and digital silence reads as -600 dB, the gain computer's output lies
between."""
TRUE_PEAK_HISTORY = 64
"""Frames of history the true-peak interpolator keeps, with room to spare (taps - 1 = 31)."""
MAX_PREROLL_SHARE = 1.0
"""A segment may not re-render more than its own length of pre-roll (the compressor with
the longest release needs 133 s at 48 kHz): beyond it the segments are made that long, and
a stream shorter than two of them runs in one piece."""


@dataclass(frozen=True, slots=True)
class Needs:
    """Frames an effect must see before (`preroll`) and after (`postroll`) a segment."""

    preroll: int = 0
    postroll: int = 0


@dataclass(frozen=True, slots=True)
class Segment:
    """Input frames [start, end); `step`: the BS.1770 100 ms step that starts at `start`."""

    index: int
    start: int
    end: int
    last: bool
    step: int = 0


@dataclass(frozen=True, slots=True)
class SegmentPlan:
    """How a stream is split; `reason` says why it is not split (or less than asked);
    `measures`: the two-pass effects measured (in order, one phase each) before the render."""

    segments: tuple[Segment, ...]
    preroll: int
    postroll: int
    reason: str = ""
    measures: int = 0


def _decay_frames(radius: float) -> int:
    """Frames for a geometric decay by `radius` per frame to reach `EPSILON`."""
    if radius <= 0.0:
        return 1
    if radius >= 1.0:
        raise ValueError("an unstable recursion never converges")
    return math.ceil(math.log(EPSILON) / math.log(radius)) + 1


def _smoothing_frames(coefficient: float, range_: float) -> int:
    """Frames for a one-pole contraction by `coefficient` to take `range_` below EPSILON."""
    if coefficient <= 0.0:
        return 1
    return math.ceil(math.log(EPSILON / range_) / math.log(coefficient)) + 1


def _pole_radius(a1: float, a2: float) -> float:
    """Largest |root| of z^2 + a1 z + a2 (a biquad's poles)."""
    return float(np.max(np.abs(np.roots([1.0, a1, a2]))))


def effect_needs(effect: Effect, sample_rate: int) -> Needs | str:
    """The pre- and post-roll `effect` (configured at `sample_rate`) needs, or why it cannot
    be split."""
    if isinstance(effect, Gain | Channels | Fade):
        return Needs()
    if isinstance(effect, EQ):
        # A biquad cascade's response decays like r^n with r its largest pole radius; a
        # cascade's is at most the sum of its sections' decay lengths (each section's input
        # has settled when its own decay starts), and a repeated pole's n r^n is covered by
        # EPSILON being far under the promise.
        sos = effect._sos
        return Needs(sum(_decay_frames(_pole_radius(s[4], s[5])) for s in sos))
    if isinstance(effect, Reverb):
        # FIR: output frame t depends on input [t - pre_delay - len(ir) + 1, t] and no other.
        return Needs(effect._pre_delay + effect.partitions.length)
    if isinstance(effect, Delay):
        # d[n] = x[n-D] + feedback d[n-D]: a comb whose response shrinks by `feedback` every
        # D frames; its tail length is decided from the delay line at the end, which the
        # pre-roll makes equal to EPSILON.
        size = effect._line.shape[1]
        periods = _decay_frames(effect.feedback) if effect.feedback > 0.0 else 1
        return Needs(size * periods)
    if isinstance(effect, Compressor):
        # The level smoother is a contraction: two runs with the same input and states y1, y2
        # end a frame at most max(attack, release) |y1 - y2| apart whichever branch each takes.
        worst = max(effect._attack, effect._release)
        return Needs(_smoothing_frames(worst, LEVEL_RANGE_DB))
    if isinstance(effect, Normalize):
        # Settled (`measure_segment`), it is a fixed gain: sample-local.
        return Needs()
    if isinstance(effect, LoudnessNormalize):
        # Settled, a fixed gain and a true-peak limiter with the default timing (a silent
        # input leaves no limiter: less is needed then).
        probe = TruePeakLimiter(0.0, min(effect.ceiling_dbtp, 0.0))
        probe.configure(sample_rate, 1)
        return effect_needs(probe, sample_rate)
    if isinstance(effect, TruePeakLimiter):
        # The oversampled peak at frame j reads the last taps - 1 gained frames; the window
        # minimum spans L + 2 of those peaks and the box average L + 1 minima; the release
        # smoother contracts gain differences (at most 1) by `release` per frame, as the
        # limiter's. Output frame t reads input up to t + L + taps / 2 (the lag).
        taps = effect.phases.shape[1]
        window = (taps - 1) + (effect._mins.shape[0]) + effect._box.shape[0]
        release = _smoothing_frames(effect._release, 1.0)
        return Needs(window + release, effect._lag)
    if isinstance(effect, Limiter):
        # The window minimum and box average depend on the last L + 1 frames only; the release
        # smoother contracts gain differences (at most 1) by `release` per frame. Output frame
        # t reads input up to t + L (the lookahead).
        lookahead = effect._lookahead
        release = _smoothing_frames(effect._release, 1.0)
        return Needs(lookahead + 1 + release, lookahead)
    name = type(effect).__name__.lower()
    return _REFUSALS.get(name, f"{name} is not known to keep its result when split")


_REFUSALS = {
    "trim": "trim moves time",
    "resample": "resample changes the frame rate",
    "silence": "silence cuts time out of the stream",
    "gate": (
        "the gate's open or closed state has no bound: while the level stays between its "
        "close and open thresholds the gate keeps whatever state came before, however long ago"
    ),
    "denoise": (
        "denoise's noise estimate depends on the whole stream before it (its first frames, "
        "steady runs of any age), with no bound on how far back"
    ),
}


def two_pass(chain: Chain) -> list[int]:
    """Indices of the effects of `chain` still to be measured before it renders (normalize,
    loudness), in order."""
    return [
        i
        for i, e in enumerate(chain.effects)
        if isinstance(e, Normalize | LoudnessNormalize) and e.needs_analysis
    ]


def meter_preroll(sample_rate: int) -> int:
    """Frames that settle a loudness and true-peak meter started mid-stream: the K-weighting
    sections' decay (as for `EQ`) plus the true-peak interpolator's history."""
    sos = k_weighting_sos(sample_rate)
    return sum(_decay_frames(_pole_radius(s[4], s[5])) for s in sos) + TRUE_PEAK_HISTORY


def step_boundary(step: int, sample_rate: int) -> int:
    """First frame of BS.1770 100 ms step `step` (floor(k fs / 10), as `dsp.loudness` counts)."""
    return step * sample_rate // 10


def plan_segments(
    chain: Chain, sample_rate: int, total_frames: int, segment_frames: int
) -> SegmentPlan:
    """Split `total_frames` of input into segments of about `segment_frames` (on 100 ms step
    boundaries, so loudness blocks align) when the stream is longer than twice that and every
    effect of the configured `chain` allows it; one segment with a reason otherwise. A chain
    whose pre-roll is longer than a segment runs in fewer, longer segments (as long as the
    pre-roll) when the stream holds more than two, and the reason says so."""
    whole = SegmentPlan((Segment(0, 0, total_frames, True),), 0, 0)
    if segment_frames <= 0 or total_frames <= 2 * segment_frames:
        return whole
    preroll = postroll = 0
    rate = sample_rate
    for effect in chain.effects:
        needs = effect_needs(effect, rate)
        if isinstance(needs, str):
            return SegmentPlan(whole.segments, 0, 0, f"not split: {needs}")
        preroll += needs.preroll
        postroll += needs.postroll
    preroll += meter_preroll(sample_rate)
    reason = ""
    if preroll + postroll > MAX_PREROLL_SHARE * segment_frames:
        # Fewer, longer segments: each at least as long as its pre- and post-roll.
        why = (
            f"the chain needs {preroll / sample_rate:.1f} s of pre-roll, more than a "
            f"{segment_frames / sample_rate:.0f} s segment"
        )
        segment_frames = math.ceil((preroll + postroll) / MAX_PREROLL_SHARE)
        if total_frames <= 2 * segment_frames:
            return SegmentPlan(whole.segments, 0, 0, f"not split: {why}")
        reason = f"fewer, longer segments: {why}"
    measures = len(two_pass(chain))
    count = round(total_frames / segment_frames)
    steps = total_frames * 10 // sample_rate
    first_steps = [steps * i // count for i in range(count)]
    bounds = [step_boundary(k, sample_rate) for k in first_steps] + [total_frames]
    segments = tuple(
        Segment(i, bounds[i], bounds[i + 1], i == count - 1, first_steps[i]) for i in range(count)
    )
    return SegmentPlan(segments, preroll, postroll, reason, measures)


def _lengths(chain: Chain, total_frames: int) -> list[int]:
    """Frames arriving at each effect of the chain when the whole stream runs through it."""
    lengths = [total_frames]
    for effect in chain.effects:
        n = lengths[-1]
        if isinstance(effect, Reverb) and effect.tail:
            n += effect._pre_delay + effect.partitions.length - 1
        lengths.append(n)
    return lengths


class _Enough(Exception):
    """Raised by a middle segment's sink once it holds every frame it keeps."""


def render_segment(
    chain: Chain,
    read: Callable[[int, int], Iterator[NDArray[np.float32]]],
    plan: SegmentPlan,
    segment: Segment,
    sample_rate: int,
    channels: int,
    total_frames: int,
    sink: Callable[[NDArray[np.float32]], None],
    progress: Callable[[float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    before: Callable[[NDArray[np.float32]], None] | None = None,
) -> tuple[int, int]:
    """Send to `sink` the output frames of `segment` (and, for the last one, the tails after
    it) that `chain` gives for the whole stream. `read(a, b)` yields input frames [a, b) in
    blocks. `before` gets the pre-roll's output (to settle meters; its last frames are
    exact). Returns the output (sample_rate, channels), as `Chain.run` does."""
    first = max(segment.start - plan.preroll, 0)
    stop = total_frames if segment.last else min(segment.end + plan.postroll, total_frames)
    chain.configure(sample_rate, channels)
    lengths = _lengths(chain, total_frames)
    for effect, length in zip(chain.effects, lengths, strict=False):
        if isinstance(effect, Fade):
            effect.place(first, length)
    keep_from = segment.start - first
    keep_to = None if segment.last else segment.end - first
    seen = 0

    def keep(block: NDArray[np.float32]) -> None:
        nonlocal seen
        lo, hi = seen, seen + block.shape[1]
        seen = hi
        a = max(keep_from, lo)
        b = hi if keep_to is None else min(keep_to, hi)
        if before is not None and lo < keep_from:
            before(np.ascontiguousarray(block[:, : min(keep_from, hi) - lo]))
        if a < b:
            sink(np.ascontiguousarray(block[:, a - lo : b - lo]))
        if keep_to is not None and seen >= keep_to:
            raise _Enough

    def source() -> Iterator[NDArray[np.float32]]:
        return read(first, stop)

    try:
        return chain.run(source, keep, sample_rate, channels, stop - first, progress, should_stop)
    except _Enough:
        if progress is not None:
            progress(1.0)
    return chain.configure(sample_rate, channels)


def measure_segment(
    chain: Chain,
    read: Callable[[int, int], Iterator[NDArray[np.float32]]],
    plan: SegmentPlan,
    segment: Segment,
    sample_rate: int,
    channels: int,
    total_frames: int,
    progress: Callable[[float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Level:
    """What the first two-pass effect of `chain` still to be measured (`two_pass`) gets from
    `segment`: the effects in front of it rendered over the segment (with the pre-roll, and
    for the last segment their tails), measured as its own analysis pass would measure them.
    Measurements of consecutive segments `merge` into the whole stream's."""
    index = two_pass(chain)[0]
    prefix = Chain(chain.effects[:index])
    rate, width = prefix.configure(sample_rate, channels)
    effect = chain.effects[index]
    assert isinstance(effect, Normalize | LoudnessNormalize)
    level = effect.level(rate, width)

    def warm(block: NDArray[np.float32]) -> None:
        level.warm(block, segment.step)

    render_segment(
        prefix, read, plan, segment, sample_rate, channels, total_frames, level.add, progress,
        should_stop, before=warm,
    )  # fmt: skip
    return level


def settle(chain: Chain, levels: Sequence[Level]) -> None:
    """Settle the first two-pass effects of `chain` still to be measured on `levels`, each
    the merged measurement of every segment (`measure_segment`), in order."""
    for index, level in zip(two_pass(chain), levels, strict=False):
        effect = chain.effects[index]
        assert isinstance(effect, Normalize | LoudnessNormalize)
        effect.settle(level)


def merged(levels: Sequence[Level]) -> Level:
    """The measurements of consecutive segments joined, in order, into the whole stream's."""
    first = copy.deepcopy(levels[0])
    for later in levels[1:]:
        first.merge(later)
    return first
