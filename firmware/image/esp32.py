# A MicroPython image for the ESP32 boards with the agent frozen in (docs/firmware-image.md):
#   make -C ports/esp32 BOARD=ESP32_GENERIC BOARD_VARIANT=SPIRAM \
#       FROZEN_MANIFEST=/path/to/firmware/image/esp32.py
# The port's own manifest first: _boot.py (mounts the filesystem that holds board.json and the
# store), asyncio, and the port's other frozen modules; the ESP32_GENERIC(_S3) boards use it.
include("$(PORT_DIR)/boards/manifest.py")
# The agent's package; boot.py and main.py stay on the board's filesystem.
include("../manifest.py", scripts=False)
