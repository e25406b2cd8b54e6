# Runs after boot.py at every reset: start the phone agent (phone/boot.py).
from phone import boot

boot.main()
