# Secure SRST phone agent: one module per concern (docs/development.md, "The firmware modules").


def drop(*names):
    """Unload phone.NAME modules loaded for a step (provisioning's, the settings checks,
    SNTP), so their heap goes back: out of sys.modules and off this package, then collected."""
    import gc
    import sys
    pkg = sys.modules.get('phone')
    for name in names:
        sys.modules.pop('phone.' + name, None)
        if pkg is not None and hasattr(pkg, name):
            delattr(pkg, name)
    gc.collect()
