"""Input generators for the firmware parsers: structure-aware mutations of valid packets and
files built by host_tools (rogue_dhcp offers, sccp_lab frames, pki certificates, ctlbuild
trust lists and .sgn files, cnfxml configs) and of the committed fixtures, plus plain byte
mutations (bit flips, truncations, interesting values).

Every generator is `gen(src, corpus) -> bytes`: the input the harness reads (a flags byte, then
the payload). `src` is where the choices come from: `RandomSrc` (a seeded random.Random, for the
bench) or `strategies.DrawSrc` (hypothesis draws, for the tests, which then shrink a failure),
so the same code serves both.

One module per parser (dhcp, tftp, sccp, x509, ctl for CTL/ITL and .sgn, config), on
shared parts: base (the choice source, byte mutations), der (DER trees), corpus (the inputs
to mutate)."""
from __future__ import annotations

from typing import Callable

from host_tools.fuzz.gen.base import RandomSrc, Src
from host_tools.fuzz.gen.config import gen_config
from host_tools.fuzz.gen.corpus import (FIXTURE_DATA, FIXTURES, Corpus, add_signed, corpus,
                                        fixture_corpus, seeded_key)
from host_tools.fuzz.gen.ctl import gen_ctl, gen_sgn
from host_tools.fuzz.gen.dhcp import gen_dhcp
from host_tools.fuzz.gen.sccp import gen_sccp
from host_tools.fuzz.gen.tftp import gen_tftp
from host_tools.fuzz.gen.x509 import gen_x509

GENERATORS: dict[str, Callable[[Src, Corpus], bytes]] = {
    "dhcp": gen_dhcp, "tftp": gen_tftp, "sccp": gen_sccp, "x509": gen_x509,
    "ctl": gen_ctl, "sgn": gen_sgn, "config": gen_config,
}

__all__ = ["GENERATORS", "Corpus", "FIXTURES", "FIXTURE_DATA", "RandomSrc", "Src", "add_signed",
           "corpus", "fixture_corpus", "seeded_key", "gen_config", "gen_ctl", "gen_dhcp", "gen_sccp",
           "gen_sgn", "gen_tftp", "gen_x509"]
