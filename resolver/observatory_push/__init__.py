"""Push the box's block events to the départemental observatory (see observatory/README.md)."""

from resolver.config.observatory import ObservatoryPushConfig
from resolver.observatory_push.outbox import run_pusher

__all__ = ["ObservatoryPushConfig", "run_pusher"]
