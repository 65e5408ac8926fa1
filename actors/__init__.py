"""Stateful Ray actors that run effect chains on audio files.

`binding` and `runner` are plain Python (no Ray), so the CLI's local `process` command and the
service produce bit-identical output; `worker` wraps them in a Ray actor that owns the warm
kernels and an impulse-response cache; `pool` is what the bridge talks to.
"""
