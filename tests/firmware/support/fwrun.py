# Runs one firmware test function under MicroPython: fwrun.py MODULE_DIR MODULE TEST [TMPDIR]
# Prints the MicroPython traceback on failure; exit 0 pass, 1 fail, 4 skipped.
import sys
import gc

try:
    import asyncio
except ImportError:
    asyncio = None


def main():
    mod_dir, mod_name, test_name = sys.argv[1], sys.argv[2], sys.argv[3]
    tmp = sys.argv[4] if len(sys.argv) > 4 else None
    sys.path.insert(0, mod_dir)
    mod = __import__(mod_name)
    fn = getattr(mod, test_name)
    gc.collect()
    try:
        r = fn(tmp) if tmp is not None else fn()
        if r is not None and hasattr(r, 'send') and asyncio is not None:
            asyncio.run(r)
    except Exception as e:
        if type(e).__name__ == 'Skip':
            print('@@SKIP', e.args[0] if e.args else '')
            sys.exit(4)
        sys.print_exception(e)
        sys.exit(1)
    print('@@PASS')


main()
