"""The hook protocol of the training loop: ``HookBase`` (the six calls) and ``RecordHook`` (a
hook that also receives every record the loop emits).

It lives in the lowest layer, not in the engine, because layers above the engine's loop define
hooks too and imports only go downwards: a method's own hooks (``methods/``, e.g. SSPCM's
snapshot hook) and the checkpoint hooks (``checkpoint/``) subclass these; the engine's loop
(``engine/train_loop.py``) calls them.
"""

__all__ = ["HookBase", "RecordHook"]


class HookBase:
    """A behaviour attached to the engine's ``Trainer``; override any of the six calls.

    ``self.trainer`` is set by ``Trainer.register_hooks``. Hooks run in registration order.
    """

    trainer = None

    def before_train(self):
        pass

    def after_train(self):
        pass

    def before_epoch(self):
        pass

    def after_epoch(self):
        pass

    def before_step(self):
        pass

    def after_step(self):
        pass


class RecordHook(HookBase):
    """A hook that receives every record ``Trainer.emit`` sends (``{'type': 'iter' | 'epoch',
    ...}``), in registration order. An epoch record is emitted after every hook's
    ``after_epoch``, so it holds all that the epoch's hooks reported."""

    def write(self, record):
        """Handles one record."""
        raise NotImplementedError
