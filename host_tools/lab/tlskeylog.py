"""A TLS key log from the lab's Kamailio registrars (issue 15), so that a capture of a SIP
phone decodes in tshark as the SCCP simulators' does (they are Python: `ssl` writes theirs).

Kamailio 5.6 (Debian bookworm's) has no key log setting and OpenSSL 3.0 reads no
SSLKEYLOGFILE, and the phone (MicroPython's TLS) writes none. So the lab builds a small
preload library (C, below; ~1 ms of work at each of Kamailio's TLS sessions, nothing else):
it wraps OpenSSL's SSL_new to set SSL_CTX_set_keylog_callback on the session's context,
and the callback appends each NSS key log line to $PHONELAB_TLS_KEYLOG (opened per line,
O_APPEND: Kamailio's workers are separate processes). Built once with the C compiler into
out/build/ (keyed by the source's hash); without a compiler the lab runs Kamailio without it
and says so in its event log (`sip_keylog_unavailable`): a capture is then not decrypted.

    env = tlskeylog.environ(keylog_path)      # {} when it cannot be built
"""
from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from host_tools import WORK

ENV = "PHONELAB_TLS_KEYLOG"
SOURCE = r"""
/* host_tools/lab/tlskeylog.py: the lab's Kamailio writes a TLS key log (NSS format). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef void (*keylog_cb)(const void *ssl, const char *line);
typedef void *(*ssl_new_fn)(void *ctx);
typedef void (*set_cb_fn)(void *ctx, keylog_cb cb);

static void keylog_line(const void *ssl, const char *line)
{
    char buf[1024];
    const char *path = getenv("PHONELAB_TLS_KEYLOG");
    size_t n = strlen(line);
    int fd;
    (void)ssl;
    if (path == NULL || n + 1 > sizeof(buf))
        return;
    memcpy(buf, line, n);
    buf[n] = '\n';
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    if (write(fd, buf, n + 1) < 0) {
        /* nothing to do: a key log line lost */
    }
    close(fd);
}

static void *libssl_sym(const char *name)
{
    void *h = dlopen("libssl.so.3", RTLD_LAZY | RTLD_NOLOAD);
    void *f = h != NULL ? dlsym(h, name) : NULL;
    return f != NULL ? f : dlsym(RTLD_NEXT, name);
}

void *SSL_new(void *ctx)
{
    static ssl_new_fn real_new;
    static set_cb_fn set_cb;
    if (real_new == NULL)
        real_new = (ssl_new_fn)libssl_sym("SSL_new");
    if (set_cb == NULL)
        set_cb = (set_cb_fn)libssl_sym("SSL_CTX_set_keylog_callback");
    if (ctx != NULL && set_cb != NULL)
        set_cb(ctx, keylog_line);
    return real_new != NULL ? real_new(ctx) : NULL;
}
"""


class KeylogUnavailable(RuntimeError):
    pass


@functools.lru_cache(maxsize=1)
def library() -> Path:
    """The preload library, built on first use (out/build/tlskeylog-HASH.so)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise KeylogUnavailable("no C compiler (cc) to build the key log library")
    tag = hashlib.sha256(SOURCE.encode()).hexdigest()[:12]
    out = WORK / "out" / "build" / f"tlskeylog-{tag}.so"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        src, lib = Path(tmp) / "tlskeylog.c", Path(tmp) / "tlskeylog.so"
        src.write_text(SOURCE)
        try:
            proc = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(lib),
                                   str(src), "-ldl"], capture_output=True, text=True,
                                  timeout=60)
        except (OSError, subprocess.SubprocessError) as e:
            raise KeylogUnavailable(f"{cc}: {e}") from None
        if proc.returncode != 0:
            raise KeylogUnavailable(f"{cc} failed: {proc.stderr.strip()[:300]}")
        os.replace(lib, out)               # atomic: a parallel lab sees all or nothing
    return out


def environ(keylog: Path) -> dict[str, str]:
    """What Kamailio's environment needs to append its TLS keys to `keylog`."""
    lib = library()
    pre = os.environ.get("LD_PRELOAD")
    return {"LD_PRELOAD": f"{lib}:{pre}" if pre else str(lib), ENV: str(keylog)}
