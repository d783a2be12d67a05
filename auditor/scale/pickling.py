"""Pickling the judged items that cross between processes (``--jobs 2``'s batches, the Dask
workers' spools): slotted dataclasses (evidence, transactions, verdicts: most of a judged
response) as tuples of their field values, and record data whose class pickle cannot restore as
its wire form."""

from __future__ import annotations

import dataclasses
import operator
import pickle
from collections.abc import Callable
from typing import Any

import dns.rdata
import dns.rdataclass
import dns.rdatatype

_FIELDS: dict[type, tuple[str, ...] | None] = {}
"""Per class: the field names of a slotted dataclass (pickled by ``DataclassPickler`` as a tuple of
values), None for any other class."""


def _field_names(cls: type) -> tuple[str, ...] | None:
    names = _FIELDS.get(cls, ())
    if names == ():
        names = None
        if dataclasses.is_dataclass(cls) and "__slots__" in cls.__dict__:
            names = tuple(f.name for f in dataclasses.fields(cls))
        _FIELDS[cls] = names
    return names


def _restore(cls: type, values: tuple[Any, ...]) -> Any:
    """A slotted dataclass from its field values, as its generated ``__setstate__`` would
    (without looking its fields up again for every object): by the class's own restorer."""
    try:
        restorer = _RESTORERS[cls]
    except KeyError:
        restorer = _RESTORERS[cls] = _restorer(cls)
    return restorer(values)


_RESTORERS: dict[type, Callable[[tuple[Any, ...]], Any]] = {}
"""Per slotted dataclass, the function that makes one from its field values (``_restorer``)."""


def _restorer(cls: type) -> Callable[[tuple[Any, ...]], Any]:
    """A function setting each field of a new ``cls`` object from a tuple of values, written
    out field by field as ``dataclasses`` writes ``__init__``: loading ``--jobs 2``'s batches
    took 12 % less time than with a loop over the field names (benchmarks/README.md)."""
    names = _field_names(cls)
    assert names is not None
    values = [f"v{number}" for number in range(len(names))]
    lines = ["def restore(values):",
             f"    {', '.join(values)}, = values",  # a tuple of another length raises
             "    obj = new(cls)",
             *(f"    set_(obj, {name!r}, {value})" for name, value in zip(names, values,
                                                                          strict=True)),
             "    return obj"]
    space: dict[str, Any] = {"new": object.__new__, "cls": cls, "set_": object.__setattr__}
    exec("\n".join(lines), space)  # noqa: S102 - field names of our own dataclasses only
    restorer: Callable[[tuple[Any, ...]], Any] = space["restore"]
    return restorer


def _values_getter(cls: type) -> Callable[[Any], tuple[Any, ...]] | None:
    """The field values of a slotted dataclass as a tuple (None for any other class)."""
    names = _field_names(cls)
    if names is None:
        return None
    if len(names) < 2:  # attrgetter of one name gives the value, not a tuple
        return lambda obj: tuple(getattr(obj, name) for name in names)
    return operator.attrgetter(*names)


def _rdata_from_wire(rdclass: dns.rdataclass.RdataClass, rdtype: dns.rdatatype.RdataType,
                     wire: bytes) -> dns.rdata.Rdata:
    """A record's data back from its uncompressed wire form (``DataclassPickler``)."""
    return dns.rdata.from_wire(rdclass, rdtype, wire, 0, len(wire))


def _pickles_back(obj: dns.rdata.Rdata) -> bool:
    """Whether pickle's own round trip works for ``obj``'s class. dnspython 2.9's does not
    for some types (APL: "object doesn't support attribute assignment"; OPENPGPKEY: no
    attribute 'key'), which ended every ``--jobs 2`` audit of a capture holding one."""
    try:
        return bool(pickle.loads(pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)) == obj)
    except Exception:  # noqa: BLE001 - any failure means: use the wire form
        return False


def _by_wire(obj: dns.rdata.Rdata) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    return _rdata_from_wire, (obj.rdclass, obj.rdtype, obj.to_wire())


class DataclassPickler(pickle.Pickler):
    """Pickles slotted dataclasses (evidence, transactions, verdicts: most of a judged
    response) as their field values, which loads about twice as fast as their generated
    ``__getstate__``/``__setstate__`` pair (``dataclasses.fields`` per object); record data
    whose class pickle cannot restore goes as its wire form (``_pickles_back``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._getters: dict[type, Callable[[Any], tuple[Any, ...]] | None] = {}
        """Per class, its values getter (one ``attrgetter`` call per object)."""
        self._rdata_by_wire: dict[type, bool] = {}
        """Per record data class, whether it goes as wire (tried once per class)."""

    def reducer_override(self, obj: Any) -> Any:
        cls = type(obj)
        try:
            getter = self._getters[cls]
        except KeyError:
            getter = self._getters[cls] = _values_getter(cls)
        if getter is not None:
            return _restore, (cls, getter(obj))
        if isinstance(obj, dns.rdata.Rdata):
            by_wire = self._rdata_by_wire.get(cls)
            if by_wire is None:
                by_wire = self._rdata_by_wire[cls] = not _pickles_back(obj)
            if by_wire:
                return _by_wire(obj)
        return NotImplemented
