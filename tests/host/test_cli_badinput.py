"""Bad input to every `phonelab` command, generated from the argparse tree.

For every subcommand (and sub-subcommand) and every option or positional, bad values are
generated from what the argument takes (its `host_tools.cliargs` validator's `kind`, else a
guess from its type and name): missing files, folders, /dev/zero, random bytes, empty files,
non-UTF-8 text, garbage or cut JSON/TOML/PEM/DER/pcap/TLV, negative, zero and huge numbers,
garbage strings. Each case runs `phonelab` in-process with good values for the other
arguments; work that would build a lab, start a board or open a serial port is replaced by a
stub, so a bad value that gets that far counts as *accepted*. Every case must end with a
non-zero exit, no traceback, and one error line that names the argument or the file.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from host_tools import ROOT, cli

# Commands whose work is replaced by a stub (a case that gets there was accepted).
STUBS = [
    ("host_tools.scenario.runner", "run"),
    ("host_tools.commands.lab", "_serve"),
    ("host_tools.commands.lab", "_detach"),
    ("host_tools.commands.vboard", "VirtualBoard"),
    ("host_tools.fleet.run", "run"),
    ("host_tools.replay.session", "run"),
    ("host_tools.replay.recording", "replay_recording"),
    ("host_tools.deploy", "deploy"),
    ("host_tools.flash", "flash"),
    ("host_tools.identity", "put_identity"),
    ("host_tools.repl", "repl"),
    ("host_tools.status", "status"),
]
# Free text: any value is legitimate, so no bad value exists to generate.
FREE = {("ctl", "build", "filename"), ("ctl", "sign", "filename")}
# A board's --port is only checked by opening it, which the stubs replace.
PORT_COMMANDS = ("deploy", "flash", "identity", "repl", "status")
PORT = "socket://127.0.0.1:9"        # a board port; never opened (the stubs stop first)


class Reached(Exception):
    """A stub was called: the command accepted its input and went to work."""


@dataclass
class Case:
    path: tuple[str, ...]
    arg: str                 # the option string or the positional's name
    label: str               # what the bad value is
    argv: list[str]
    value: str = ""


@dataclass
class Outcome:
    code: int | None
    out: str
    err: str
    reached: bool
    exc: BaseException | None


# -- sample files ---------------------------------------------------------------------------
def _samples(tmp: Path) -> dict[str, Path]:
    """Good files of each format (built by the project's own tools)."""
    from host_tools import ctlbuild, pki
    from host_tools.scenario import spec
    from pcap_builder import Capture, dhcp_boot, ip4, tftp_file

    d = tmp / "good"
    d.mkdir()
    s: dict[str, Path] = {}
    made = pki.make_pki(d / "pki", key_size=1024, phone_macs=["001122AABBCC"])
    s["cert"] = made.sast.cert_path
    s["key"] = made.sast.key_path
    s["tftp_cert"] = made.tftp.cert_path
    s["pki_dir"] = d / "pki"
    ctl = ctlbuild.build_trust_list(made.sast, [ctlbuild.Record.from_identity(made.ccm)])
    s["tlv"] = ctlbuild.write(d / "CTLFile.tlv", ctl)
    cnf = d / "SEP001122334455.cnf.xml"
    shutil.copyfile(ROOT / "tests" / "firmware" / "fixtures" / "SEP001122334455.cnf.xml", cnf)
    s["config"] = cnf
    sc = d / "registered-standby.toml"
    shutil.copyfile(ROOT / "scenarios" / "registered-standby.toml", sc)
    spec.load(sc)
    s["toml"] = sc
    rep = {"scenario": "registered-standby", "description": "x", "board": "virtual",
           "mode": "loopback", "passed": True, "error": None, "ended_ms": 1500,
           "expectations": [{"name": "final_state", "expected": "PRIMARY", "actual": "PRIMARY",
                             "passed": True, "message": "ok"}],
           "metrics": {"boot_to_registered_ms": 900, "final_state": "PRIMARY"},
           "events": [{"host_ms": 10, "t": 1, "ev": "boot"},
                      {"host_ms": 900, "t": 890, "ev": "registered", "link": "primary",
                       "host": "203.0.113.10", "port": 2443},
                      {"host_ms": 1000, "t": 990, "ev": "state", "state": "PRIMARY"}],
           "actions": [{"host_ms": 1200, "action": "wan_cut", "kind": "blackhole"},
                       {"host_ms": 1400, "action": "wan_restore"}],
           "files": {}, "lab_events": []}
    s["report"] = d / "report.json"
    s["report"].write_text(json.dumps(rep, indent=1))
    cap = Capture()
    dhcp_boot(cap, "00:11:22:aa:bb:cc", "10.1.1.50", "10.1.1.1",
              [(1, ip4("255.255.255.0")), (3, ip4("10.1.1.1")), (150, ip4("10.1.1.1"))])
    tftp_file(cap, "10.1.1.50", 40001, "10.1.1.1", 50001, "CTLFile.tlv", ctl)
    s["pcap"] = d / "boot.pcap"
    cap.write_pcap(s["pcap"])
    s["board"] = d / "virtual.json"
    shutil.copyfile(ROOT / "boards" / "virtual.json", s["board"])
    s["json"] = d / "wlan.json"
    s["json"].write_text('{"ssid": "lab", "key": "secret-key"}\n')
    s["file"] = d / "payload.bin"
    s["file"].write_bytes(b"<device>payload</device>\n")
    s["dir"] = d / "folder"
    s["dir"].mkdir()
    return s


def _bad_files(tmp: Path, samples: dict[str, Path]) -> dict[str, Path]:
    """Bad files, each under the suffix of every format (suffixes select readers)."""
    d = tmp / "bad"
    d.mkdir()
    rnd = random.Random(11)
    content = {
        "random bytes": bytes(rnd.getrandbits(8) for _ in range(4096)),
        "empty file": b"",
        "non-UTF-8 text": b"name = \"caf\xe9\"\n\xff\xfe\x00 not utf-8\n",
        "garbage JSON": b'{"scenario": "x", "events": [{"host_ms": "soon", "ev": 5}], ',
        "wrong JSON": b'[1, 2, {"scenario": null}]\n',
        "shaped JSON": b'{"scenario": 5, "events": "none", "actions": [1], "passed": "yes"}\n',
        "deep JSON": b"[" * 100000 + b"]" * 100000,
        "garbage TOML": b'name = "x"\n[[timeline]\nafter = \n',
        "garbage PEM": b"-----BEGIN CERTIFICATE-----\nAAAAnotbase64!!\n-----END CERTIFICATE-----\n",
        "garbage DER": b"\x30\x82\xff\xff\x02\x01\x00" + bytes(40),
        "garbage pcap": b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + bytes(8),
    }
    out: dict[str, Path] = {}
    for label, data in content.items():
        for fmt, good in samples.items():
            if good.is_dir():
                continue
            p = d / fmt / label.replace(" ", "-") / good.name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            out[f"{label}|{fmt}"] = p
    for fmt, good in samples.items():
        if good.is_dir():
            continue
        p = d / fmt / "cut" / good.name
        p.parent.mkdir(parents=True, exist_ok=True)
        data = good.read_bytes()
        half = len(data) // 2
        if fmt in ("toml", "json", "report", "board", "config"):   # text: stop after a '='
            half = max(data.rfind(b"=", 0, half), data.rfind(b":", 0, half)) + 1
        p.write_bytes(data[: max(1, half)])
        out[f"cut in half|{fmt}"] = p
    a_file = d / "a-file"
    a_file.write_text("x\n")
    out["a file"] = a_file
    out["under a file"] = a_file / "x" / "y.out"
    out["missing"] = d / "no-such-file"
    out["missing dir"] = d / "no-such-dir" / "deeper"
    out["a directory"] = samples["dir"]
    # Devices only through links in the test's folder: a tool that writes FILE.tmp and
    # renames it over FILE (or writes FILE.sgn beside it) must never touch /dev.
    out["/dev/zero"] = d / "zero-device"
    out["/dev/zero"].symlink_to("/dev/zero")
    out["/dev/null"] = d / "null-device"
    out["/dev/null"].symlink_to("/dev/null")
    return out


# -- what each argument takes ---------------------------------------------------------------
def _guess(path: tuple[str, ...], a: argparse.Action) -> tuple[str, dict[str, Any]]:
    """For arguments without a cliargs validator (kind, attributes)."""
    t = a.type
    name = a.dest
    if t is int:
        return "int", {}
    if t is float:
        return "float", {}
    files = {"scenario": "toml", "report": "report", "capture": "pcap", "sast": "cert",
             "sast_key": "key", "tftp_cert": "cert", "tftp_key": "key", "trust": "tlv",
             "cert": "cert", "key": "key", "srst_cert": "cert", "wlan": "json",
             "profile": "board", "firmware": "file"}
    if path[0] in ("report",) and name == "report":
        return "input_file", {"what": "report"}
    if path[0] == "run" and name == "report":
        return "output_file", {}
    if name in ("file",):
        return "input_file", {"what": {"config": "config", "sign": "file"}.get(path[-1], "tlv")}
    if name in files:
        return "input_file", {"what": files[name]}
    if name in ("tftp_root", "identity", "pki"):
        return "input_dir", {}
    if name in ("pcap", "keylog", "picture", "output", "json", "record") and t is Path:
        return "output_file", {}
    if name in ("out",):
        return ("output_dir", {}) if path[0] in ("certs", "demo") else ("output_file", {})
    if name in ("dir", "workdir", "keep", "extract"):
        return "output_dir", {}
    if name == "heap":
        return "size", {}
    if name == "mac":
        return "mac", {}
    if name in ("board",):
        return "board", {}
    return "string", {}


def kind_of(path: tuple[str, ...], a: argparse.Action) -> tuple[str, dict[str, Any]]:
    k = getattr(a.type, "kind", None)
    if k:
        return k, dict(vars(a.type))
    return _guess(path, a)


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, parser) for every leaf command (by its name, not its aliases)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for sub in subs:
        seen: set[int] = set()
        for name, p in sub.choices.items():      # a command's name comes before its aliases
            if id(p) not in seen:
                seen.add(id(p))
                yield from walk(p, path + (name,))


def takes_value(a: argparse.Action) -> bool:
    return a.nargs != 0 and not isinstance(a, (argparse._HelpAction, argparse._VersionAction,
                                               argparse._SubParsersAction))


# -- good and bad values by kind --------------------------------------------------------------
GOOD_SIMPLE = {"int": "3", "float": "2.5", "size": "128K", "duration": "30", "port": "0",
               "mac": "00:11:22:AA:BB:CC", "board": "virtual", "board_spec": "virtual",
               "string": "x"}


def good_value(path: tuple[str, ...], a: argparse.Action, samples: dict[str, Path],
               tmp: Path) -> str:
    if a.choices:
        return str(next(iter(a.choices)))
    kind, attrs = kind_of(path, a)
    if kind == "input_file":
        what = attrs.get("what", "file")
        if what == "capture":
            what = "pcap"
        if path[0] == "replay" and a.dest == "capture":
            what = "pcap"
        return str(samples.get(what, samples["file"]))
    if kind == "input_dir":
        return str(samples["pki_dir"])
    if kind == "output_file":
        return str(tmp / "out" / "-".join(path) / f"{a.dest}.out")
    if kind == "output_dir":
        return str(tmp / "out" / "-".join(path) / a.dest)
    if kind == "pattern":
        return {"cn": "ccm=cucm1.lab", "ip": "srst=192.0.2.1", "record": f"CCM:{samples['cert']}",
                "set": "connect_timeout_ms=10000", "target": "lab",
                "until": "registered", "host": "127.0.0.1",
                "expired": "sast"}.get(a.dest, "x")
    if kind == "name":
        return "sast" if a.dest == "expired" else "x"
    if kind in ("int", "float"):
        lo = attrs.get("lo")
        return str(max(3, int(lo) + 1) if lo is not None else 3)
    if path[:2] == ("lab", "flap") and a.dest == "count":
        return "2"
    return GOOD_SIMPLE.get(kind, "x")


def bad_values(kind: str, attrs: dict[str, Any], bad: dict[str, Path],
               fmt: str) -> list[tuple[str, str]]:
    """(label, value) pairs that must be refused for an argument of this kind."""
    structural = ["missing", "a directory", "/dev/zero"]
    if kind == "input_file":
        what = attrs.get("what", "file")
        out = [(k, str(bad[k])) for k in structural]
        if what != "file":            # any bytes are a legitimate payload for a 'file'
            for label_fmt, p in bad.items():
                label, _, f = label_fmt.partition("|")
                if f == fmt and not (label == "cut in half" and fmt == "pcap"):
                    out.append((label, str(p)))
        return out
    if kind == "input_dir":
        return [(k, str(bad[k])) for k in ("missing", "a file", "/dev/zero")]
    if kind == "output_file":
        return [(k, str(bad[k])) for k in ("a directory", "under a file", "/dev/null")]
    if kind == "output_dir":
        return [(k, str(bad[k])) for k in ("a file", "under a file", "/dev/null")]
    if kind in ("int", "float", "size", "duration", "port"):
        vals = [("garbage", "lots"), ("empty", ""), ("huge", "1" + "0" * 30)]
        lo, hi = attrs.get("lo"), attrs.get("hi")
        if kind in ("int", "float"):
            vals += [("below range", str(int(lo) - 1) if lo is not None else "-5")]
            if hi is not None:
                vals.append(("above range", str(int(hi) + 1)))
            if kind == "float":
                vals += [("not finite", "nan"), ("infinite", "inf")]
        elif kind == "size":
            vals += [("negative", "-96K"), ("zero", "0"), ("bad unit", "96Q")]
        elif kind == "duration":
            vals += [("negative", "-5"), ("zero", "0"), ("bad unit", "5 parsecs")]
        else:
            vals += [("negative", "-1"), ("too big", "65536")]
        return vals
    if kind == "mac":
        return [("garbage", "zz:zz:zz"), ("short", "00:11:22"), ("empty", "")]
    if kind in ("board", "board_spec"):
        return [("unknown board", "no-such-board"), ("garbage", "::??::"), ("empty", "")]
    if kind in ("pattern", "name"):
        return [("garbage", "=/?:="), ("empty", "")]
    return [("garbage", "\x01garbage\x7f")]


def fmt_of(path: tuple[str, ...], a: argparse.Action, kind: str, attrs: dict[str, Any]) -> str:
    what = attrs.get("what", "file")
    return {"capture": "pcap", "tls": "tlv"}.get(what, what)


def generate(tmp: Path) -> tuple[list[Case], dict[str, Path], list[str]]:
    samples = _samples(tmp)
    bad = _bad_files(tmp, samples)
    parser = cli.build_parser()
    cases: list[Case] = []
    unclassified: list[str] = []
    for path, p in walk(parser):
        actions = [a for a in p._actions if takes_value(a)]
        base: list[str] = list(path)
        positionals = [a for a in actions if not a.option_strings]
        required = [a for a in actions if a.option_strings and a.required]
        good = {a.dest: good_value(path, a, samples, tmp) for a in actions}
        if "port" in good and path[0] in PORT_COMMANDS:
            good["port"] = PORT
        opt_part = [x for a in required for x in (a.option_strings[-1], good[a.dest])]
        if path == ("identity",):
            opt_part += ["--sast", good["sast"]]
        if path[0] == "certs":
            opt_part += ["--key-size", "1024"]
        pos_part = [good[a.dest] for a in positionals]

        def argv_with(a: argparse.Action, value: str) -> list[str]:
            if a.option_strings:
                rest = [x for b in required if b is not a
                        for x in (b.option_strings[-1], good[b.dest])]
                if path == ("identity",) and a.dest != "sast":
                    rest += ["--sast", good["sast"]]
                if path[0] == "certs" and a.dest != "key_size":
                    rest += ["--key-size", "1024"]
                return base + rest + [a.option_strings[-1], value] + pos_part
            return base + opt_part + [value if b is a else good[b.dest] for b in positionals]

        for a in actions:
            if a.choices:
                continue                 # argparse refuses anything else itself
            if path + (a.dest,) in FREE or (path[0] in PORT_COMMANDS and a.dest == "port"):
                continue
            kind, attrs = kind_of(path, a)
            if kind == "string" or not getattr(a.type, "kind", None):
                unclassified.append(" ".join(path) + " " + (a.option_strings[-1] if a.option_strings else a.dest))
            label_arg = a.option_strings[-1] if a.option_strings else a.dest
            for label, value in bad_values(kind, attrs, bad, fmt_of(path, a, kind, attrs)):
                cases.append(Case(path, label_arg, label, argv_with(a, value), value))
    return cases, samples, unclassified


# -- running ----------------------------------------------------------------------------------
def run_in_process(argv: list[str], flag: list[bool]) -> Outcome:
    out, err = io.StringIO(), io.StringIO()
    flag[0] = False
    code: int | None = None
    exc: BaseException | None = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except Reached:
            code = 0
        except BaseException as e:      # noqa: BLE001 (a traceback in a real run)
            exc = e
    return Outcome(code, out.getvalue(), err.getvalue(), flag[0], exc)


def _vm_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Stubs for the work, and a cap on this process's memory while the cases run: a command
    that reads /dev/zero whole must end in MemoryError, not take the machine's memory."""
    import importlib
    import resource
    flag = [False]
    old = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (_vm_bytes() + 3 * 1024 ** 3, old[1]))

    def stub(*a: Any, **kw: Any) -> Any:
        flag[0] = True
        raise Reached()

    for mod, attr in STUBS:
        monkeypatch.setattr(importlib.import_module(mod), attr, stub)
    monkeypatch.setenv("PHONELAB_DEBUG", "0")
    try:
        yield flag
    finally:
        resource.setrlimit(resource.RLIMIT_AS, old)


def judge(case: Case, o: Outcome) -> str | None:
    """Why the outcome is wrong, or None."""
    if o.exc is not None:
        return f"traceback: {type(o.exc).__name__}: {str(o.exc)[:120]}"
    text = o.out + o.err
    if "Traceback (most recent call last)" in text:
        return "traceback printed"
    if o.reached or o.code == 0:
        return f"accepted (exit {o.code})"
    lines = [ln for ln in o.err.splitlines() + o.out.splitlines()
             if "error" in ln.lower() or "invalid" in ln.lower() or "no lab" in ln.lower()]
    if "internal error" in text:
        return f"internal error: {lines[-1][:160] if lines else text[:160]}"
    if len(lines) != 1:
        return f"exit {o.code} with {len(lines)} error lines: {text.strip()[:160]!r}"
    line = lines[0]
    value = case.value
    names = {case.arg} if case.arg.startswith("-") else {f"argument {case.arg}"}
    if value:
        names |= {value, Path(value).name}
    if not any(n and n in line for n in names):
        return f"error line names neither the argument nor the value: {line[:160]!r}"
    return None


def test_every_command_refuses_generated_bad_input(tmp_path: Path, stubbed: list[bool],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cases, _samples_, _ = generate(tmp_path)
    failures = []
    for c in cases:
        why = judge(c, run_in_process(c.argv, stubbed))
        if why:
            failures.append(f"{' '.join(c.path)} {c.arg} = {c.label}: {why}")
    summary = f"{len(failures)} of {len(cases)} generated bad inputs mishandled"
    print(summary)
    assert not failures, summary + "\n" + "\n".join(failures)
    assert len(cases) > 300          # the generator covers the whole tree


def test_every_argument_says_what_it_takes() -> None:
    """An argument without a validator gets no generated bad values (only guessed ones)."""
    _, _, unclassified = generate_kinds_only()
    assert not unclassified, "arguments without a cliargs validator: " + ", ".join(unclassified)


def generate_kinds_only() -> tuple[None, None, list[str]]:
    parser = cli.build_parser()
    missing = []
    for path, p in walk(parser):
        for a in p._actions:
            if not takes_value(a) or a.choices or path + (a.dest,) in FREE \
                    or (path[0] in PORT_COMMANDS and a.dest == "port"):
                continue
            if not getattr(a.type, "kind", None):
                missing.append(" ".join(path) + " " + (a.option_strings[-1] if a.option_strings
                                                       else a.dest))
    return None, None, missing


def test_good_input_still_works(tmp_path: Path, stubbed: list[bool],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = _samples(tmp_path)
    runs = [
        (["boards"], lambda o: o.code == 0 and "virtual" in o.out),
        (["boards", str(s["board"])], lambda o: o.code == 0 and "virtual" in o.out),
        (["run", str(s["toml"]), "--check"], lambda o: o.code == 0 and "ok" in o.out),
        (["run", str(s["toml"]), "--heap", "128K", "--report", str(tmp_path / "r" / "x.json")],
         lambda o: o.reached),
        (["report", "show", str(s["report"])], lambda o: o.code == 0 and "PASSED" in o.out),
        (["report", "picture", str(s["report"]), "-o", str(tmp_path / "p.svg")],
         lambda o: o.code == 0 and (tmp_path / "p.svg").stat().st_size > 1000),
        (["ctl", "dump", str(s["tlv"])], lambda o: o.code == 0 and '"records"' in o.out),
        (["ctl", "verify", str(s["tlv"]), "--sast", str(s["cert"])],
         lambda o: o.code == 0 and o.out.startswith("valid")),
        (["config", "show", str(s["config"])], lambda o: o.code == 0 and "cucm1" in o.out),
        (["replay", str(s["pcap"]), "--show"], lambda o: o.code == 0 and "CTLFile.tlv" in o.out),
        (["vboard", "--dir", str(tmp_path / "vb"), "--heap", "96K", "--port", "0"],
         lambda o: o.reached),
        (["fleet", "--phones", "4", "--json", str(tmp_path / "f.json")], lambda o: o.reached),
        (["lab", "up", "--dir", str(tmp_path / "lab"), "--mac", "00:11:22:33:44:55"],
         lambda o: o.reached),
    ]
    bad = []
    for argv, ok in runs:
        o = run_in_process(argv, stubbed)
        if o.exc is not None or not ok(o):
            bad.append(f"{' '.join(argv)}: exit {o.code}, {o.exc!r}, {(o.out + o.err)[-300:]!r}")
    assert not bad, "\n".join(bad)


def test_an_unexpected_exception_is_one_line_with_a_debug_hint(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from host_tools.commands import boards as cmd

    def boom(args: argparse.Namespace) -> int:
        raise KeyError("surprise")
    monkeypatch.setattr(cmd, "run", boom)
    monkeypatch.delenv("PHONELAB_DEBUG", raising=False)
    assert cli.main(["boards"]) == cli.EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: KeyError" in err and "--debug" in err
    with pytest.raises(KeyError):
        cli.main(["--debug", "boards"])
