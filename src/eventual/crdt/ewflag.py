"""Enable-wins flag (Almeida, Shoker, Baquero, "Delta state replicated data types" 2018,
§7.1; riak_dt_enable_flag).

Enabling tags the flag with a fresh dot; disabling forgets the dots observed. An enable
concurrent with a disable carries a dot the disable never saw, so the flag stays on.
"""

from __future__ import annotations

from typing import Any

from eventual.codec import DecodeError, TypeTag
from eventual.crdt._dotfun import DotFunction

__all__ = ["EWFlag"]


class EWFlag(DotFunction):
    TAG = TypeTag.EWFLAG
    __slots__ = ()

    def value(self) -> bool:
        return bool(self._values)

    def enable(self, actor: str) -> EWFlag:
        return self._write(actor, None)

    def disable(self) -> EWFlag:
        return self._clear()

    def _load(self, payload: Any) -> None:
        super()._load(payload)
        if any(value is not None for value in self._values.values()):
            raise DecodeError("ewflag: a flag's dots carry no value")
