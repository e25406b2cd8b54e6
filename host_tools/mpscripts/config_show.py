# Runs on the MicroPython unix port (the board's interpreter), with firmware/ on MICROPYPATH,
# so `phonelab config show` exercises the firmware's own phone.config, not a CPython copy.
#   config_show.py FILE
# Prints the parsed config as one JSON object. A signed file (.cnf.xml.sgn) is read past its
# header (the signature is not checked here: `phonelab ctl verify` does that).
# Exit 0 parsed, 1 rejected (`error: reason` on stderr), 2 usage error.
import json
import sys

from phone import config


def sgn_offset(path):
    # .sgn header: tag 1 (version, 2 bytes), then tag 2 (header length, u16 big-endian)
    with open(path, 'rb') as f:
        h = f.read(10)
    if len(h) == 10 and h[0] == 1 and h[1:3] == b'\x00\x02' and h[5] == 2:
        return (h[8] << 8) | h[9]
    return 0


def main(argv):
    if len(argv) != 2:
        sys.stderr.write('usage: config_show.py FILE\n')
        sys.exit(2)
    try:
        c = config.parse_file(argv[1], offset=sgn_offset(argv[1]))
    except (config.ConfigError, OSError) as e:
        sys.stderr.write('error: %s\n' % e)
        sys.exit(1)
    d = c.to_dict()
    d['wants_srst_standby'] = c.wants_srst_standby()
    print(json.dumps(d))


main(sys.argv)
