"""Readers of published data: each turns one source format into mirg samples
(``mirg convert --format NAME``, docs/data.md "Readers"). One module per source (named in
:data:`READERS`; ``coco`` is ``mirg coco``'s), and :mod:`~mirg.data.readers.records` for
what they share: streaming JSON lists, JSONL and parquet, image sizes from headers, the
tally of what was kept and left out.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mirg.data.readers.records import Tally
from mirg.data.schema import Sample
from mirg.errors import MirgError, shown
from mirg.registry import resolve


@dataclass(frozen=True)
class Reader:
    """One source format of ``mirg convert``, all the command needs to know of it.

    ``read(args, tally)`` yields :class:`~mirg.data.schema.Sample` objects (or sample
    lines as dicts, passed through), counting in ``tally`` what it read and left out;
    ``args`` holds convert's options and ``args.options`` the ``--option KEY=VALUE`` pairs.
    """

    name: str
    read: Callable[[argparse.Namespace, Tally], Iterable[Sample | dict]]
    needs: tuple[str, ...] = ("input",)  #: convert's options it cannot go without
    unit: str = "records"  #: what the summary counts as left out (turns, expressions)
    images_beside: str = "input"  #: the option whose file's folder is the default --images
    options: tuple[str, ...] = ()  #: the --option keys it takes


#: Built-in readers, imported when named; ``--format my_pkg.module.READER`` names others.
READERS = {
    "mgrounding": "mirg.data.readers.mgrounding:READER",
    "llava": "mirg.data.readers.conversations:READER",
    "refcoco": "mirg.data.readers.refcoco:READER",
    "coco-captions": "mirg.data.readers.captions:READER",
    "migbench": "mirg.data.readers.migbench:READER",
}


def get_reader(name: str) -> Reader:
    """The reader ``--format`` names: a built-in or a dotted path to a :class:`Reader`."""
    found = resolve(name, READERS, "reader", example="my_pkg.module.READER")
    if not isinstance(found, Reader):
        raise MirgError(
            f"reader {shown(name)} is {type(found).__name__}, not a mirg.data.readers.Reader"
        )
    return found
