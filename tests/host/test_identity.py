"""`phonelab identity` on a virtual board: files where the firmware reads them, DER on the
board, and no trace of a private key (or WLAN key) in any output, log or error."""
from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from host_tools import cli, deploy, identity, pki
from host_tools.vboard import VirtualBoard

BIN = Path(sys.executable).parent
MAC = "00:11:22:33:AA:BB"
WLAN_KEY = "correct horse battery staple 42"


@pytest.fixture(scope="module")
def ids(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("pki")
    phone = pki.make_identity("SEP00112233AABB", "PHONE", key_size=1024).write(out)
    other = pki.make_identity("SEP00112233AABB-2", "PHONE", cn="SEP00112233AABB", key_size=1024).write(out)
    sast = pki.make_identity("sast", "SAST", key_size=1024).write(out)
    enc = out / "encrypted.key.pem"
    enc.write_bytes(phone.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw")))
    wlan = out / "wlan.json"
    wlan.write_text(json.dumps({"ssid": "lab", "key": WLAN_KEY}))
    return {"phone": phone, "other": other, "sast": sast, "enc": enc, "wlan": wlan, "dir": out}


@pytest.fixture
def board(tmp_path: Path):
    with VirtualBoard(tmp_path / "board", tcp_port=0) as b:
        deploy.deploy(b.port_for_mpremote, show=False, reset=False)
        yield b


def secrets(ids: dict) -> list[str]:
    """Every spelling of the secrets that could leak: PEM body lines, base64 and hex of the
    DER key (also in 1 KB chunks, as the transfer sends them), the WLAN key."""
    key = ids["phone"]
    der = key.key_der
    out = [line for line in key.key_pem.decode().splitlines() if "-----" not in line][:3]
    out += [der.hex()[:32], der.hex()[200:232], base64.b64encode(der).decode()[:32],
            base64.b64encode(der[:1024]).decode()[40:72], repr(der[:24])[2:-1], WLAN_KEY]
    return out


def assert_clean(text: str, ids: dict) -> None:
    for s in secrets(ids):
        assert s not in text, f"secret material in output: {s[:12]}..."


def test_the_identity_goes_where_the_firmware_reads_it(board, ids, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    folder = board.folder
    phone = ids["phone"]
    ident = identity.load_identity(MAC, phone.cert_path, phone.key_path, ids["sast"].cert_path,
                                   ids["wlan"])
    assert "key_der" not in repr(ident) and WLAN_KEY not in repr(ident)
    result = identity.put_identity(board.port_for_mpremote, ident)
    assert (folder / "state" / "phone.der").read_bytes() == phone.cert_der      # PEM -> DER
    assert (folder / "state" / "phone.key").read_bytes() == phone.key_der       # PKCS#8 DER
    assert (folder / "state" / "sast.der").read_bytes() == ids["sast"].cert_der
    assert json.loads((folder / "wlan.json").read_text()) == {"ssid": "lab", "key": WLAN_KEY}
    profile = json.loads((folder / "board.json").read_text())
    assert profile["name"] == "virtual" and profile["mac"] == "00112233AABB"
    record = json.loads((folder / "state" / "identity.json").read_text())
    assert record["device"] == "SEP00112233AABB" and record["cn"] == "SEP00112233AABB"
    assert "/state/phone.key" in result.written
    out = capsys.readouterr()
    assert_clean(out.out + out.err + caplog.text, ids)
    assert "private key" in out.out and "identity of SEP00112233AABB" in out.out
    # the firmware's own code reads them back (phone.store, phone.platform) on the board
    with deploy.RawRepl(board.port_for_mpremote) as b:
        got = b.exec("from phone.store import Store\nfrom phone import platform\n"
                     "s = Store('/state')\n"
                     "p = platform.Platform(platform.load_profile())\n"
                     "print(p.device_name(), len(s.read_bytes('phone.key')), "
                     "s.exists('sast.der'))").decode().split()
    assert got == ["SEP00112233AABB", str(len(phone.key_der)), "True"]


def test_cli_output_never_shows_the_key(board, ids):
    phone = ids["phone"]
    r = subprocess.run([str(BIN / "phonelab"), "identity", "--port", board.url, "--mac", MAC,
                        "--cert", str(phone.cert_path), "--key", str(phone.key_path),
                        "--wlan", str(ids["wlan"])],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_clean(r.stdout + r.stderr, ids)
    assert (board.folder / "state" / "phone.key").read_bytes() == phone.key_der


def test_bad_inputs_are_refused_before_the_board(ids, tmp_path):
    phone, other = ids["phone"], ids["other"]
    cases = [
        (dict(mac=MAC, cert=phone.cert_path, key=other.key_path), "does not belong"),
        (dict(mac=MAC, cert=phone.cert_path, key=ids["enc"]), "encrypted key"),
        (dict(mac="00:11:22:33:AA:BC", cert=phone.cert_path, key=phone.key_path),
         "certificate is for SEP00112233AABB"),
        (dict(mac="00:11:22", cert=phone.cert_path, key=phone.key_path), "bad MAC"),
        (dict(mac=MAC, cert=phone.key_path, key=phone.key_path), "is not a certificate"),
        (dict(mac=MAC, cert=phone.cert_path, key=phone.cert_path), "is not a private key"),
        (dict(cert=phone.cert_path, key=phone.key_path), "--mac is needed"),
        (dict(mac=MAC, cert=phone.cert_path), "go together"),
        (dict(), "no identity given"),
    ]
    for kwargs, msg in cases:
        with pytest.raises(identity.IdentityError, match=msg) as e:
            identity.load_identity(**kwargs)
        assert_clean(str(e.value), ids)
        assert e.value.__cause__ is None
    bad = tmp_path / "wlan.json"
    bad.write_text('{"ssid": 5}')
    with pytest.raises(identity.IdentityError, match="ssid"):
        identity.load_identity(wlan=bad)


def test_a_failed_key_write_withholds_the_board_message(board, ids):
    folder = board.folder
    (folder / "state" / "phone.key.tmp").mkdir(parents=True)   # opening it for writing fails
    phone = ids["phone"]
    ident = identity.load_identity(MAC, phone.cert_path, phone.key_path)
    with pytest.raises(identity.IdentityError, match="phone.key to the board failed; the board's "
                                                     "message is withheld") as e:
        identity.put_identity(board.port_for_mpremote, ident, show=False)
    assert e.value.__cause__ is None and e.value.__suppress_context__
    assert_clean(str(e.value), ids)
    (folder / "state" / "phone.key.tmp").rmdir()
    (folder / "state" / "phone.der.tmp").mkdir()                # a public file: say why
    with pytest.raises(identity.IdentityError, match="(?s)phone.der to the board failed: .*EISDIR"):
        identity.put_identity(board.port_for_mpremote, ident, show=False)


def test_needs_a_deployed_board(tmp_path, ids):
    with VirtualBoard(tmp_path / "bare", tcp_port=0) as b:
        ident = identity.load_identity(sast=ids["sast"].cert_path)
        with pytest.raises(identity.IdentityError, match="deploy the agent first"):
            identity.put_identity(b.url, ident, show=False)


def test_provision_is_the_old_name_of_the_identity_command():
    """`phonelab provision` (its name until issue 13) still works: an alias, not a second command."""
    parser = cli.build_parser()
    new = parser.parse_args(["identity", "--port", "x", "--mac", MAC])
    old = parser.parse_args(["provision", "--port", "x", "--mac", MAC])
    assert old.func is new.func and old.mac == new.mac
