# The MicroPython unix port with the agent frozen in, to measure what freezing saves
# (scripts/build-frozen-unix.sh, docs/firmware-image.md): the standard variant's manifest
# (asyncio, ssl, ...) and the agent's package.
include("$(PORT_DIR)/variants/standard/manifest.py")
include("../manifest.py", scripts=False)
