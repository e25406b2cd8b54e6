# Secure SRST phone agent: one module per concern (see README, "Firmware layout").
