# What goes on a board, in the form of micropython-lib's manifests (MicroPython's
# tools/manifestfile.py reads it; so does host_tools/manifest.py).
# - `phonelab deploy` copies exactly these files: boot.py and main.py as source (the board
#   runs them as files), the package compiled to .mpy; plus the board profile as board.json.
# - A firmware image can freeze the package (docs/firmware-image.md): firmware/image/*.py
#   include this file with scripts=False, so the board's own boot.py and main.py still run.
# Not listed, so never on a board: phone/sccp_lab.py (the servers' side of SCCP, for the lab
# and the tests) and phone/compat.py (CPython stand-ins for the host tools).
# tests/host/test_manifest.py checks the list against what main.py and boot.py import.
metadata(description="Secure SRST phone agent", version="0.1.0")

options.defaults(scripts=True)
if options.scripts:
    module("boot.py")
    module("main.py")

package(
    "phone",
    files=(
        "__init__.py",
        "agent.py",
        "boot.py",
        "bootrace.py",
        "clock.py",
        "config.py",
        "ctl.py",
        "der.py",
        "dhcp.py",
        "dhcpcore.py",
        "events.py",
        "hw.py",
        "lease.py",
        "leaseloss.py",
        "limited.py",
        "link.py",
        "pkcs1.py",
        "platform.py",
        "provcfg.py",
        "provision.py",
        "provtrust.py",
        "sccp.py",
        "sccplink.py",
        "sccpreg.py",
        "sip.py",
        "sipreg.py",
        "siplink.py",
        "setcheck.py",
        "settings.py",
        "sha512.py",
        "sha512n.py",
        "sntp.py",
        "standby.py",
        "states.py",
        "store.py",
        "tftp.py",
        "tftpwatch.py",
        "udp.py",
        "x509.py",
    ),
)
