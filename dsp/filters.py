"""RBJ Audio-EQ-Cookbook biquad design and a multichannel biquad cascade (TDF-II)."""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dsp.jit import kernel

KINDS = ("lowpass", "highpass", "bandpass", "notch", "peak", "lowshelf", "highshelf")


@dataclass(frozen=True)
class EqBand:
    """One RBJ biquad band.

    ``q`` is the cookbook Q for every kind, including shelves (alpha = sin(w0) / (2 Q)); for shelves
    q = 1/sqrt(2) is the same as shelf slope S = 1. ``gain_db`` only matters for peak and shelves.
    """

    kind: str
    frequency: float
    q: float = 0.7071
    gain_db: float = 0.0


def _band_coefficients(band: EqBand, sample_rate: int) -> tuple[float, ...]:
    """(b0, b1, b2, a0, a1, a2) from the cookbook formulas (bandpass: constant 0 dB peak gain)."""
    if band.kind not in KINDS:
        raise ValueError(f"unknown EQ band kind {band.kind!r}; expected one of {', '.join(KINDS)}")
    nyquist = sample_rate / 2.0
    if not (0.0 < band.frequency < nyquist):
        raise ValueError(
            f"EQ band frequency {band.frequency} Hz must be > 0 and < {nyquist} Hz "
            f"(half the sample rate {sample_rate})"
        )
    if not band.q > 0.0:
        raise ValueError(f"EQ band q must be > 0, got {band.q}")
    if not math.isfinite(band.gain_db):
        raise ValueError(f"EQ band gain_db must be finite, got {band.gain_db}")
    w0 = 2.0 * math.pi * band.frequency / sample_rate
    cw, sw = math.cos(w0), math.sin(w0)
    alpha = sw / (2.0 * band.q)
    a = 10.0 ** (band.gain_db / 40.0)
    kind = band.kind
    if kind == "lowpass":
        return ((1 - cw) / 2, 1 - cw, (1 - cw) / 2, 1 + alpha, -2 * cw, 1 - alpha)
    if kind == "highpass":
        return ((1 + cw) / 2, -(1 + cw), (1 + cw) / 2, 1 + alpha, -2 * cw, 1 - alpha)
    if kind == "bandpass":
        return (alpha, 0.0, -alpha, 1 + alpha, -2 * cw, 1 - alpha)
    if kind == "notch":
        return (1.0, -2 * cw, 1.0, 1 + alpha, -2 * cw, 1 - alpha)
    if kind == "peak":
        return (1 + alpha * a, -2 * cw, 1 - alpha * a, 1 + alpha / a, -2 * cw, 1 - alpha / a)
    sa = 2.0 * math.sqrt(a) * alpha
    if kind == "lowshelf":
        return (
            a * ((a + 1) - (a - 1) * cw + sa),
            2 * a * ((a - 1) - (a + 1) * cw),
            a * ((a + 1) - (a - 1) * cw - sa),
            (a + 1) + (a - 1) * cw + sa,
            -2 * ((a - 1) + (a + 1) * cw),
            (a + 1) + (a - 1) * cw - sa,
        )
    # highshelf
    return (
        a * ((a + 1) + (a - 1) * cw + sa),
        -2 * a * ((a - 1) + (a + 1) * cw),
        a * ((a + 1) + (a - 1) * cw - sa),
        (a + 1) - (a - 1) * cw + sa,
        2 * ((a - 1) - (a + 1) * cw),
        (a + 1) - (a - 1) * cw - sa,
    )


def rbj_sos(bands: Sequence[EqBand], sample_rate: int) -> NDArray[np.float64]:
    """Second-order sections (n_sections, 6), scipy layout [b0 b1 b2 1 a1 a2], a0 normalised."""
    sos = np.zeros((len(bands), 6), dtype=np.float64)
    for i, band in enumerate(bands):
        b0, b1, b2, a0, a1, a2 = _band_coefficients(band, sample_rate)
        sos[i] = (b0 / a0, b1 / a0, b2 / a0, 1.0, a1 / a0, a2 / a0)
    return sos


@kernel
def _step(k: NDArray[np.float64], z: NDArray[np.float64], lane: int, s: int, u: float) -> float:
    """One sample through section ``s`` of ``lane`` (same operation order as the main loop)."""
    y: float = k[s, 0] * u + z[lane, s, 0]
    z[lane, s, 0] = (k[s, 1] * u + z[lane, s, 1]) - k[s, 3] * y
    z[lane, s, 1] = k[s, 2] * u - k[s, 4] * y
    return y


@kernel
def _pair4(
    src: NDArray[np.floating],
    dst: NDArray[np.floating],
    c0: int,
    c1: int,
    k: NDArray[np.float64],
    z: NDArray[np.float64],
) -> None:
    """Four TDF-II sections on channel rows c0 and c1 (the two lanes) of src into dst.

    ``k`` holds 4 rows of (b0, b1, b2, a1, a2); ``z`` (2 lanes, 4, 2) is read and written back.
    c1 == c0 is allowed (a lone channel; lane 1 then computes the same values again).
    ``src`` may be ``dst`` (the middle groups of a cascade run in place): every path reads a
    sample of both lanes before it writes either, so no lane reads what the other overwrote.
    Wavefront order: in step i section 0 takes sample i, section 1 sample i-1, section 2 sample
    i-2 and section 3 sample i-3, so the eight recursions (2 lanes x 4 sections) of one step are
    independent and overlap in the pipeline; each section still sees its samples in order, so
    the result is bit-identical to running the sections one after another. A short prologue
    and epilogue fill and drain the wavefront.
    """
    m = src.shape[1]
    ch = (c0, c1)
    if m < 3:
        for i in range(m):
            v0 = float(src[c0, i])
            v1 = float(src[c1, i])
            for s in range(4):
                v0 = _step(k, z, 0, s, v0)
                v1 = _step(k, z, 1, s, v1)
            dst[c0, i] = v0
            dst[c1, i] = v1
        return
    carry = np.empty((2, 3), dtype=np.float64)
    for lane in range(2):
        a0 = _step(k, z, lane, 0, np.float64(src[ch[lane], 0]))
        a1 = _step(k, z, lane, 0, np.float64(src[ch[lane], 1]))
        b0 = _step(k, z, lane, 1, a0)
        a2 = _step(k, z, lane, 0, np.float64(src[ch[lane], 2]))
        b1 = _step(k, z, lane, 1, a1)
        d0 = _step(k, z, lane, 2, b0)
        carry[lane, 0], carry[lane, 1], carry[lane, 2] = a2, b1, d0
    p0, p1, p2, p3, p4 = k[0, 0], k[0, 1], k[0, 2], k[0, 3], k[0, 4]
    q0, q1, q2, q3, q4 = k[1, 0], k[1, 1], k[1, 2], k[1, 3], k[1, 4]
    r0, r1, r2, r3, r4 = k[2, 0], k[2, 1], k[2, 2], k[2, 3], k[2, 4]
    s0, s1, s2, s3, s4 = k[3, 0], k[3, 1], k[3, 2], k[3, 3], k[3, 4]
    ap, bp, aq, bq = z[0, 0, 0], z[0, 0, 1], z[0, 1, 0], z[0, 1, 1]
    ar, br, as_, bs = z[0, 2, 0], z[0, 2, 1], z[0, 3, 0], z[0, 3, 1]
    cp, dp, cq, dq = z[1, 0, 0], z[1, 0, 1], z[1, 1, 0], z[1, 1, 1]
    cr, dr, cs, ds = z[1, 2, 0], z[1, 2, 1], z[1, 3, 0], z[1, 3, 1]
    e0, e1, e2 = carry[0, 0], carry[0, 1], carry[0, 2]
    f0, f1, f2 = carry[1, 0], carry[1, 1], carry[1, 2]
    for i in range(3, m):
        # section 3 on sample i-3
        u = s0 * e2 + as_
        v = s0 * f2 + cs
        as_ = (s1 * e2 + bs) - s3 * u
        cs = (s1 * f2 + ds) - s3 * v
        bs = s2 * e2 - s4 * u
        ds = s2 * f2 - s4 * v
        dst[c0, i - 3] = u
        dst[c1, i - 3] = v
        # section 2 on sample i-2
        u = r0 * e1 + ar
        v = r0 * f1 + cr
        ar = (r1 * e1 + br) - r3 * u
        cr = (r1 * f1 + dr) - r3 * v
        br = r2 * e1 - r4 * u
        dr = r2 * f1 - r4 * v
        e2, f2 = u, v
        # section 1 on sample i-1
        u = q0 * e0 + aq
        v = q0 * f0 + cq
        aq = (q1 * e0 + bq) - q3 * u
        cq = (q1 * f0 + dq) - q3 * v
        bq = q2 * e0 - q4 * u
        dq = q2 * f0 - q4 * v
        e1, f1 = u, v
        # section 0 on sample i
        x0 = np.float64(src[c0, i])
        x1 = np.float64(src[c1, i])
        u = p0 * x0 + ap
        v = p0 * x1 + cp
        ap = (p1 * x0 + bp) - p3 * u
        cp = (p1 * x1 + dp) - p3 * v
        bp = p2 * x0 - p4 * u
        dp = p2 * x1 - p4 * v
        e0, f0 = u, v
    z[0, 0, 0], z[0, 0, 1], z[0, 1, 0], z[0, 1, 1] = ap, bp, aq, bq
    z[0, 2, 0], z[0, 2, 1], z[0, 3, 0], z[0, 3, 1] = ar, br, as_, bs
    z[1, 0, 0], z[1, 0, 1], z[1, 1, 0], z[1, 1, 1] = cp, dp, cq, dq
    z[1, 2, 0], z[1, 2, 1], z[1, 3, 0], z[1, 3, 1] = cr, dr, cs, ds
    carry[0, 0], carry[0, 1], carry[0, 2] = e0, e1, e2
    carry[1, 0], carry[1, 1], carry[1, 2] = f0, f1, f2
    for lane in range(2):
        h0, h1, h2 = carry[lane, 0], carry[lane, 1], carry[lane, 2]
        dst[ch[lane], m - 3] = _step(k, z, lane, 3, h2)
        h2 = _step(k, z, lane, 2, h1)
        h1 = _step(k, z, lane, 1, h0)
        dst[ch[lane], m - 2] = _step(k, z, lane, 3, h2)
        h2 = _step(k, z, lane, 2, h1)
        dst[ch[lane], m - 1] = _step(k, z, lane, 3, h2)


@kernel
def biquad_cascade_into(
    x: NDArray[np.floating],
    sos: NDArray[np.float64],
    state: NDArray[np.float64],
    y: NDArray[np.floating],
) -> None:
    """``biquad_cascade`` writing into ``y`` (same shape as ``x``; may be ``x`` itself, and
    either may be a strided view such as a block of frames of a longer array)."""
    channels, n = x.shape
    sections = sos.shape[0]
    if sections == 0:
        y[:] = x
        return
    groups = (sections + 3) // 4
    k = np.zeros((groups, 4, 5), dtype=np.float64)
    for s in range(groups * 4):
        g, j = s // 4, s % 4
        if s < sections:
            k[g, j, 0] = sos[s, 0]
            k[g, j, 1] = sos[s, 1]
            k[g, j, 2] = sos[s, 2]
            k[g, j, 3] = sos[s, 4]
            k[g, j, 4] = sos[s, 5]
        else:
            k[g, j, 0] = 1.0
    z = np.zeros((groups, 2, 4, 2), dtype=np.float64)
    work = np.empty((channels, n if groups > 1 else 0), dtype=np.float64)
    for c0 in range(0, channels, 2):
        c1 = c0 + 1 if c0 + 1 < channels else c0
        z[:] = 0.0
        for s in range(sections):
            g, j = s // 4, s % 4
            z[g, 0, j, 0] = state[c0, s, 0]
            z[g, 0, j, 1] = state[c0, s, 1]
            z[g, 1, j, 0] = state[c1, s, 0]
            z[g, 1, j, 1] = state[c1, s, 1]
        if groups == 1:
            _pair4(x, y, c0, c1, k[0], z[0])
        else:
            _pair4(x, work, c0, c1, k[0], z[0])
            for g in range(1, groups - 1):
                _pair4(work, work, c0, c1, k[g], z[g])
            _pair4(work, y, c0, c1, k[groups - 1], z[groups - 1])
        for s in range(sections):
            g, j = s // 4, s % 4
            state[c0, s, 0] = z[g, 0, j, 0]
            state[c0, s, 1] = z[g, 0, j, 1]
            if c1 != c0:
                state[c1, s, 0] = z[g, 1, j, 0]
                state[c1, s, 1] = z[g, 1, j, 1]


@kernel
def biquad_cascade(
    x: NDArray[np.floating], sos: NDArray[np.float64], state: NDArray[np.float64]
) -> NDArray[np.floating]:
    """Run ``x`` (channels, n) through every section of ``sos`` in transposed direct form II.

    Per section: y = b0 x + z1;  z1 = (b1 x + z2) - a1 y;  z2 = b2 x - a2 y  (float64). Adding z2
    before subtracting a1 y keeps the loop-carried dependency to one multiply and one subtract.
    ``state`` (channels, n_sections, 2) float64 is updated in place, so consecutive blocks give
    exactly the same samples as one call on the whole signal. Channels are taken in pairs and
    sections in groups of four (padded with exact identity sections b0 = 1, whose output equals
    their input bit for bit); between groups the signal stays float64. The output has the dtype
    of ``x``.
    """
    y = np.empty_like(x)
    biquad_cascade_into(x, sos, state, y)
    return y


class EQ:
    """Cascade of RBJ biquads (see ``EqBand``), one float64 state per channel and section."""

    def __init__(self, bands: Sequence[EqBand]) -> None:
        self.bands = tuple(bands)
        for band in self.bands:
            if band.kind not in KINDS:
                raise ValueError(
                    f"unknown EQ band kind {band.kind!r}; expected one of {', '.join(KINDS)}"
                )
        self._sos = np.zeros((0, 6), dtype=np.float64)
        self._state = np.zeros((1, 0, 2), dtype=np.float64)

    def configure(self, sample_rate: int, channels: int) -> tuple[int, int]:
        self._sos = rbj_sos(self.bands, sample_rate)
        self._state = np.zeros((channels, len(self.bands), 2), dtype=np.float64)
        return sample_rate, channels

    def process(self, block: NDArray[np.float32]) -> NDArray[np.float32]:
        out: NDArray[np.float32] = biquad_cascade(block, self._sos, self._state)
        return out

    def process_into(self, block: NDArray[np.float32], out: NDArray[np.float32]) -> None:
        biquad_cascade_into(block, self._sos, self._state, out)

    def flush(self) -> NDArray[np.float32]:
        return np.zeros((self._state.shape[0], 0), dtype=np.float32)
