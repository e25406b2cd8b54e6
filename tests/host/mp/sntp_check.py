# Drives phone.sntp's query under MicroPython for tests/host/test_clock_sntp.py:
#   sntp_check.py PORT SERVER...   prints the events, then CLOCK <source> <utc()> <now()>
import sys
import time
from phone import clock, sntp
from phone.events import Events

port = int(sys.argv[1])
print('START', time.gmtime()[0])
got = sntp.query(sys.argv[2:], clock.set_time, 600, Events(), port)
print('CLOCK', clock.source, clock.utc(), got)
