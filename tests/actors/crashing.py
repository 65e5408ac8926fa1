"""`CrashingWorker`: a `DspWorker` whose process aborts (SIGABRT, as LAME did on NaN) when a
job's input key contains `POISON`. Pools built with it (`ActorPool.start(settings,
worker_cls=CrashingWorker)`) let tests crash actors the way a hostile input did, without a
test hook in the engine. Pickled by value, so Ray workers need not import `tests`."""

from __future__ import annotations

import os
import sys
from typing import Any

import ray

from actors.worker import DspWorker

POISON = "poison"


class CrashingWorker(DspWorker):
    def run(self, message_json: dict[str, Any], trace: str | None = None) -> dict[str, Any]:
        if POISON in message_json["input_key"]:
            os.abort()
        return super().run(message_json, trace)


ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
