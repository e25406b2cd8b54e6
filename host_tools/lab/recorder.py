"""The lab's recorder: a packet capture of the phone's interface (dumpcap, else tshark) and the
TLS key log the simulators write, so Wireshark can decrypt SCCP over TLS:

    tshark -r phone.pcap -o tls.keylog_file:tls-keys.log -d tcp.port==2443,tls -Y skinny

Namespace mode captures `eth0` inside the phone namespace (or the bench interface in the
branch namespace); loopback mode captures `lo` with a filter on the lab's addresses.
"""
from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

from host_tools.lab.nsloop import spawn, stop_process
from host_tools.lab.topology import Capture


class RecorderError(RuntimeError):
    pass


def capture_tool() -> str | None:
    return shutil.which("dumpcap") or shutil.which("tshark")


class Recorder:
    drain_s = 0.5          # wait before stopping, so the capture holds the last packets

    def __init__(self, capture: Capture, pcap: str | Path, keylog: str | Path | None = None,
                 emit: Callable[..., Any] | None = None) -> None:
        self.capture = capture
        self.pcap = Path(pcap)
        self.keylog = Path(keylog) if keylog else None
        self.emit = emit or (lambda ev, **f: None)
        self.proc: subprocess.Popen | None = None
        self.output: list[str] = []
        self._reader: threading.Thread | None = None
        self._started = threading.Event()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def argv(self) -> list[str]:
        tool = capture_tool()
        if tool is None:
            raise RecorderError("neither dumpcap nor tshark is installed (Debian: tshark)")
        # -P: classic pcap; -q: no packet counter on stderr
        argv = [*self.capture.prefix, tool, "-q", "-P", "-i", self.capture.iface, "-w", str(self.pcap)]
        if self.capture.bpf:
            argv += ["-f", self.capture.bpf]
        return argv

    def start(self, timeout: float = 10.0) -> "Recorder":
        if self.running:
            return self
        self.pcap.parent.mkdir(parents=True, exist_ok=True)
        self.pcap.unlink(missing_ok=True)
        self._started.clear()
        self.proc = spawn(self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, name="lab:recorder", daemon=True)
        self._reader.start()
        # dumpcap says "Capturing on ..." once the capture runs; the file exists from then on
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._reader.join(1)
                raise RecorderError("capture failed: " + " | ".join(self.output[-5:]))
            if self._started.is_set() and self.pcap.exists():
                self.emit("recording", pcap=str(self.pcap), iface=self.capture.iface,
                          keylog=str(self.keylog) if self.keylog else None)
                return self
            time.sleep(0.02)
        self.stop()
        raise RecorderError(f"capture did not start within {timeout} s: {self.output[-5:]}")

    def _read(self) -> None:
        proc = self.proc
        assert proc is not None and proc.stderr is not None
        for line in proc.stderr:
            line = line.rstrip("\n")
            self.output.append(line)
            if "Capturing on" in line:
                self._started.set()

    def stop(self, timeout: float = 5.0) -> dict:
        """Stop cleanly (SIGINT lets dumpcap finish the file); returns the file names."""
        proc, self.proc = self.proc, None
        if proc is not None:
            # dumpcap writes in batches: packets of the last few hundred ms are still in its
            # buffer, and SIGINT right away would lose them.
            time.sleep(self.drain_s)
            code = stop_process(proc, signal.SIGINT, timeout)
            if self._reader is not None:
                self._reader.join(2)
            self.emit("recording_stopped", pcap=str(self.pcap), exit=code,
                      bytes=self.pcap.stat().st_size if self.pcap.exists() else 0)
        return self.files()

    def files(self) -> dict:
        return {"pcap": str(self.pcap) if self.pcap.exists() else None,
                "keylog": str(self.keylog) if self.keylog and self.keylog.exists() else None}
